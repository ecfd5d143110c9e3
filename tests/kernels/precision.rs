//! precision.wgsl and mixed precision's use of the other kernels: rounding to f16 (exact: the same bit
//! operations as the CPU twin), the loss gradient times the device's loss scale (exact: one product), the
//! scale's update over a run of finite and overflowed steps (exact), AdamW on loss-scaled gradients (atol 1e-6,
//! rtol 1e-5 as adamw.rs, plus f32 `pow` for the bias corrections) and skipping an overflowed step (bit for
//! bit untouched), and linear layers whose products read f16-rounded operands (emulated) against the CPU twin
//! (atol 1e-6·K, rtol 1e-5, as matmul.rs: the rounded operands are identical, only the f32 sums' order differs).

use super::common::*;
use beitlab::cpu;
use beitlab::cpu::precision::{round_f16, state};
use beitlab::gpu::{FlatBuffer, FlatLayout};
use beitlab::ops::adamw::{self, AdamWPlan, AdamWStep};
use beitlab::ops::matmul;
use beitlab::ops::precision::{self, LossScaler, ProductInputs};

/// Values that exercise every branch of the rounding: ties, the top of the range, subnormals, specials.
fn edge_values() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        1.0,
        1.0 + 2f32.powi(-11),       // a tie: stays 1 (even)
        1.0 + 3.0 * 2f32.powi(-11), // a tie: rounds up to the even 1 + 2^-9
        65504.0,
        65519.99,
        65520.0,
        -65520.0,
        1e6,
        2f32.powi(-14),
        2f32.powi(-24),
        2f32.powi(-25), // a tie between 0 and 2^-24: 0
        3.0 * 2f32.powi(-25),
        1e-10,
        -3.3e-6,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        f32::MIN_POSITIVE,
    ];
    v.extend((0..40).map(|i| (1.0 + 2f32.powi(-10)) * 1.37f32.powi(i - 20)));
    v
}

fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
        assert!(same, "{what}[{i}]: got {g:e} want {w:e}");
    }
}

#[test]
fn round_f16_matches_the_twin_bit_for_bit() {
    let mut rng = Rng::new(31);
    for n in [1usize, 1027, 70_001] {
        let mut x: Vec<f32> = rng
            .vec(n, 1.0)
            .iter()
            .enumerate()
            .map(|(i, v)| v * 10f32.powi((i % 17) as i32 - 10))
            .collect();
        let edges = edge_values();
        for (slot, e) in x.iter_mut().zip(&edges) {
            *slot = *e;
        }
        let out = poisoned(n);
        run(precision::round_f16(ctx(), &out, &up(&x), n as u32).unwrap());
        let mut want = vec![0.0; n];
        cpu::precision::round_f16_into(&mut want, &x);
        same_bits(&format!("round_f16 n={n}"), &read(&out), &want);
    }
}

#[test]
fn the_twin_rounds_as_ieee_half_does() {
    // Values worked out by hand from the binary16 format (10 fraction bits, bias 15).
    for (x, want) in [
        (1.0 + 2f32.powi(-11), 1.0),
        (1.0 + 3.0 * 2f32.powi(-11), 1.0 + 2f32.powi(-9)),
        (65504.0, 65504.0),
        (65519.0, 65504.0),
        (65520.0, f32::INFINITY),
        (-1e9, f32::NEG_INFINITY),
        (2f32.powi(-25), 0.0),
        (3.0 * 2f32.powi(-25), 2f32.powi(-23)),
        (0.1, 1638.0 / 16384.0),
        (1e-7, 2f32.powi(-23)),
    ] {
        assert_eq!(round_f16(x), want, "round_f16({x:e})");
    }
    assert!(round_f16(f32::NAN).is_nan());
}

#[test]
fn the_loss_gradient_is_scaled_by_the_device_scale() {
    let mut rng = Rng::new(32);
    for n in [1usize, 10, 1027, 4096, 70_004] {
        let x = rng.vec(n, 1.0);
        let scaler = LossScaler::new(ctx(), 1024.0, 7);
        let buf = up(&x);
        run(precision::scale_loss(ctx(), &buf, &scaler, n as u32).unwrap());
        let mut want = x.clone();
        cpu::precision::scale_by_loss_scale(&mut want, &cpu::precision::initial_state(1024.0));
        same_bits(&format!("scale_loss n={n}"), &read(&buf), &want);
    }
}

#[test]
fn the_scale_halves_on_overflow_and_grows_after_a_run_of_good_steps() {
    let growth = 3;
    let scaler = LossScaler::new(ctx(), 256.0, growth);
    let mut want = cpu::precision::initial_state(256.0);
    let sums = [
        1.0,
        f32::INFINITY,
        2.0,
        3.0,
        4.0,
        5.0,
        f32::NAN,
        f32::NAN,
        1.0,
    ];
    for (i, &sumsq) in sums.iter().enumerate() {
        // The reduction writes Σ g² into the first value each step; the rest is the scaler's.
        let mut st = read(&scaler.state);
        st[state::SUMSQ] = sumsq;
        scaler.state.write(ctx(), &st);
        want[state::SUMSQ] = sumsq;
        run(precision::update_loss_scale(ctx(), &scaler).unwrap());
        cpu::precision::update_loss_scale(&mut want, growth);
        same_bits(
            &format!("state after step {i}"),
            &read(&scaler.state),
            &want,
        );
    }
    // 256 -> 128 (overflow) -> 256 (three good) -> 128 -> 64 (two overflows) with 6 updates applied.
    assert_eq!(want[state::SCALE], 64.0);
    assert_eq!(want[state::APPLIED], 6.0);
}

fn adamw_scaled_case(overflow: bool, clip: Option<f32>, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut layout = FlatLayout::new(ctx().storage_alignment());
    for (i, s) in [&[3usize, 5][..], &[7], &[300]].iter().enumerate() {
        layout.push(&format!("t{i}"), s);
    }
    let groups = vec![(1.0, 0.05), (0.5, 0.0), (0.8, 0.05)];
    let n = layout.total as usize;
    let scale = 512.0;
    let (p0, m0) = (rng.vec(n, 1.0), rng.vec(n, 0.1));
    let v0: Vec<f32> = rng.vec(n, 0.1).iter().map(|v| v.abs()).collect();
    let mut g: Vec<f32> = rng.vec(n, 2.0).iter().map(|v| v * scale).collect();
    if overflow {
        g[5] = f32::INFINITY;
    }
    let bufs: Vec<FlatBuffer> = (0..4)
        .map(|_| FlatBuffer::new(ctx(), "adamw scaled test", layout.clone()))
        .collect();
    for (b, d) in bufs.iter().zip([&p0, &g, &m0, &v0]) {
        b.whole.write(ctx(), d);
    }
    let scaler = LossScaler::new(ctx(), scale, 2000);
    let mut st = cpu::precision::initial_state(scale);
    st[state::APPLIED] = 4.0;
    scaler.restore(ctx(), &st);
    let mut plan = AdamWPlan::new(ctx(), &layout, &groups).unwrap();
    plan.loss_scaled = true;
    let hp = AdamWStep {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        step: 9,
        max_grad_norm: clip,
    };
    plan.set_step(ctx(), &hp);
    let mut d =
        beitlab::ops::reduce::sum_squares(ctx(), &scaler.state, 0, &bufs[1].whole, n as u32)
            .unwrap();
    d.extend(
        adamw::adamw_step(
            ctx(),
            &bufs[0].whole,
            &bufs[2].whole,
            &bufs[3].whole,
            &bufs[1].whole,
            &scaler.state,
            &plan,
        )
        .unwrap(),
    );
    run(d);
    st[state::SUMSQ] = g.iter().map(|&x| x as f64 * x as f64).sum::<f64>() as f32;
    let (mut p, mut m, mut v) = (p0.clone(), m0.clone(), v0.clone());
    cpu::adamw::adamw_step_scaled(&mut p, &mut m, &mut v, &g, &st, &layout, &groups, &hp);
    let (gp, gm, gv) = (
        read(&bufs[0].whole),
        read(&bufs[2].whole),
        read(&bufs[3].whole),
    );
    if overflow {
        same_bits("skipped step: weights", &gp, &p0);
        same_bits("skipped step: m", &gm, &m0);
        same_bits("skipped step: v", &gv, &v0);
        return;
    }
    for e in &layout.entries {
        let r = e.offset as usize..(e.offset + e.len) as usize;
        for (what, got, want) in [("p", &gp, &p), ("m", &gm, &m), ("v", &gv, &v)] {
            assert_close(
                &format!("loss-scaled adamw {what} {}", e.name),
                &got[r.clone()],
                &f64s(&want[r.clone()]),
                1e-6,
                1e-5,
            );
        }
    }
    // The update is the unscaled one: AdamW on g / scale with the bias corrections of update 5.
    let unscaled: Vec<f32> = g.iter().map(|x| x / scale).collect();
    let gsq = unscaled.iter().map(|&x| x as f64 * x as f64).sum::<f64>() as f32;
    let (mut p2, mut m2, mut v2) = (p0.clone(), m0.clone(), v0.clone());
    let plain = AdamWStep { step: 5, ..hp };
    cpu::adamw::adamw_step(
        &mut p2, &mut m2, &mut v2, &unscaled, gsq, &layout, &groups, &plain,
    );
    for e in &layout.entries {
        let r = e.offset as usize..(e.offset + e.len) as usize;
        assert_close(
            "against unscaled AdamW",
            &gp[r.clone()],
            &f64s(&p2[r]),
            1e-6,
            1e-5,
        );
    }
}

#[test]
fn adamw_unscales_loss_scaled_gradients() {
    adamw_scaled_case(false, None, 41);
    adamw_scaled_case(false, Some(0.5), 42);
}

#[test]
fn adamw_skips_a_step_whose_scaled_gradients_overflowed() {
    adamw_scaled_case(true, Some(1.0), 43);
}

fn linear_f16_case(m: usize, n: usize, k: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let (x, w, b) = (rng.vec(m * k, 1.0), rng.vec(n * k, 1.0), rng.vec(n, 1.0));
    let y = poisoned(m * n);
    run(matmul::linear_forward_as(
        ProductInputs::F16Emulated,
        ctx(),
        &y,
        &up(&x),
        &up(&w),
        Some(&up(&b)),
        m as u32,
        n as u32,
        k as u32,
    )
    .unwrap());
    let mut want = vec![0.0f32; m * n];
    cpu::precision::linear_forward_f16(&mut want, &x, &w, Some(&b), m, n, k);
    let tol = (1e-6 * k as f64, 1e-5);
    assert_close(
        &format!("f16 linear forward {m}x{n}x{k}"),
        &read(&y),
        &f64s(&want),
        tol.0,
        tol.1,
    );
    // Not the f32 product: the rounding shows at this tolerance on all but the smallest sizes.
    let mut f32_want = vec![0.0f32; m * n];
    cpu::matmul::linear_forward(&mut f32_want, &x, &w, Some(&b), m, n, k);
    let differs = want.iter().zip(&f32_want).any(|(a, b)| a != b);
    assert!(
        differs || m * n * k < 8,
        "the f16 operands change the product"
    );

    let dy = rng.vec(m * n, 1.0);
    let (dw0, db0) = (rng.vec(n * k, 1.0), rng.vec(n, 1.0));
    let (dx, dw, db) = (poisoned(m * k), with(&dw0), with(&db0));
    run(matmul::linear_backward_as(
        ProductInputs::F16Emulated,
        ctx(),
        Some(&dx),
        &dw,
        Some(&db),
        &up(&dy),
        &up(&x),
        &up(&w),
        m as u32,
        n as u32,
        k as u32,
        false,
    )
    .unwrap());
    let (mut wdx, mut wdw, mut wdb) = (vec![0.0f32; m * k], dw0.clone(), db0.clone());
    cpu::precision::linear_backward_f16(
        Some(&mut wdx),
        &mut wdw,
        Some(&mut wdb),
        &dy,
        &x,
        &w,
        m,
        n,
        k,
        false,
    );
    let name = format!("{m}x{n}x{k}");
    assert_close(
        &format!("f16 dx {name}"),
        &read(&dx),
        &f64s(&wdx),
        1e-6 * n as f64,
        1e-5,
    );
    assert_close(
        &format!("f16 dw {name}"),
        &read(&dw),
        &f64s(&wdw),
        1e-6 * m as f64,
        1e-5,
    );
    assert_close(
        &format!("f16 db {name}"),
        &read(&db),
        &f64s(&wdb),
        1e-6 * m as f64,
        1e-5,
    );
}

#[test]
fn linear_layers_with_f16_operands_match_the_twin() {
    linear_f16_case(1, 1, 1, 51);
    linear_f16_case(37, 29, 53, 52);
    linear_f16_case(130, 192, 576, 53);
}
