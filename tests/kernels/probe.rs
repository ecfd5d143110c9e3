//! probe.wgsl: the adapter probes `bench kernels` times, against `cpu::probe` in f32 with the same order of
//! operations. Tolerances: reads atol = 1e-6, rtol = 1e-5 (sums of up to a few thousand terms in the same
//! order; only a driver's reassociation could move them, by ulps); multiply-add chains rtol = 1e-4 (a driver
//! may fuse a·c + x into one rounding, up to an ulp of drift per multiply-add over 8 x 300 of them).

use super::common::*;
use beitlab::cpu;
use beitlab::ops::probe::{probe, Probe};

fn case(which: Probe, n: usize, invocations: usize, iters: u32, seed: u64) {
    let mut rng = Rng::new(seed);
    let src = rng.vec(n, 1.0);
    let out = poisoned(invocations);
    run(probe(
        ctx(),
        which,
        &out,
        &up(&src),
        n as u32,
        invocations as u32,
        iters,
    )
    .unwrap());
    let mut want = vec![0.0f32; invocations];
    match which {
        Probe::MultiplyAdd => cpu::probe::multiply_add(&mut want, &src, n, invocations, iters),
        Probe::Read => cpu::probe::read(&mut want, &src, n, invocations, iters, 1),
        Probe::Read4 => cpu::probe::read(&mut want, &src, n, invocations, iters, 4),
    }
    let rtol = if which == Probe::MultiplyAdd {
        2e-4
    } else {
        1e-5
    };
    assert_close(&format!("{which:?}"), &read(&out), &f64s(&want), 1e-6, rtol);
}

const ALL: [Probe; 3] = [Probe::MultiplyAdd, Probe::Read, Probe::Read4];

#[test]
fn probe_tiny() {
    for (i, which) in ALL.into_iter().enumerate() {
        case(which, 32, 1, 1, 10 + i as u64);
        case(which, 32, 3, 0, 20 + i as u64);
    }
}

/// An invocation count no multiple of the workgroup, step counts that wrap the reads around `src`.
#[test]
fn probe_odd() {
    for (i, which) in ALL.into_iter().enumerate() {
        case(which, 64, 77, 13, 30 + i as u64);
    }
}

#[test]
fn probe_large() {
    for (i, which) in ALL.into_iter().enumerate() {
        case(which, 4096, 5000, 300, 40 + i as u64);
    }
}

#[test]
fn probe_refuses_a_length_that_is_no_power_of_two() {
    let out = poisoned(4);
    match probe(ctx(), Probe::Read, &out, &up(&[0.0; 48]), 48, 4, 1) {
        Err(err) => assert!(err.to_string().contains("power of two"), "{err}"),
        Ok(_) => panic!("a 48-element source was accepted"),
    }
}
