// matmul_coop.wgsl: the f16-input matrix product on cooperative matrices (tensor cores), for mixed precision.
// C32 (Mp, Np) = A16 (Mp, Kp) · B16 (Kp, Np), all dense row-major; Mp and Np are multiples of 64 and Kp of 16
// (precision.wgsl's pack_f16 writes A16 and B16 rounded and zero-padded, and its unpad_product moves C32 into
// the caller's view with alpha, bias and accumulation). Products accumulate in f32.
//
// One workgroup is one 32-lane subgroup (launched only where subgroups are exactly 32 lanes) and owns the
// 64 x 64 block of C32 at (64·wg.y, 64·wg.x): 4 x 4 accumulators of 16 x 16, and for each 16-deep slice of k
// it loads 4 tiles of A16 and 4 of B16 straight from storage and does 16 multiply-adds. Every tile lies inside
// the padded matrices, so nothing is bounds-checked. The loops are unrolled by hand (naga's loops do not unroll),
// and every pointer, stride and stored matrix is bound to a `let` first (naga's SPIR-V writer needs it).
// The CPU twin is src/cpu/precision.rs (linear_forward_f16: the same f16-rounded operands, f32 sums).

enable f16;
enable wgpu_cooperative_matrix;

struct CoopParams {
    mp: u32,
    np: u32,
    kp: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read_write> c32: array<f32>;
@group(0) @binding(1) var<storage, read> a16: array<f16>;
@group(0) @binding(2) var<storage, read> b16: array<f16>;
@group(0) @binding(3) var<uniform> p: CoopParams;

@compute @workgroup_size(32)
fn gemm_coop(@builtin(workgroup_id) wg: vec3<u32>) {
    let row0 = wg.y * 64u;
    let col0 = wg.x * 64u;
    let np = p.np;
    let kp = p.kp;
    var acc00 = coop_mat16x16<f32, C>();
    var acc01 = coop_mat16x16<f32, C>();
    var acc02 = coop_mat16x16<f32, C>();
    var acc03 = coop_mat16x16<f32, C>();
    var acc10 = coop_mat16x16<f32, C>();
    var acc11 = coop_mat16x16<f32, C>();
    var acc12 = coop_mat16x16<f32, C>();
    var acc13 = coop_mat16x16<f32, C>();
    var acc20 = coop_mat16x16<f32, C>();
    var acc21 = coop_mat16x16<f32, C>();
    var acc22 = coop_mat16x16<f32, C>();
    var acc23 = coop_mat16x16<f32, C>();
    var acc30 = coop_mat16x16<f32, C>();
    var acc31 = coop_mat16x16<f32, C>();
    var acc32 = coop_mat16x16<f32, C>();
    var acc33 = coop_mat16x16<f32, C>();
    for (var k = 0u; k < kp; k += 16u) {
        let a_at0 = &a16[(row0 + 0u) * kp + k];
        let a0 = coopLoadT<coop_mat16x16<f16, A>>(a_at0, kp);
        let a_at1 = &a16[(row0 + 16u) * kp + k];
        let a1 = coopLoadT<coop_mat16x16<f16, A>>(a_at1, kp);
        let a_at2 = &a16[(row0 + 32u) * kp + k];
        let a2 = coopLoadT<coop_mat16x16<f16, A>>(a_at2, kp);
        let a_at3 = &a16[(row0 + 48u) * kp + k];
        let a3 = coopLoadT<coop_mat16x16<f16, A>>(a_at3, kp);
        let b_at0 = &b16[k * np + col0 + 0u];
        let b0 = coopLoadT<coop_mat16x16<f16, B>>(b_at0, np);
        let b_at1 = &b16[k * np + col0 + 16u];
        let b1 = coopLoadT<coop_mat16x16<f16, B>>(b_at1, np);
        let b_at2 = &b16[k * np + col0 + 32u];
        let b2 = coopLoadT<coop_mat16x16<f16, B>>(b_at2, np);
        let b_at3 = &b16[k * np + col0 + 48u];
        let b3 = coopLoadT<coop_mat16x16<f16, B>>(b_at3, np);
        acc00 = coopMultiplyAdd(a0, b0, acc00);
        acc01 = coopMultiplyAdd(a0, b1, acc01);
        acc02 = coopMultiplyAdd(a0, b2, acc02);
        acc03 = coopMultiplyAdd(a0, b3, acc03);
        acc10 = coopMultiplyAdd(a1, b0, acc10);
        acc11 = coopMultiplyAdd(a1, b1, acc11);
        acc12 = coopMultiplyAdd(a1, b2, acc12);
        acc13 = coopMultiplyAdd(a1, b3, acc13);
        acc20 = coopMultiplyAdd(a2, b0, acc20);
        acc21 = coopMultiplyAdd(a2, b1, acc21);
        acc22 = coopMultiplyAdd(a2, b2, acc22);
        acc23 = coopMultiplyAdd(a2, b3, acc23);
        acc30 = coopMultiplyAdd(a3, b0, acc30);
        acc31 = coopMultiplyAdd(a3, b1, acc31);
        acc32 = coopMultiplyAdd(a3, b2, acc32);
        acc33 = coopMultiplyAdd(a3, b3, acc33);
    }
    let c_at00 = &c32[(row0 + 0u) * np + col0 + 0u];
    let sum00 = acc00;
    coopStoreT(sum00, c_at00, np);
    let c_at01 = &c32[(row0 + 0u) * np + col0 + 16u];
    let sum01 = acc01;
    coopStoreT(sum01, c_at01, np);
    let c_at02 = &c32[(row0 + 0u) * np + col0 + 32u];
    let sum02 = acc02;
    coopStoreT(sum02, c_at02, np);
    let c_at03 = &c32[(row0 + 0u) * np + col0 + 48u];
    let sum03 = acc03;
    coopStoreT(sum03, c_at03, np);
    let c_at10 = &c32[(row0 + 16u) * np + col0 + 0u];
    let sum10 = acc10;
    coopStoreT(sum10, c_at10, np);
    let c_at11 = &c32[(row0 + 16u) * np + col0 + 16u];
    let sum11 = acc11;
    coopStoreT(sum11, c_at11, np);
    let c_at12 = &c32[(row0 + 16u) * np + col0 + 32u];
    let sum12 = acc12;
    coopStoreT(sum12, c_at12, np);
    let c_at13 = &c32[(row0 + 16u) * np + col0 + 48u];
    let sum13 = acc13;
    coopStoreT(sum13, c_at13, np);
    let c_at20 = &c32[(row0 + 32u) * np + col0 + 0u];
    let sum20 = acc20;
    coopStoreT(sum20, c_at20, np);
    let c_at21 = &c32[(row0 + 32u) * np + col0 + 16u];
    let sum21 = acc21;
    coopStoreT(sum21, c_at21, np);
    let c_at22 = &c32[(row0 + 32u) * np + col0 + 32u];
    let sum22 = acc22;
    coopStoreT(sum22, c_at22, np);
    let c_at23 = &c32[(row0 + 32u) * np + col0 + 48u];
    let sum23 = acc23;
    coopStoreT(sum23, c_at23, np);
    let c_at30 = &c32[(row0 + 48u) * np + col0 + 0u];
    let sum30 = acc30;
    coopStoreT(sum30, c_at30, np);
    let c_at31 = &c32[(row0 + 48u) * np + col0 + 16u];
    let sum31 = acc31;
    coopStoreT(sum31, c_at31, np);
    let c_at32 = &c32[(row0 + 48u) * np + col0 + 32u];
    let sum32 = acc32;
    coopStoreT(sum32, c_at32, np);
    let c_at33 = &c32[(row0 + 48u) * np + col0 + 48u];
    let sum33 = acc33;
    coopStoreT(sum33, c_at33, np);
}
