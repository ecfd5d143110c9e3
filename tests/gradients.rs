//! Every CPU backward against central finite differences in f64. Each check builds a scalar
//! L = Σ w ⊙ forward(inputs) with random weights w, runs the backward with upstream gradient w, and
//! compares with (L(x + h) − L(x − h)) / 2h, h = 1e-6. Tolerance: |err| ≤ 1e-6 + 1e-5·|grad| (f64 central
//! differences are accurate to ~1e-9 here; GELU's erfc fit is smooth to ~1e-7 relative).

use beitlab::cpu;
use beitlab::cpu::attention::relative_position_index;
use beitlab::ops::attention::{AttentionShape, HeadView};
use beitlab::ops::tokens::TokenShape;

struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.unit() * 2.0 - 1.0).collect()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Compare `analytic` with central differences of `loss` around `x`.
#[track_caller]
fn fd(what: &str, x: &[f64], analytic: &[f64], loss: impl Fn(&[f64]) -> f64) {
    let h = 1e-6;
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        xp[i] = x[i] + h;
        let lp = loss(&xp);
        xp[i] = x[i] - h;
        let lm = loss(&xp);
        xp[i] = x[i];
        let num = (lp - lm) / (2.0 * h);
        let err = (num - analytic[i]).abs();
        assert!(
            err <= 1e-6 + 1e-5 * num.abs(),
            "{what}[{i}]: analytic {} vs numeric {num} (error {err:.3e})",
            analytic[i]
        );
    }
}

#[test]
fn linear_backward_matches_fd() {
    let (m, n, k) = (3, 4, 5);
    let mut r = Rng(1);
    let (x, w, b, wy) = (r.vec(m * k), r.vec(n * k), r.vec(n), r.vec(m * n));
    let f = |x: &[f64], w: &[f64], b: &[f64]| {
        let mut y = vec![0.0; m * n];
        cpu::matmul::linear_forward(&mut y, x, w, Some(b), m, n, k);
        dot(&y, &wy)
    };
    let (mut dx, mut dw, mut db) = (vec![0.0; m * k], vec![0.0; n * k], vec![0.0; n]);
    cpu::matmul::linear_backward(
        Some(&mut dx),
        &mut dw,
        Some(&mut db),
        &wy,
        &x,
        &w,
        m,
        n,
        k,
        false,
    );
    fd("linear dx", &x, &dx, |v| f(v, &w, &b));
    fd("linear dw", &w, &dw, |v| f(&x, v, &b));
    fd("linear db", &b, &db, |v| f(&x, &w, v));
}

#[test]
fn layernorm_backward_matches_fd() {
    let (rows, cols) = (3, 7);
    let mut r = Rng(2);
    let (x, g, b, wy) = (
        r.vec(rows * cols),
        r.vec(cols),
        r.vec(cols),
        r.vec(rows * cols),
    );
    let f = |x: &[f64], g: &[f64], b: &[f64]| {
        let (mut y, mut mu, mut rs) = (vec![0.0; rows * cols], vec![0.0; rows], vec![0.0; rows]);
        cpu::layernorm::layernorm_forward(&mut y, &mut mu, &mut rs, x, g, b, rows, cols, 1e-6);
        dot(&y, &wy)
    };
    let (mut y, mut mu, mut rs) = (vec![0.0; rows * cols], vec![0.0; rows], vec![0.0; rows]);
    cpu::layernorm::layernorm_forward(&mut y, &mut mu, &mut rs, &x, &g, &b, rows, cols, 1e-6);
    let (mut dx, mut dg, mut db) = (vec![0.0; rows * cols], vec![0.0; cols], vec![0.0; cols]);
    cpu::layernorm::layernorm_backward(
        &mut dx, &mut dg, &mut db, &wy, &x, &mu, &rs, &g, rows, cols, false,
    );
    fd("layernorm dx", &x, &dx, |v| f(v, &g, &b));
    fd("layernorm dgamma", &g, &dg, |v| f(&x, v, &b));
    fd("layernorm dbeta", &b, &db, |v| f(&x, &g, v));
}

#[test]
fn gelu_backward_matches_fd() {
    let mut r = Rng(3);
    let x: Vec<f64> = r.vec(41).iter().map(|v| v * 5.0).collect();
    let wy = r.vec(41);
    let mut dx = vec![0.0; 41];
    cpu::gelu::gelu_backward(&mut dx, &wy, &x, 41, false);
    fd("gelu dx", &x, &dx, |v| {
        let mut y = vec![0.0; 41];
        cpu::gelu::gelu_forward(&mut y, v, 41);
        dot(&y, &wy)
    });
}

#[test]
fn softmax_backward_matches_fd() {
    let (rows, cols) = (4, 6);
    let mut r = Rng(4);
    let (s, wy) = (r.vec(rows * cols), r.vec(rows * cols));
    let f = |s: &[f64]| {
        let mut p = vec![0.0; rows * cols];
        cpu::attention::softmax_forward(&mut p, s, None, rows, cols);
        dot(&p, &wy)
    };
    let mut p = vec![0.0; rows * cols];
    cpu::attention::softmax_forward(&mut p, &s, None, rows, cols);
    let mut ds = vec![0.0; rows * cols];
    cpu::attention::softmax_backward(&mut ds, &p, &wy, rows, cols);
    fd("softmax ds", &s, &ds, f);
}

#[test]
fn attention_backward_matches_fd() {
    let (batch, heads, tokens, hd) = (2u32, 2u32, 5u32, 3u32);
    let s = AttentionShape {
        batch,
        heads,
        tokens,
        head_dim: hd,
        scale: (hd as f32).powf(-0.5),
    };
    let c = (heads * hd) as usize;
    let n = (batch * tokens) as usize * c;
    let view = HeadView::btc(heads, tokens, hd);
    let mut r = Rng(5);
    let (q, k, v, bias, wo) = (
        r.vec(n),
        r.vec(n),
        r.vec(n),
        r.vec((heads * tokens * tokens) as usize),
        r.vec(n),
    );
    let tt = (batch * heads * tokens * tokens) as usize;
    let f = |q: &[f64], k: &[f64], v: &[f64], b: &[f64]| {
        let (mut o, mut p) = (vec![0.0; n], vec![0.0; tt]);
        cpu::attention::attention_forward(
            (&mut o, view),
            &mut p,
            (q, view),
            (k, view),
            (v, view),
            Some(b),
            s,
        );
        dot(&o, &wo)
    };
    let (mut o, mut p) = (vec![0.0; n], vec![0.0; tt]);
    cpu::attention::attention_forward(
        (&mut o, view),
        &mut p,
        (&q, view),
        (&k, view),
        (&v, view),
        Some(&bias),
        s,
    );
    let (mut dq, mut dk, mut dv, mut db) = (
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; n],
        vec![0.0; bias.len()],
    );
    cpu::attention::attention_backward(
        (&mut dq, view),
        (&mut dk, view),
        (&mut dv, view),
        Some(&mut db),
        (&wo, view),
        &p,
        (&q, view),
        (&k, view),
        (&v, view),
        s,
    );
    fd("attention dq", &q, &dq, |x| f(x, &k, &v, &bias));
    fd("attention dk", &k, &dk, |x| f(&q, x, &v, &bias));
    fd("attention dv", &v, &dv, |x| f(&q, &k, x, &bias));
    fd("attention dbias", &bias, &db, |x| f(&q, &k, &v, x));
}

#[test]
fn relpos_scatter_is_the_adjoint_of_gather() {
    let (gh, gw, heads) = (3, 2, 2);
    let (idx, rows) = relative_position_index(gh, gw);
    let tt = idx.len();
    let mut r = Rng(6);
    let (table, wy) = (r.vec(rows * heads), r.vec(heads * tt));
    let mut dt = vec![0.0; rows * heads];
    cpu::attention::relpos_scatter(&mut dt, &wy, &idx, heads, tt, false);
    fd("relpos dtable", &table, &dt, |t| {
        let mut b = vec![0.0; heads * tt];
        cpu::attention::relpos_gather(&mut b, t, &idx, heads, tt);
        dot(&b, &wy)
    });
}

#[test]
fn token_assembly_backward_matches_fd() {
    let s = TokenShape {
        batch: 2,
        patches: 3,
        dim: 2,
    };
    let (b, n, c) = (2, 3, 2);
    let mask = [1u32, 0, 1, 0, 0, 1];
    let mut r = Rng(8);
    let (emb, mt, cls, pos, wy) = (
        r.vec(b * n * c),
        r.vec(c),
        r.vec(c),
        r.vec((n + 1) * c),
        r.vec(b * (n + 1) * c),
    );
    let f = |e: &[f64], mt: &[f64], cls: &[f64], pos: &[f64]| {
        let mut x = vec![0.0; b * (n + 1) * c];
        cpu::tokens::assemble(&mut x, e, Some((&mask[..], mt)), cls, Some(pos), s);
        dot(&x, &wy)
    };
    let (mut de, mut dm, mut dc, mut dp) = (
        vec![0.0; emb.len()],
        vec![0.0; c],
        vec![0.0; c],
        vec![0.0; pos.len()],
    );
    cpu::tokens::assemble_backward(
        Some(&mut de),
        Some(&mut dm),
        Some(&mut dc),
        Some(&mut dp),
        &wy,
        Some(&mask),
        s,
        false,
    );
    fd("tokens demb", &emb, &de, |v| f(v, &mt, &cls, &pos));
    fd("tokens dmask_token", &mt, &dm, |v| f(&emb, v, &cls, &pos));
    fd("tokens dcls", &cls, &dc, |v| f(&emb, &mt, v, &pos));
    fd("tokens dpos", &pos, &dp, |v| f(&emb, &mt, &cls, v));
}

#[test]
fn gather_scatter_rows_are_adjoint() {
    let (rows, dim) = (5, 3);
    let idx = [4u32, 0, 2];
    let mut r = Rng(9);
    let (src, wy) = (r.vec(rows * dim), r.vec(idx.len() * dim));
    let mut ds = vec![0.0; rows * dim];
    cpu::tokens::scatter_rows(&mut ds, &wy, &idx, idx.len(), dim, true);
    fd("gather_rows dsrc", &src, &ds, |v| {
        let mut o = vec![0.0; idx.len() * dim];
        cpu::tokens::gather_rows(&mut o, v, &idx, idx.len(), dim, false);
        dot(&o, &wy)
    });
}

#[test]
fn cross_entropy_backward_matches_fd() {
    let (total, vocab) = (5, 7);
    let rows = [3u32, 0, 4];
    let labels = [6u32, 2, 0];
    let m = rows.len();
    let mut r = Rng(10);
    let logits: Vec<f64> = r.vec(total * vocab).iter().map(|v| v * 3.0).collect();
    for smoothing in [0.0f32, 0.1] {
        let mean_loss = |z: &[f64]| {
            let (mut l, mut c, mut s) = (vec![0.0; m], vec![0.0; m], vec![0.0; m]);
            cpu::crossentropy::ce_forward(
                &mut l, &mut c, &mut s, z, &rows, &labels, m, vocab, smoothing,
            )
            .0
        };
        let (mut l, mut c, mut lse) = (vec![0.0; m], vec![0.0; m], vec![0.0; m]);
        cpu::crossentropy::ce_forward(
            &mut l, &mut c, &mut lse, &logits, &rows, &labels, m, vocab, smoothing,
        );
        let mut d = vec![0.0; total * vocab];
        cpu::crossentropy::ce_backward(
            &mut d,
            &logits,
            &lse,
            &rows,
            &labels,
            m,
            vocab,
            smoothing,
            1.0 / m as f32,
        );
        fd(
            &format!("cross-entropy dlogits (smoothing {smoothing})"),
            &logits,
            &d,
            mean_loss,
        );
    }
}

#[test]
fn drop_path_backward_matches_fd() {
    let (batch, per) = (6, 4);
    let mut r = Rng(11);
    let (x, wy) = (r.vec(batch * per), r.vec(batch * per));
    let mut dx = vec![0.0; batch * per];
    cpu::droppath::drop_path(&mut dx, &wy, batch, per, 0.6, 99, 1, false);
    fd("drop path dx", &x, &dx, |v| {
        let mut y = vec![0.0; batch * per];
        cpu::droppath::drop_path(&mut y, v, batch, per, 0.6, 99, 1, false);
        dot(&y, &wy)
    });
}

#[test]
fn residual_branch_backward_matches_fd() {
    let (batch, tokens, cols) = (5, 2, 3);
    let per = tokens * cols;
    let dims = (batch, per, cols);
    let mut r = Rng(13);
    let (x_in, branch, lam, wy) = (
        r.vec(batch * per),
        r.vec(batch * per),
        r.vec(cols),
        r.vec(batch * per),
    );
    let f = |branch: &[f64], lam: &[f64]| {
        let mut y = vec![0.0; batch * per];
        cpu::droppath::residual_branch(&mut y, &x_in, branch, Some(lam), dims, Some(0.6), 99, 2);
        dot(&y, &wy)
    };
    let (mut db, mut dl) = (vec![0.0; batch * per], vec![0.0; cols]);
    cpu::droppath::residual_branch_backward(
        &mut db,
        &mut dl,
        &wy,
        &branch,
        &lam,
        dims,
        Some(0.6),
        99,
        2,
    );
    assert!(
        db.contains(&0.0) && db.iter().any(|&v| v != 0.0),
        "seed 99 at 0.6 should drop some samples and keep others"
    );
    fd("residual branch d branch", &branch, &db, |v| f(v, &lam));
    fd("residual branch dλ", &lam, &dl, |v| f(&branch, v));
}

#[test]
fn patchify_is_a_permutation() {
    use beitlab::ops::patches::PatchShape;
    let s = PatchShape {
        batch: 2,
        channels: 3,
        height: 6,
        width: 4,
        patch: 2,
    };
    let n = s.elements() as usize;
    let img: Vec<f64> = (0..n).map(|v| v as f64).collect();
    let mut p = vec![0.0; n];
    cpu::patches::patchify(&mut p, &img, s);
    let mut sorted = p.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(sorted, img, "every pixel appears exactly once");
}

#[test]
fn mean_patches_backward_matches_fd() {
    let s = TokenShape {
        batch: 2,
        patches: 3,
        dim: 2,
    };
    let mut r = Rng(12);
    let (x, wy) = (r.vec(2 * 4 * 2), r.vec(2 * 2));
    let mut dx = vec![0.0; x.len()];
    cpu::tokens::mean_patches_backward(&mut dx, &wy, s, false);
    fd("mean_patches dx", &x, &dx, |v| {
        let mut o = vec![0.0; 4];
        cpu::tokens::mean_patches(&mut o, v, s);
        dot(&o, &wy)
    });
}

#[test]
fn patch_map_backward_matches_fd() {
    let s = TokenShape {
        batch: 2,
        patches: 3,
        dim: 2,
    };
    let mut r = Rng(13);
    let (x, wy) = (r.vec(2 * 4 * 2), r.vec(2 * 2 * 3));
    let mut dx = vec![0.0; x.len()];
    cpu::tokens::patch_map_backward(&mut dx, &wy, s, false);
    fd("patch_map dx", &x, &dx, |v| {
        let mut o = vec![0.0; 12];
        cpu::tokens::patch_map(&mut o, v, s);
        dot(&o, &wy)
    });
}

#[test]
fn l2norm_backward_matches_fd() {
    let (rows, dim) = (3, 5);
    let mut r = Rng(13);
    let (x, wy) = (r.vec(rows * dim), r.vec(rows * dim));
    let (mut y, mut n) = (vec![0.0; rows * dim], vec![0.0; rows]);
    cpu::vq::l2norm_forward(&mut y, &mut n, &x, rows, dim);
    let mut dx = vec![0.0; rows * dim];
    cpu::vq::l2norm_backward(&mut dx, &wy, &y, &n, rows, dim);
    fd("l2norm dx", &x, &dx, |v| {
        let (mut yy, mut nn) = (vec![0.0; rows * dim], vec![0.0; rows]);
        cpu::vq::l2norm_forward(&mut yy, &mut nn, v, rows, dim);
        dot(&yy, &wy)
    });
}

#[test]
fn mse_backward_matches_fd() {
    let (m, w) = (3, 4);
    let mut r = Rng(14);
    let (pred, target) = (r.vec(m * w), r.vec(m * w));
    let scale = 1.0 / (m * w) as f32;
    let mut d = vec![0.0; m * w];
    cpu::crossentropy::mse_backward(&mut d, &pred, &target, m, w, scale);
    fd("mse dpred", &pred, &d, |p| {
        let mut l = vec![0.0; m];
        cpu::crossentropy::mse_forward(&mut l, p, &target, m, w);
        l.iter().sum::<f64>() * scale as f64
    });
}

#[test]
fn conv2d_backward_matches_fd() {
    use beitlab::cpu::conv;
    use beitlab::ops::conv::{ConvEpilogue, ConvShape};
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (s, relu) in [
        (ConvShape::same(2, 3, 4, (5, 4), 3), false),
        (ConvShape::same(1, 2, 3, (4, 5), 5), true),
        (
            ConvShape {
                pad: 0,
                ..ConvShape::same(2, 2, 3, (6, 5), 2)
            },
            false,
        ),
    ] {
        let (x, w, b) = (
            rng.vec(s.input_len() as usize),
            rng.vec(s.weight_len() as usize),
            rng.vec(s.out_channels as usize),
        );
        // Keep inputs away from the ReLU's kink, where the derivative is not defined.
        let x: Vec<f64> = x
            .iter()
            .map(|&v| if v.abs() < 0.05 { v + 0.1 } else { v })
            .collect();
        let up = rng.vec(s.output_len() as usize);
        let e = ConvEpilogue {
            relu_input: relu,
            ..Default::default()
        };
        let fwd = |x: &[f64], w: &[f64], b: &[f64]| {
            let mut out = vec![0.0; s.output_len() as usize];
            conv::conv2d(&mut out, x, w, Some(b), s, e);
            dot(&out, &up)
        };
        let mut dx = vec![0.0; x.len()];
        conv::conv2d_input_grad(&mut dx, &up, &w, relu.then_some(&x[..]), s, false);
        fd("conv2d dx", &x, &dx, |xx| fwd(xx, &w, &b));
        let mut dw = vec![0.0; w.len()];
        conv::conv2d_weight_grad(&mut dw, &x, &up, s, relu, false);
        fd("conv2d dw", &w, &dw, |ww| fwd(&x, ww, &b));
        let mut db = vec![0.0; b.len()];
        conv::conv2d_bias_grad(&mut db, &up, s, false);
        fd("conv2d dbias", &b, &db, |bb| fwd(&x, &w, bb));
    }
}

#[test]
fn resize_bilinear_backward_and_pixel_cross_entropy_match_fd() {
    use beitlab::cpu::{pixel_loss, spatial};
    use beitlab::ops::spatial::ImageShape;
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let s = ImageShape {
        batch: 2,
        channels: 2,
        height: 5,
        width: 3,
    };
    for out_side in [(9, 7), (2, 2)] {
        let x = rng.vec(s.len() as usize);
        let up = rng.vec(2 * 2 * out_side.0 * out_side.1);
        let mut dx = vec![0.0; x.len()];
        spatial::resize_bilinear_backward(&mut dx, &up, s, out_side, false);
        fd("resize_bilinear dx", &x, &dx, |xx| {
            let mut y = vec![0.0; up.len()];
            spatial::resize_bilinear(&mut y, xx, s, out_side);
            dot(&y, &up)
        });
    }
    // Mean loss over counted pixels: d(mean loss)/d logits.
    let (batch, classes, pixels) = (2, 4, 6);
    let logits = rng.vec(batch * classes * pixels);
    let labels: Vec<u32> = (0..batch * pixels)
        .map(|i| {
            if i % 4 == 0 {
                u32::MAX
            } else {
                (i % classes) as u32
            }
        })
        .collect();
    let loss = |l: &[f64]| {
        let mut st = vec![0.0; 3 * batch * pixels];
        pixel_loss::pixel_cross_entropy(
            &mut st,
            None,
            l,
            &labels,
            batch,
            classes,
            pixels,
            u32::MAX,
            1.0 / 9.0,
            false,
        );
        st.chunks(3).map(|c| c[0]).sum::<f64>()
    };
    let mut st = vec![0.0; 3 * batch * pixels];
    let mut g = vec![0.0; logits.len()];
    pixel_loss::pixel_cross_entropy(
        &mut st,
        Some(&mut g),
        &logits,
        &labels,
        batch,
        classes,
        pixels,
        u32::MAX,
        1.0 / 9.0,
        false,
    );
    fd("pixel cross-entropy dlogits", &logits, &g, loss);
}

#[test]
fn pooling_and_upsampling_backward_match_fd() {
    use beitlab::cpu::spatial;
    use beitlab::ops::spatial::ImageShape;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let s = ImageShape {
        batch: 2,
        channels: 2,
        height: 5,
        width: 4,
    };
    // Distinct values: the maximum of each block is unique, so the pooling is differentiable there.
    let x: Vec<f64> = (0..s.len())
        .map(|i| i as f64 * 0.37 % 1.9 + rng.unit() * 1e-3)
        .collect();
    let up = rng.vec(2 * 2 * 2 * 2);
    let mut dx = vec![0.0; x.len()];
    spatial::max_pool2_backward(&mut dx, &up, &x, s, false);
    fd("max_pool2 dx", &x, &dx, |xx| {
        let mut y = vec![0.0; up.len()];
        spatial::max_pool2(&mut y, xx, s);
        dot(&y, &up)
    });
    let up4 = rng.vec(4 * s.len() as usize);
    let mut dx = vec![0.0; x.len()];
    spatial::upsample_nearest2_backward(&mut dx, &up4, s, false);
    fd("upsample_nearest2 dx", &x, &dx, |xx| {
        let mut y = vec![0.0; up4.len()];
        spatial::upsample_nearest2(&mut y, xx, s);
        dot(&y, &up4)
    });
}

#[test]
fn transposed_conv_backward_matches_fd() {
    use beitlab::cpu::conv;
    use beitlab::ops::conv::{ConvEpilogue, TransposeShape};
    let mut rng = Rng(0x9FB2_1C65_1E98_DF25);
    let s = TransposeShape {
        batch: 2,
        in_channels: 3,
        out_channels: 2,
        height: 3,
        width: 2,
    };
    let (x, w, b) = (
        rng.vec(s.input_len() as usize),
        rng.vec(s.weight_len() as usize),
        rng.vec(2),
    );
    let up = rng.vec(s.output_len() as usize);
    let fwd = |x: &[f64], w: &[f64]| {
        let mut y = vec![0.0; up.len()];
        conv::conv_transpose2(&mut y, x, w, Some(&b), s, ConvEpilogue::default());
        dot(&y, &up)
    };
    let mut dx = vec![0.0; x.len()];
    conv::conv_transpose2_input_grad(&mut dx, &up, &w, s, false);
    fd("conv_transpose2 dx", &x, &dx, |xx| fwd(xx, &w));
    let mut dw = vec![0.0; w.len()];
    conv::conv_transpose2_weight_grad(&mut dw, &x, &up, s, false);
    fd("conv_transpose2 dw", &w, &dw, |ww| fwd(&x, ww));
}

#[test]
fn group_norm_backward_matches_fd() {
    use beitlab::cpu::groupnorm as gn;
    use beitlab::ops::groupnorm::GroupNormShape;
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let s = GroupNormShape {
        batch: 2,
        channels: 4,
        pixels: 3,
        groups: 2,
        eps: 1e-5,
    };
    let n = s.len() as usize;
    let (x, gamma, beta, up) = (rng.vec(n), rng.vec(4), rng.vec(4), rng.vec(n));
    let fwd = |x: &[f64], g: &[f64], b: &[f64]| {
        let (mut y, mut m, mut r) = (vec![0.0; n], vec![0.0; 4], vec![0.0; 4]);
        gn::group_norm_forward(&mut y, &mut m, &mut r, x, g, b, s);
        dot(&y, &up)
    };
    let (mut y, mut m, mut r) = (vec![0.0; n], vec![0.0; 4], vec![0.0; 4]);
    gn::group_norm_forward(&mut y, &mut m, &mut r, &x, &gamma, &beta, s);
    let (mut dx, mut dg, mut db) = (vec![0.0; n], vec![0.0; 4], vec![0.0; 4]);
    gn::group_norm_backward(&mut dx, &mut dg, &mut db, &up, &x, &gamma, &m, &r, s, false);
    fd("group norm dx", &x, &dx, |xx| fwd(xx, &gamma, &beta));
    fd("group norm dgamma", &gamma, &dg, |gg| fwd(&x, gg, &beta));
    fd("group norm dbeta", &beta, &db, |bb| fwd(&x, &gamma, bb));
}
