// precision.wgsl: the parts of mixed-precision training that are not products. round_f16 rounds values to the
// nearest IEEE binary16 (ties to even; 65520 and up become infinite), kept in f32: the operands an f16-input
// product sees, used where a product is emulated with f32 kernels. scale_loss (and scale_loss4, four at a time)
// multiplies the loss gradient by the dynamic loss scale before the backward. update_loss_scale runs once after
// AdamW: it records the scale the step used, skips nothing itself (AdamW read the same state and left the
// weights alone when Σ g² was not finite) and sets the next scale: halved after an overflow, doubled after
// growth_interval finite steps in a row. pack_f16 and unpad_product surround an f16 cooperative-matrix product
// (shaders/matmul_coop.wgsl): pack_f16 writes a strided f32 matrix (rows, cols) as a dense row-major f16 one
// (rows_p, cols_p), rounded as round_f16 rounds, zero-padded to the product's tile multiples, two values per u32
// word (pack_f16_columns does the same for a view that is contiguous down its columns, a transposed operand,
// through a workgroup tile so that both its reads and its writes are contiguous); unpad_product writes the product's padded f32 result back into the caller's strided view of C, times
// alpha, plus the bias, added to C when accumulating.
//
// Shapes: out, x (n); state (6): [0] Σ g² of the scaled gradients, [1] the scale this step's backward used,
// [2] 1 when this step's update was skipped, [3] the scale the next backward uses, [4] finite steps since the
// scale last changed, [5] AdamW updates applied. The CPU twin is src/cpu/precision.rs.

struct PrecisionParams {
    n: u32,
    growth_interval: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: array<f32>;
@group(0) @binding(3) var<uniform> p: PrecisionParams;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>; // out, 4 at a time
@group(0) @binding(5) var<storage, read_write> packed: array<u32>; // (rows_p, cols_p) f16, 2 per word
@group(0) @binding(6) var<uniform> pad: PadParams;
@group(0) @binding(7) var<storage, read> bias: array<f32>; // (cols)

// The strided view (rows, cols) at off + r·rs + c·cs, and its dense padded twin (rows_p, cols_p). unpad_product:
// flags bit 0 adds bias[c], bit 1 accumulates into the view.
struct PadParams {
    rows: u32,
    cols: u32,
    rows_p: u32,
    cols_p: u32,
    off: u32,
    rs: u32,
    cs: u32,
    flags: u32,
    alpha: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 256u;

fn gid(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * WG + li;
}

fn is_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// v rounded to the nearest f16, in f32 arithmetic (no f16 feature needed).
fn to_f16(v: f32) -> f32 {
    let bits = bitcast<u32>(v);
    let mag = bits & 0x7fffffffu;
    if (mag > 0x7f800000u) {
        return v;
    }
    if (mag >= 0x477ff000u) {
        return bitcast<f32>((bits & 0x80000000u) | 0x7f800000u);
    }
    if (mag < 0x38800000u) {
        // Below the smallest normal f16: the subnormal grid of 2^-24 (round() ties to even).
        let quantum = 5.9604644775390625e-8;
        return round(v / quantum) * quantum;
    }
    let lsb = (mag >> 13u) & 1u;
    return bitcast<f32>((bits + 0xfffu + lsb) & 0xffffe000u);
}

@compute @workgroup_size(256)
fn round_f16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i < p.n) {
        out[i] = to_f16(x[i]);
    }
}

@compute @workgroup_size(256)
fn scale_loss(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i < p.n) {
        out[i] = out[i] * state[3];
    }
}

// scale_loss on quads: n is a multiple of 4 and invocation i scales elements 4i .. 4i + 3.
@compute @workgroup_size(256)
fn scale_loss4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i < p.n / 4u) {
        out4[i] = out4[i] * state[3];
    }
}

@compute @workgroup_size(1)
fn update_loss_scale() {
    let used = state[3];
    state[1] = used;
    if (is_finite(state[0])) {
        state[2] = 0.0;
        state[5] = state[5] + 1.0;
        let good = state[4] + 1.0;
        if (good >= f32(p.growth_interval)) {
            state[3] = used * 2.0;
            state[4] = 0.0;
        } else {
            state[4] = good;
        }
    } else {
        state[2] = 1.0;
        state[3] = used * 0.5;
        state[4] = 0.0;
    }
}

// Element (r, c) of the view in x, rounded to f16; zero in the padding.
fn padded_value(r: u32, c: u32) -> f32 {
    if (r < pad.rows && c < pad.cols) {
        return to_f16(x[pad.off + r * pad.rs + c * pad.cs]);
    }
    return 0.0;
}

// The binary16 bits of a value that is already an f16 (to_f16's result), by integer arithmetic: exact, and no
// f16 feature needed.
fn f16_bits(v: f32) -> u32 {
    let bits = bitcast<u32>(v);
    let sign = (bits >> 16u) & 0x8000u;
    let mag = bits & 0x7fffffffu;
    if (mag > 0x7f800000u) {
        return sign | 0x7e00u;
    }
    if (mag == 0x7f800000u) {
        return sign | 0x7c00u;
    }
    if (mag >= 0x38800000u) {
        // Rebias the exponent from 127 to 15; the low 13 mantissa bits are zero.
        return sign | ((mag >> 13u) - 0x1c000u);
    }
    // Zero or subnormal: a whole number of 2^-24.
    return sign | u32(abs(v) * 16777216.0);
}

// Invocation i writes word i of the packed matrix: elements (r, 2j) (low half) and (r, 2j + 1) (high half),
// cols_p even.
@compute @workgroup_size(256)
fn pack_f16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let half_cols = pad.cols_p / 2u;
    if (i >= pad.rows_p * half_cols) {
        return;
    }
    let r = i / half_cols;
    let c = 2u * (i % half_cols);
    packed[i] = f16_bits(padded_value(r, c)) | (f16_bits(padded_value(r, c + 1u)) << 16u);
}

// Invocation i writes element (r, c) = (i / cols, i % cols) of the view in out from x (rows_p, cols_p).
@compute @workgroup_size(256)
fn unpad_product(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= pad.rows * pad.cols) {
        return;
    }
    let r = i / pad.cols;
    let c = i % pad.cols;
    var v = pad.alpha * x[r * pad.cols_p + c];
    if ((pad.flags & 1u) != 0u) {
        v = v + bias[c];
    }
    let at = pad.off + r * pad.rs + c * pad.cs;
    if ((pad.flags & 2u) != 0u) {
        v = v + out[at];
    }
    out[at] = v;
}

// pack_f16 for a view whose rows are contiguous (rs = 1): one workgroup packs a tile of 64 rows x 32 columns.
// Reads go down the columns (64 consecutive rows per column), the tile is transposed in workgroup memory (row
// stride 33 against bank conflicts), and writes go along the packed rows (16 words per row).
const COL_TILE_ROWS: u32 = 64u;
const COL_TILE_COLS: u32 = 32u;
var<workgroup> col_tile: array<u32, 2112>; // 64 rows x 33, f16 bits

@compute @workgroup_size(256)
fn pack_f16_columns(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row0 = wg.y * COL_TILE_ROWS;
    let col0 = wg.x * COL_TILE_COLS;
    // 8 passes of 4 columns x 64 rows.
    for (var step = 0u; step < 8u; step++) {
        let r = li % COL_TILE_ROWS;
        let c = li / COL_TILE_ROWS + 4u * step;
        col_tile[r * 33u + c] = f16_bits(padded_value(row0 + r, col0 + c));
    }
    workgroupBarrier();
    // 4 passes of 16 rows x 16 words.
    let half_cols = pad.cols_p / 2u;
    for (var step = 0u; step < 4u; step++) {
        let j = li % 16u;
        let r = li / 16u + 16u * step;
        let word = col0 / 2u + j;
        if (row0 + r < pad.rows_p && word < half_cols) {
            packed[(row0 + r) * half_cols + word] = col_tile[r * 33u + 2u * j] | (col_tile[r * 33u + 2u * j + 1u] << 16u);
        }
    }
}
