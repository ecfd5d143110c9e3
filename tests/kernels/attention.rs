//! attention.wgsl and the attention core: softmax (+bias) forward / backward, relative position bias gather
//! and scatter-add, and the full forward / backward through fused-qkv views, by both paths (composed from gemm
//! and softmax launches, and the one-launch `attention_lanes` where the device and shape allow it).
//! Tolerances: softmax atol 1e-6, rtol 1e-5 (exp and one division per element, sums over ≤ a few hundred);
//! attention outputs and gradients atol 1e-5·√T·D-scaled, rtol 1e-4 (three chained f32 products).

use super::common::*;
use beitlab::cpu;
use beitlab::cpu::attention::{relative_position_index, RelposInverse};
use beitlab::gpu::GpuSlice;
use beitlab::ops::attention::{self, AttentionShape, HeadView, RelposScatterIndex};
use beitlab::ops::attention_lanes::AttentionKernel;
use beitlab::ops::RowKernel;

/// Both kernels (a workgroup per row, a thread per row) on the same inputs.
fn softmax_case(rows: usize, cols: usize, bias_rows: usize, seed: u64) {
    softmax_case_using(RowKernel::Workgroup, rows, cols, bias_rows, seed);
    softmax_case_using(RowKernel::Thread, rows, cols, bias_rows, seed);
}

fn softmax_case_using(kind: RowKernel, rows: usize, cols: usize, bias_rows: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let s = rng.vec(rows * cols, 8.0);
    let bias = rng.vec(bias_rows.max(1) * cols, 3.0);
    let p = poisoned(rows * cols);
    let (sg, bg) = (up(&s), up(&bias));
    let b = (bias_rows > 0).then_some((&bg, bias_rows as u32));
    run(
        attention::softmax_forward_using(kind, ctx(), &p, &sg, b, rows as u32, cols as u32)
            .unwrap(),
    );
    let mut want = vec![0.0; rows * cols];
    let fb = f64s(&bias);
    cpu::attention::softmax_forward(
        &mut want,
        &f64s(&s),
        (bias_rows > 0).then_some((&fb[..], bias_rows)),
        rows,
        cols,
    );
    assert_close("softmax forward", &read(&p), &want, 1e-6, 1e-5);

    let dp = rng.vec(rows * cols, 1.0);
    let ds = poisoned(rows * cols);
    run(attention::softmax_backward_using(
        kind,
        ctx(),
        &ds,
        &p,
        &up(&dp),
        rows as u32,
        cols as u32,
    )
    .unwrap());
    let mut wds = vec![0.0; rows * cols];
    cpu::attention::softmax_backward(&mut wds, &want, &f64s(&dp), rows, cols);
    assert_close("softmax backward", &read(&ds), &wds, 1e-6, 1e-5);
}

#[test]
fn softmax_tiny() {
    softmax_case(1, 1, 0, 1);
    softmax_case(2, 3, 1, 2);
}

#[test]
fn softmax_odd() {
    softmax_case(3 * 5 * 17, 17, 5 * 17, 3);
    softmax_case(13, 197, 0, 4);
}

#[test]
fn softmax_rows_past_65535() {
    softmax_case(70_003, 5, 7, 5);
}

#[test]
fn relative_position_index_matches_beit() {
    // 14 x 14 grid: 27·27 + 3 = 732 table rows; CLS entries at n-3, n-2, n-1.
    let (idx, rows) = relative_position_index(14, 14);
    assert_eq!(rows, 732);
    let t = 197;
    assert_eq!(idx[0], 731);
    assert_eq!(idx[5], 729);
    assert_eq!(idx[5 * t], 730);
    // Patch 0 (0,0) to itself: (0 + 13)·27 + 13 = 364; patch 0 to patch 15 (1,1): (−1 + 13)·27 + (−1 + 13) = 336.
    assert_eq!(idx[t + 1], 364);
    assert_eq!(idx[t + 16], 336);
    assert!(idx.iter().all(|&r| (r as usize) < rows));
}

fn relpos_case(gh: usize, gw: usize, heads: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let (idx, rows) = relative_position_index(gh, gw);
    let tt = idx.len();
    let table = rng.vec(rows * heads, 1.0);
    let bias = poisoned(heads * tt);
    let ig = up_u32(&idx);
    run(attention::relpos_gather(
        ctx(),
        &bias,
        &up(&table),
        &ig,
        heads as u32,
        tt as u32,
        rows as u32,
    )
    .unwrap());
    let mut want = vec![0.0; heads * tt];
    cpu::attention::relpos_gather(&mut want, &f64s(&table), &idx, heads, tt);
    assert_close("relpos gather", &read(&bias), &want, 0.0, 0.0);

    let dbias = rng.vec(heads * tt, 1.0);
    let d0 = rng.vec(rows * heads, 1.0);
    let dtable = with(&d0);
    let inv = RelposScatterIndex::upload(ctx(), &RelposInverse::new(&idx, rows));
    run(attention::relpos_scatter(ctx(), &dtable, &up(&dbias), &inv, heads as u32, true).unwrap());
    let mut want = f64s(&d0);
    cpu::attention::relpos_scatter(&mut want, &f64s(&dbias), &idx, heads, tt, true);
    assert_close("relpos scatter", &read(&dtable), &want, 1e-5, 1e-5);

    // Straight from a batch of score gradients (B, H, T·T), written over (not accumulated) this time.
    let batch = 3;
    let dscores = rng.vec(batch * heads * tt, 1.0);
    let dtable = poisoned(rows * heads);
    run(attention::relpos_scatter_batched(
        ctx(),
        &dtable,
        &up(&dscores),
        &inv,
        heads as u32,
        batch as u32,
        false,
    )
    .unwrap());
    let mut want = vec![0.0; rows * heads];
    cpu::attention::relpos_scatter_batched(
        &mut want,
        &f64s(&dscores),
        &idx,
        heads,
        tt,
        batch,
        false,
    );
    assert_close("relpos scatter batched", &read(&dtable), &want, 1e-5, 1e-5);
}

#[test]
fn relpos_tiny() {
    relpos_case(1, 1, 1, 1);
    relpos_case(2, 3, 2, 2);
}

#[test]
fn relpos_beit_grid() {
    relpos_case(14, 14, 3, 3);
    relpos_case(7, 5, 5, 4);
}

/// The attention paths that can run `tokens` x `head_dim` over fused-qkv views on this device. On llvmpipe
/// (the test driver) the one-launch path must be among them wherever the shape allows it.
fn attention_kernels(heads: u32, tokens: u32, head_dim: u32) -> Vec<AttentionKernel> {
    let c = ctx();
    let s = AttentionShape {
        batch: 1,
        heads,
        tokens,
        head_dim,
        scale: 1.0,
    };
    let views = [
        HeadView::fused_qkv(0, heads, tokens, head_dim),
        HeadView::btc(heads, tokens, head_dim),
    ];
    let lanes = AttentionKernel::Lanes.fits(c, s, &views);
    if c.adapter_info.name.contains("llvmpipe")
        && tokens <= 64
        && head_dim.is_multiple_of(4)
        && (4..=32).contains(&head_dim)
    {
        assert!(
            lanes,
            "llvmpipe takes the one-launch attention at {tokens} x {head_dim}"
        );
    }
    let mut kinds = vec![AttentionKernel::Composed];
    if lanes {
        kinds.push(AttentionKernel::Lanes);
    }
    kinds
}

/// One attention test's inputs through fused-qkv views (qkv and a bias table, uniform in [-1, 1)) and the CPU
/// twin's forward on them (O and P), for the composed / one-launch and the fused tests.
pub(super) struct Case {
    pub rng: Rng,
    pub shape: AttentionShape,
    pub qkv: Vec<f32>,
    pub bias: Vec<f32>,
    pub fq: Vec<f64>,
    pub fb: Vec<f64>,
    pub views: [HeadView; 3],
    pub ov: HeadView,
    /// Elements of O (B·T·C) and of P (B·H·T·T).
    pub out_len: usize,
    pub tt: usize,
    pub wo: Vec<f64>,
    pub wp: Vec<f64>,
}

impl Case {
    pub(super) fn new(
        batch: u32,
        heads: u32,
        tokens: u32,
        head_dim: u32,
        with_bias: bool,
        seed: u64,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let c = heads * head_dim;
        let qkv = rng.vec((batch * tokens * 3 * c) as usize, 1.0);
        let bias = rng.vec((heads * tokens * tokens) as usize, 1.0);
        let shape = AttentionShape {
            batch,
            heads,
            tokens,
            head_dim,
            scale: (head_dim as f32).powf(-0.5),
        };
        let views = [0, 1, 2].map(|part| HeadView::fused_qkv(part, heads, tokens, head_dim));
        let ov = HeadView::btc(heads, tokens, head_dim);
        let (out_len, tt) = (
            (batch * tokens * c) as usize,
            (batch * heads * tokens * tokens) as usize,
        );
        let (fq, fb) = (f64s(&qkv), f64s(&bias));
        let (mut wo, mut wp) = (vec![0.0; out_len], vec![0.0; tt]);
        cpu::attention::attention_forward(
            (&mut wo, ov),
            &mut wp,
            (&fq, views[0]),
            (&fq, views[1]),
            (&fq, views[2]),
            with_bias.then_some(&fb[..]),
            shape,
        );
        Self {
            rng,
            shape,
            qkv,
            bias,
            fq,
            fb,
            views,
            ov,
            out_len,
            tt,
            wo,
            wp,
        }
    }
}

fn attention_case(batch: u32, heads: u32, tokens: u32, head_dim: u32, with_bias: bool, seed: u64) {
    for kind in attention_kernels(heads, tokens, head_dim) {
        attention_case_using(kind, batch, heads, tokens, head_dim, with_bias, seed);
    }
}

fn attention_case_using(
    kind: AttentionKernel,
    batch: u32,
    heads: u32,
    tokens: u32,
    head_dim: u32,
    with_bias: bool,
    seed: u64,
) {
    let mut case = Case::new(batch, heads, tokens, head_dim, with_bias, seed);
    let (s, [qv, kv, vv], ov, tt) = (case.shape, case.views, case.ov, case.tt);
    let (o, p, scores) = (poisoned(case.out_len), poisoned(tt), poisoned(tt));
    let (qg, bg) = (up(&case.qkv), up(&case.bias));
    run(attention::attention_forward_using(
        kind,
        ctx(),
        (&o, ov),
        &p,
        &scores,
        (&qg, qv),
        (&qg, kv),
        (&qg, vv),
        with_bias.then_some(&bg),
        s,
    )
    .unwrap());
    let (fq, wo, wp) = (&case.fq, &case.wo, &case.wp);
    let (c, qkv_len, rng) = (heads * head_dim, case.qkv.len(), &mut case.rng);
    let tol = 1e-5 * (tokens as f64).sqrt();
    let what = |x: &str| format!("{kind:?} attention {x}");
    assert_close(&what("p"), &read(&p), wp, 1e-6, 1e-5);
    assert_close(&what("o"), &read(&o), wo, tol, 1e-4);

    let dout = rng.vec((batch * tokens * c) as usize, 1.0);
    let dqkv = poisoned(qkv_len);
    let db0 = rng.vec((heads * tokens * tokens) as usize, 1.0);
    let dbias = with(&db0);
    let (dp, ds) = (poisoned(tt), poisoned(tt));
    run(attention::attention_backward_using(
        kind,
        ctx(),
        (&dqkv, qv),
        (&dqkv, kv),
        (&dqkv, vv),
        with_bias.then_some(&dbias),
        &dp,
        &ds,
        (&up(&dout), ov),
        &p,
        (&qg, qv),
        (&qg, kv),
        (&qg, vv),
        s,
    )
    .unwrap());
    let want = TwinBackward::new(fq, wp, &dout, &db0, with_bias, s);
    want.check(&what(""), &dqkv, with_bias.then_some(&dbias), tol);
}

/// The CPU twin's attention backward through fused-qkv views, for the composed / one-launch and the fused
/// tests: dqkv (each part where its view places it) and the bias gradient added to its starting values.
pub(super) struct TwinBackward {
    dqkv: Vec<f64>,
    dbias: Vec<f64>,
    batch: u32,
}

impl TwinBackward {
    pub(super) fn new(
        fq: &[f64],
        wp: &[f64],
        dout: &[f32],
        db0: &[f32],
        with_bias: bool,
        s: AttentionShape,
    ) -> Self {
        let c = (s.heads * s.head_dim) as usize;
        let len = fq.len();
        let view = |part| HeadView::fused_qkv(part, s.heads, s.tokens, s.head_dim);
        let ov = HeadView::btc(s.heads, s.tokens, s.head_dim);
        let (mut wdq, mut wdk, mut wdv) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
        let mut dbias = f64s(db0);
        cpu::attention::attention_backward(
            (&mut wdq, view(0)),
            (&mut wdk, view(1)),
            (&mut wdv, view(2)),
            with_bias.then_some(&mut dbias[..]),
            (&f64s(dout), ov),
            wp,
            (fq, view(0)),
            (fq, view(1)),
            (fq, view(2)),
            s,
        );
        let dqkv = (0..len)
            .map(|i| [wdq[i], wdk[i], wdv[i]][(i / c) % 3])
            .collect();
        Self {
            dqkv,
            dbias,
            batch: s.batch,
        }
    }

    /// dqkv within `tol` x 4 (atol) and 1e-4 (rtol); the bias gradient, where given, within 1e-5 per image.
    pub(super) fn check(&self, what: &str, dqkv: &GpuSlice, dbias: Option<&GpuSlice>, tol: f64) {
        assert_close(
            &format!("{what}dqkv"),
            &read(dqkv),
            &self.dqkv,
            tol * 4.0,
            1e-4,
        );
        if let Some(db) = dbias {
            assert_close(
                &format!("{what}dbias"),
                &read(db),
                &self.dbias,
                1e-5 * self.batch as f64 + 1e-6,
                1e-5,
            );
        }
    }
}

#[test]
fn attention_tiny() {
    attention_case(1, 1, 1, 1, true, 1);
    attention_case(1, 2, 3, 2, false, 2);
}

#[test]
fn attention_odd() {
    attention_case(3, 3, 17, 13, true, 3);
}

#[test]
fn attention_beit_tiny32_shape() {
    // tiny32: T = 65 tokens, 3 heads of 64.
    attention_case(2, 3, 65, 64, true, 4);
}

#[test]
fn attention_one_launch_shapes() {
    // The one-launch path's edges: one token, a single group of 8 rows, micro's 17 x 16, every lane's fourth
    // key (32 x 32), head dimensions of 4 and 12, with and without bias.
    attention_case(1, 1, 1, 4, true, 5);
    attention_case(2, 2, 8, 8, false, 6);
    attention_case(4, 2, 17, 16, true, 7);
    attention_case(3, 2, 32, 32, true, 8);
    attention_case(1, 3, 9, 12, true, 9);
    attention_case(2, 1, 25, 4, false, 10);
    // Eight keys per lane (WIDE): 33 tokens, mini's 50 x 16, the longest (64), with and without bias.
    attention_case(1, 2, 33, 8, true, 11);
    attention_case(2, 3, 50, 16, true, 12);
    attention_case(2, 1, 64, 32, true, 13);
    attention_case(1, 1, 41, 4, false, 14);
}

#[test]
fn attention_one_launch_refuses_what_it_cannot_take() {
    let c = ctx();
    let s = |tokens, head_dim| AttentionShape {
        batch: 1,
        heads: 1,
        tokens,
        head_dim,
        scale: 1.0,
    };
    let v = |t, d| [HeadView::fused_qkv(0, 1, t, d)];
    assert!(!AttentionKernel::Lanes.fits(c, s(65, 16), &v(65, 16)));
    assert!(!AttentionKernel::Lanes.fits(c, s(17, 13), &v(17, 13)));
    assert!(!AttentionKernel::Lanes.fits(c, s(17, 36), &v(17, 36)));
    let odd = [HeadView {
        off: 2,
        ..HeadView::bhtd(1, 17, 16)
    }];
    assert!(!AttentionKernel::Lanes.fits(c, s(17, 16), &odd));
    let t = 65;
    let (qkv, o, p) = (
        poisoned((t * 3 * 16) as usize),
        poisoned((t * 16) as usize),
        poisoned((t * t) as usize),
    );
    let err = attention::attention_forward_using(
        AttentionKernel::Lanes,
        c,
        (&o, HeadView::btc(1, t, 16)),
        &p,
        &p,
        (&qkv, HeadView::fused_qkv(0, 1, t, 16)),
        (&qkv, HeadView::fused_qkv(1, 1, t, 16)),
        (&qkv, HeadView::fused_qkv(2, 1, t, 16)),
        None,
        s(t, 16),
    )
    .err()
    .expect("65 tokens is past the one-launch path");
    assert!(err.to_string().contains("at most 64 tokens"), "{err}");
}
