// droppath.wgsl: drop path (stochastic depth): each sample's branch is kept with probability keep_prob
// (then scaled by 1 / keep_prob) or dropped whole. The keep decision comes from a counter-based hash of
// (seed, stream, sample), so the same seed gives the same result on every adapter and the backward pass
// (the same kernel applied to the upstream gradient) reuses the forward's decisions without storing them.
//
// Shapes: out, x (B, per_sample). With bit 0 of flags the result is added to out (fused residual add).
// residual_branch, the forward residual update of one branch in one pass: out = x_in + s_b · λ[c] · x with
// s_b the drop-path scale (bit 1 of flags; else 1) and λ the layer scale (bit 2; else 1), c = e % cols;
// x_in, λ (C).
// The `4` entries do four elements per thread through vec4 views of the same buffers where a quad lies in
// one sample (drop_path: per_sample a multiple of 4) and one row (residual_branch: C a multiple of 4): on
// llvmpipe every storage access is a loop over the lanes, so four elements per access roughly halved them.
// residual_branch_backward, the backward of a residual_branch with layer scale in one pass: with dy (B·T, C)
// the gradient of out, d branch = s_b · λ[c] · dy (written to out) and the layer scale's gradient as partial
// column sums part (chunks, C) of s_b · dy ⊙ branch (branch bound as x_in), one per chunk of rows_per_chunk
// rows, which reduce.wgsl's col_sum finishes. One thread per (chunk, column) or, in its `4` entry, per
// (chunk, quad of columns): it walks its chunk's rows, so every element is read and written once (the old path
// was a drop path, a layer scale and the partial sums: three passes, four launches with the column sum).

struct DropPathParams {
    batch: u32,
    per_sample: u32,
    keep_prob: f32,
    flags: u32,
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    // Columns of a row (λ's length), for residual_branch.
    cols: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<uniform> p: DropPathParams;
@group(0) @binding(3) var<storage, read> x_in: array<f32>;
@group(0) @binding(4) var<storage, read> lambda: array<f32>;
@group(0) @binding(5) var<storage, read_write> out4: array<vec4<f32>>; // out, 4 at a time
@group(0) @binding(6) var<storage, read> x4: array<vec4<f32>>;         // x, 4 at a time
@group(0) @binding(7) var<storage, read> x_in4: array<vec4<f32>>;      // x_in, 4 at a time
@group(0) @binding(8) var<storage, read> lambda4: array<vec4<f32>>;    // λ, 4 at a time
// residual_branch_backward: the layer scale's partial sums (chunks, C), and how the rows are chunked.
@group(0) @binding(9) var<storage, read_write> part: array<f32>;
@group(0) @binding(10) var<storage, read_write> part4: array<vec4<f32>>; // part, 4 at a time
@group(0) @binding(11) var<uniform> chunking: ChunkParams;

struct ChunkParams {
    rows: u32,
    rows_per_chunk: u32,
    chunks: u32,
    _pad: u32,
}

// A 32-bit integer hash with good avalanche (xorshift-multiply rounds).
fn mix32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

fn sample_scale(b: u32) -> f32 {
    let h = mix32(p.seed_lo ^ mix32(p.seed_hi ^ mix32(p.stream ^ mix32(b))));
    let u = f32(h >> 8u) * (1.0 / 16777216.0);
    return select(0.0, 1.0 / p.keep_prob, u < p.keep_prob);
}

@compute @workgroup_size(256)
fn drop_path(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let e = (wg.x + wg.y * nwg.x) * 256u + li;
    if (e >= p.batch * p.per_sample) {
        return;
    }
    let v = x[e] * sample_scale(e / p.per_sample);
    if ((p.flags & 1u) != 0u) {
        out[e] = out[e] + v;
    } else {
        out[e] = v;
    }
}

@compute @workgroup_size(256)
fn residual_branch(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let e = (wg.x + wg.y * nwg.x) * 256u + li;
    if (e >= p.batch * p.per_sample) {
        return;
    }
    var v = x[e];
    if ((p.flags & 4u) != 0u) {
        v *= lambda[e % p.cols];
    }
    if ((p.flags & 2u) != 0u) {
        v *= sample_scale(e / p.per_sample);
    }
    out[e] = x_in[e] + v;
}

@compute @workgroup_size(256)
fn drop_path4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let q = (wg.x + wg.y * nwg.x) * 256u + li;
    if (q >= p.batch * p.per_sample / 4u) {
        return;
    }
    let v = x4[q] * sample_scale(4u * q / p.per_sample);
    if ((p.flags & 1u) != 0u) {
        out4[q] = out4[q] + v;
    } else {
        out4[q] = v;
    }
}

@compute @workgroup_size(256)
fn residual_branch4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let q = (wg.x + wg.y * nwg.x) * 256u + li;
    if (q >= p.batch * p.per_sample / 4u) {
        return;
    }
    let e = 4u * q;
    var v = x4[q];
    if ((p.flags & 4u) != 0u) {
        v *= lambda4[(e % p.cols) / 4u];
    }
    if ((p.flags & 2u) != 0u) {
        v *= sample_scale(e / p.per_sample);
    }
    out4[q] = x_in4[q] + v;
}

// The drop-path scale of row `row`'s sample (rows of `cols` values, `per_sample` values per sample), or 1
// without drop path (bit 1 of flags).
fn row_scale(row: u32) -> f32 {
    if ((p.flags & 2u) == 0u) {
        return 1.0;
    }
    return sample_scale(row / (p.per_sample / p.cols));
}

@compute @workgroup_size(64)
fn residual_branch_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) li: u32) {
    let g = (wg.x + wg.y * nwg.x) * 64u + li;
    if (g >= p.cols * chunking.chunks) {
        return;
    }
    let c = g % p.cols;
    let chunk = g / p.cols;
    let r0 = chunk * chunking.rows_per_chunk;
    let r1 = min(chunking.rows, r0 + chunking.rows_per_chunk);
    let lam = lambda[c];
    var s = 0.0;
    for (var row = r0; row < r1; row++) {
        let e = row * p.cols + c;
        let dy = x[e] * row_scale(row);
        s += dy * x_in[e];
        out[e] = dy * lam;
    }
    part[g] = s;
}

@compute @workgroup_size(64)
fn residual_branch_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) li: u32) {
    let quads = p.cols / 4u;
    let g = (wg.x + wg.y * nwg.x) * 64u + li;
    if (g >= quads * chunking.chunks) {
        return;
    }
    let cq = g % quads;
    let chunk = g / quads;
    let r0 = chunk * chunking.rows_per_chunk;
    let r1 = min(chunking.rows, r0 + chunking.rows_per_chunk);
    let lam = lambda4[cq];
    var s = vec4<f32>(0.0);
    for (var row = r0; row < r1; row++) {
        let q = row * quads + cq;
        let dy = x4[q] * row_scale(row);
        s += dy * x_in4[q];
        out4[q] = dy * lam;
    }
    part4[g] = s;
}
