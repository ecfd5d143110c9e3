// precision.wgsl: the parts of mixed-precision training that are not products. round_f16 rounds values to the
// nearest IEEE binary16 (ties to even; 65520 and up become infinite), kept in f32: the operands an f16-input
// product sees, used where a product is emulated with f32 kernels. scale_loss (and scale_loss4, four at a time)
// multiplies the loss gradient by the dynamic loss scale before the backward. update_loss_scale runs once after
// AdamW: it records the scale the step used, skips nothing itself (AdamW read the same state and left the
// weights alone when Σ g² was not finite) and sets the next scale: halved after an overflow, doubled after
// growth_interval finite steps in a row.
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
