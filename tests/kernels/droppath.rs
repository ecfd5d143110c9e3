//! droppath.wgsl: the GPU and CPU share the hash bit for bit, so outputs agree to one multiply (rtol 1e-7).

use super::common::*;
use beitlab::cpu;
use beitlab::ops::droppath;

fn case(batch: usize, per: usize, keep: f32, accumulate: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(batch * per, 1.0);
    let o0 = rng.vec(batch * per, 1.0);
    let out = if accumulate {
        with(&o0)
    } else {
        poisoned(batch * per)
    };
    run(droppath::drop_path(
        ctx(),
        &out,
        &up(&x),
        batch as u32,
        per as u32,
        keep,
        0xDEAD_BEEF_1234_5678 ^ seed,
        3,
        accumulate,
    )
    .unwrap());
    let mut want = if accumulate {
        f64s(&o0)
    } else {
        vec![0.0; batch * per]
    };
    cpu::droppath::drop_path(
        &mut want,
        &f64s(&x),
        batch,
        per,
        keep,
        0xDEAD_BEEF_1234_5678 ^ seed,
        3,
        accumulate,
    );
    assert_close("drop_path", &read(&out), &want, 1e-7, 1e-7);
}

#[test]
fn drop_path_tiny() {
    case(1, 1, 0.9, false, 1);
    case(5, 3, 0.5, true, 2);
}

#[test]
fn drop_path_odd() {
    case(257, 65 * 3, 0.7, true, 3);
}

#[test]
fn drop_path_past_65535_workgroups() {
    case(3, 5_600_001, 0.5, false, 4);
}

#[test]
fn drop_path_keep_rate_and_determinism() {
    let kept = (0..100_000u32)
        .filter(|&b| cpu::droppath::keeps(42, 7, b, 0.8))
        .count();
    assert!(
        (kept as f64 / 1e5 - 0.8).abs() < 0.01,
        "kept {kept} of 100000 at p = 0.8"
    );
    let a: Vec<bool> = (0..64)
        .map(|b| cpu::droppath::keeps(42, 7, b, 0.5))
        .collect();
    let b: Vec<bool> = (0..64)
        .map(|b| cpu::droppath::keeps(42, 8, b, 0.5))
        .collect();
    assert_ne!(a, b, "streams (layers) must draw independently");
}
