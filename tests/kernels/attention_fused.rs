//! attention_fused.wgsl against the CPU twins (`cpu::attention::attention_forward`, `attention_lse`,
//! `attention_backward`, themselves checked against finite differences in tests/gradients.rs): O and the
//! per-row log-sum-exp forward; dQ, dK, dV, the P and dS the backward writes, and the bias gradient Σ_b dS,
//! through fused-qkv views, outputs poisoned first. Sizes: one token, a tile's edges (8, 9, 16, 17, 32, 33
//! tokens: the backward's 8-key tiles, the 16-row query tiles, the forward's 32-key tiles), odd head widths,
//! BEiT tiny32 (65 x 64) and base (197 x 64).
//! Tolerances as tests/kernels/attention.rs: O and gradients atol 1e-5·√T (4x for gradients), rtol 1e-4;
//! P atol 1e-6, rtol 1e-5; lse atol 1e-5, rtol 1e-5.

use super::attention::{Case, TwinBackward};
use super::common::*;
use beitlab::cpu;
use beitlab::ops::attention::{AttentionShape, HeadView};
use beitlab::ops::attention_fused;

fn fused_case(batch: u32, heads: u32, tokens: u32, head_dim: u32, with_bias: bool, seed: u64) {
    let mut case = Case::new(batch, heads, tokens, head_dim, with_bias, seed);
    let (s, [qv, kv, vv], ov, tt) = (case.shape, case.views, case.ov, case.tt);
    let rows = attention_fused::lse_len(s) as usize;
    let (o, lse) = (poisoned(case.out_len), poisoned(rows));
    let (qg, bg) = (up(&case.qkv), up(&case.bias));
    run(attention_fused::forward(
        ctx(),
        (&o, ov),
        &lse,
        (&qg, qv),
        (&qg, kv),
        (&qg, vv),
        with_bias.then_some(&bg),
        s,
    )
    .unwrap());
    let (fq, wo, wp) = (&case.fq, &case.wo, &case.wp);
    let fbias = with_bias.then_some(&case.fb[..]);
    let (qkv_len, rng) = (case.qkv.len(), &mut case.rng);
    let c = heads * head_dim;
    let mut wlse = vec![0.0; rows];
    cpu::attention::attention_lse(&mut wlse, (fq, qv), (fq, kv), fbias, s);
    let tol = 1e-5 * (tokens as f64).sqrt();
    let what = |x: &str| format!("fused attention {batch}x{heads}x{tokens}x{head_dim} {x}");
    assert_close(&what("o"), &read(&o), wo, tol, 1e-4);
    assert_close(&what("lse"), &read(&lse), &wlse, 1e-5, 1e-5);

    let dout = rng.vec((batch * tokens * c) as usize, 1.0);
    let dqkv = poisoned(qkv_len);
    let db0 = rng.vec((heads * tokens * tokens) as usize, 1.0);
    let dbias = with(&db0);
    let (probs, ds) = (poisoned(tt), poisoned(tt));
    run(attention_fused::backward(
        ctx(),
        (&dqkv, qv),
        (&dqkv, kv),
        (&dqkv, vv),
        with_bias.then_some(&dbias),
        &probs,
        &ds,
        (&up(&dout), ov),
        (&o, ov),
        &lse,
        (&qg, qv),
        (&qg, kv),
        (&qg, vv),
        with_bias.then_some(&bg),
        s,
    )
    .unwrap());
    assert_close(&what("probs"), &read(&probs), wp, 1e-6, 1e-5);
    TwinBackward::new(fq, wp, &dout, &db0, with_bias, s).check(
        &what(""),
        &dqkv,
        with_bias.then_some(&dbias),
        tol,
    );
}

#[test]
fn fused_attention_tiny() {
    fused_case(1, 1, 1, 1, true, 31);
    fused_case(1, 2, 3, 2, false, 32);
}

#[test]
fn fused_attention_tile_edges() {
    // The backward's 8-key tiles, the 16-row query tiles, the forward's 32-key tiles: at and one past each.
    fused_case(2, 1, 8, 4, true, 33);
    fused_case(1, 2, 9, 8, false, 34);
    fused_case(1, 1, 16, 16, true, 35);
    fused_case(2, 2, 17, 16, true, 36);
    fused_case(1, 1, 32, 12, true, 37);
    fused_case(1, 2, 33, 20, false, 38);
}

#[test]
fn fused_attention_odd() {
    fused_case(3, 3, 17, 13, true, 39);
    fused_case(2, 1, 50, 63, true, 40);
}

#[test]
fn fused_attention_beit_shapes() {
    // tiny32: 65 tokens, heads of 64; base: 197 tokens, heads of 64 (the widest the kernels take).
    fused_case(2, 3, 65, 64, true, 41);
    fused_case(1, 2, 197, 64, true, 42);
}

#[test]
fn fused_attention_refuses_what_it_cannot_take() {
    let shape = |head_dim| AttentionShape {
        batch: 1,
        heads: 1,
        tokens: 5,
        head_dim,
        scale: 1.0,
    };
    assert!(attention_fused::fits(shape(64)));
    assert!(!attention_fused::fits(shape(65)));
    let t = 5;
    let (qkv, o, lse) = (
        poisoned((t * 3 * 65) as usize),
        poisoned((t * 65) as usize),
        poisoned(t as usize),
    );
    let err = attention_fused::forward(
        ctx(),
        (&o, HeadView::btc(1, t, 65)),
        &lse,
        (&qkv, HeadView::fused_qkv(0, 1, t, 65)),
        (&qkv, HeadView::fused_qkv(1, 1, t, 65)),
        (&qkv, HeadView::fused_qkv(2, 1, t, 65)),
        None,
        shape(65),
    )
    .err()
    .expect("a head of 65 is past the fused kernels");
    assert!(err.to_string().contains("1 to 64 dimensions"), "{err}");
    // Q, K and V in separate buffers.
    let (q, k) = (poisoned((t * 16) as usize), poisoned((t * 16) as usize));
    let view = HeadView::bhtd(1, t, 16);
    let err = attention_fused::forward(
        ctx(),
        (&o, view),
        &lse,
        (&q, view),
        (&k, view),
        (&k, view),
        None,
        shape(16),
    )
    .err()
    .expect("Q, K and V must share a buffer");
    assert!(err.to_string().contains("one buffer"), "{err}");
}
