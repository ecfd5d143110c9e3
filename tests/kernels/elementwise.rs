//! elementwise.wgsl: fill, copy / accumulate, add, axpby. Exact ops (one f32 add or multiply per element) are
//! compared at atol 0 / rtol 1e-7.

use super::common::*;
use beitlab::cpu;
use beitlab::ops::elementwise;

fn case(n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let (a, b, o0) = (rng.vec(n, 1.0), rng.vec(n, 1.0), rng.vec(n, 1.0));
    let (ag, bg) = (up(&a), up(&b));

    let out = poisoned(n);
    run(elementwise::fill(ctx(), &out, n as u32, 0.25).unwrap());
    assert_close("fill", &read(&out), &vec![0.25; n], 0.0, 0.0);

    let out = poisoned(n);
    run(elementwise::copy(ctx(), &out, &ag, n as u32, false).unwrap());
    assert_close("copy", &read(&out), &f64s(&a), 0.0, 0.0);

    let out = with(&o0);
    run(elementwise::copy(ctx(), &out, &ag, n as u32, true).unwrap());
    let mut want = f64s(&o0);
    cpu::elementwise::copy(&mut want, &f64s(&a), n, true);
    assert_close("accumulate", &read(&out), &want, 1e-7, 1e-7);

    let out = poisoned(n);
    run(elementwise::add(ctx(), &out, &ag, &bg, n as u32, false).unwrap());
    let mut want = vec![0.0; n];
    cpu::elementwise::add(&mut want, &f64s(&a), &f64s(&b), n, false);
    assert_close("add", &read(&out), &want, 1e-7, 1e-7);

    let out = with(&o0);
    run(elementwise::axpby(ctx(), &out, 0.5, &ag, -2.0, &bg, n as u32, true).unwrap());
    let mut want = f64s(&o0);
    cpu::elementwise::axpby(&mut want, 0.5, &f64s(&a), -2.0, &f64s(&b), n, true);
    assert_close("axpby", &read(&out), &want, 1e-7, 1e-6);
}

#[test]
fn elementwise_tiny() {
    case(1, 1);
    case(6, 2);
}

/// Lengths that are multiples of 4 take the four-per-thread entries.
#[test]
fn elementwise_quads() {
    case(8, 5);
    case(65 * 192, 6);
    case(12 * 3, 7);
}

#[test]
fn elementwise_odd() {
    case(197 * 193, 3);
}

#[test]
fn elementwise_past_65535_workgroups() {
    case(65_536 * 256 + 3 * 11, 4);
}

#[test]
fn a_binding_over_the_device_limit_is_a_clear_error() {
    let limit = ctx().limits.max_storage_buffer_binding_size;
    let elems = limit / 4 + 1024;
    if elems * 4 > ctx().limits.max_buffer_size {
        return; // cannot even allocate it here
    }
    let big = beitlab::gpu::GpuSlice::new(ctx(), "over the binding limit", elems);
    let e = elementwise::fill(ctx(), &big, elems as u32, 0.0)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("per storage binding"), "{e}");
}
