//! gelu.wgsl: exact-erf GELU forward and backward. Tolerance atol = 1e-6, rtol = 1e-5: the same erfc
//! approximation on both sides; f32 exp and the final product add a few ulps.

use super::common::*;
use beitlab::cpu;
use beitlab::ops::gelu;

fn case(n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(n, 6.0);
    let out = poisoned(n);
    let xg = up(&x);
    run(gelu::gelu_forward(ctx(), &out, &xg, n as u32).unwrap());
    let mut want = vec![0.0; n];
    cpu::gelu::gelu_forward(&mut want, &f64s(&x), n);
    assert_close("gelu forward", &read(&out), &want, 1e-6, 1e-5);

    let dy = rng.vec(n, 1.0);
    let dx = poisoned(n);
    run(gelu::gelu_backward(ctx(), &dx, &up(&dy), &xg, n as u32, false).unwrap());
    let mut want = vec![0.0; n];
    cpu::gelu::gelu_backward(&mut want, &f64s(&dy), &f64s(&x), n, false);
    assert_close("gelu backward", &read(&dx), &want, 1e-6, 1e-5);

    // Accumulating adds the same gradient again.
    run(gelu::gelu_backward(ctx(), &dx, &up(&dy), &xg, n as u32, true).unwrap());
    let twice: Vec<f64> = want.iter().map(|w| 2.0 * w).collect();
    assert_close("gelu backward accumulate", &read(&dx), &twice, 2e-6, 1e-5);
}

#[test]
fn gelu_tiny() {
    case(1, 1);
    case(5, 2);
}

/// Lengths that are multiples of 4 take the four-per-invocation entries.
#[test]
fn gelu_quads() {
    case(4, 5);
    case(8, 6);
    case(100_004, 7);
}

#[test]
fn gelu_odd() {
    case(100_003, 3);
}

#[test]
fn gelu_past_65535_workgroups() {
    case(65_536 * 256 + 77, 4);
}

#[test]
fn gelu_matches_erf_definition() {
    // Known values of x·Φ(x): Φ(1) = 0.841344746, Φ(-2) = 0.022750132.
    let mut out = [0.0f64; 2];
    cpu::gelu::gelu_forward(&mut out, &[1.0, -2.0], 2);
    assert!((out[0] - 0.841_344_746).abs() < 1e-7, "{}", out[0]);
    assert!((out[1] + 2.0 * 0.022_750_132).abs() < 1e-7, "{}", out[1]);
}
