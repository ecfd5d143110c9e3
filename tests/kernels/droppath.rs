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

/// Samples of a multiple of 4 elements take the four-per-thread entry.
#[test]
fn drop_path_quads() {
    case(4, 64, 0.6, true, 5);
    case(9, 12, 0.5, false, 6);
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

/// The fused residual update `out = x_in + s_b · λ ⊙ branch` against its twin: with and without layer scale and
/// drop path, outputs poisoned, tiny, odd and past 65535 workgroups.
fn residual_case(
    batch: usize,
    tokens: usize,
    cols: usize,
    lambda: bool,
    keep: Option<f32>,
    seed: u64,
) {
    let per = tokens * cols;
    let mut rng = Rng::new(seed);
    let x_in = rng.vec(batch * per, 1.0);
    let branch = rng.vec(batch * per, 1.0);
    let lam = rng.vec(cols, 1.0);
    let out = poisoned(batch * per);
    let lam_gpu = up(&lam);
    let dims = (batch as u32, per as u32, cols as u32);
    run(droppath::residual_branch(
        ctx(),
        &out,
        &up(&x_in),
        &up(&branch),
        lambda.then_some(&lam_gpu),
        dims,
        keep,
        0x1234_5678_9ABC_DEF0 ^ seed,
        7,
    )
    .unwrap());
    let mut want = vec![0.0; batch * per];
    let lam64 = f64s(&lam);
    cpu::droppath::residual_branch(
        &mut want,
        &f64s(&x_in),
        &f64s(&branch),
        lambda.then_some(lam64.as_slice()),
        (batch, per, cols),
        keep,
        0x1234_5678_9ABC_DEF0 ^ seed,
        7,
    );
    let what = format!("residual_branch {batch}x{tokens}x{cols} lambda {lambda} keep {keep:?}");
    assert_close(&what, &read(&out), &want, 1e-6, 1e-6);
}

#[test]
fn residual_branch_every_combination() {
    for (i, (lambda, keep)) in [(true, None), (false, Some(0.6)), (true, Some(0.9))]
        .into_iter()
        .enumerate()
    {
        let s = 10 * i as u64;
        residual_case(1, 1, 1, lambda, keep, s + 1);
        residual_case(5, 17, 3, lambda, keep, s + 2);
        residual_case(16, 65, 192, lambda, keep, s + 3);
    }
    residual_case(3, 29_297, 192, true, Some(0.5), 40);
}

#[test]
fn residual_branch_refuses_a_missing_layer_scale() {
    let x = up(&[0.0; 6]);
    let Err(err) = droppath::residual_branch(ctx(), &x, &x, &x, None, (1, 6, 4), None, 0, 0) else {
        panic!("4 columns do not divide a sample of 6")
    };
    assert!(err.to_string().contains("do not divide"), "{err}");
}

/// The residual branch's backward with layer scale (`d_branch = s_b · λ ⊙ dy`, `dλ += Σ s_b · dy ⊙ branch`, one
/// pass and a column sum) against its twin: with and without drop path, quads and single columns, outputs
/// poisoned and dλ accumulated into, tiny, odd and past 65535 workgroups; rows per thread as this adapter
/// chooses, as GPUs do, and 1 (the largest case then passes 65535 workgroups).
fn residual_backward_case(batch: usize, tokens: usize, cols: usize, keep: Option<f32>, seed: u64) {
    let rows = (batch * tokens) as u64;
    let here = droppath::residual_backward_rows_per_chunk(ctx(), rows);
    for rows_per_chunk in [here, droppath::GPU_ROWS_PER_CHUNK, 1] {
        residual_backward_chunked_case(batch, tokens, cols, keep, seed, rows_per_chunk);
    }
}

fn residual_backward_chunked_case(
    batch: usize,
    tokens: usize,
    cols: usize,
    keep: Option<f32>,
    seed: u64,
    rows_per_chunk: u32,
) {
    let per = batch * tokens * cols;
    let mut rng = Rng::new(seed);
    let (dy, branch) = (rng.vec(per, 1.0), rng.vec(per, 1.0));
    let (lam, dlam0) = (rng.vec(cols, 1.0), rng.vec(cols, 1.0));
    let (d_branch, dlam) = (poisoned(per), with(&dlam0));
    let (seed, stream) = (0x0F1E_2D3C_4B5A_6978 ^ seed, 5);
    let dims = (batch as u32, (tokens * cols) as u32, cols as u32);
    let p = droppath::DropPathParams::residual(dims.0, dims.1, dims.2, keep, true, seed, stream);
    let u = beitlab::gpu::GpuSlice::uniform(ctx(), "DropPathParams", &p);
    // Partial sums: at most one row of them per row of dy.
    let part = poisoned(per);
    run(droppath::residual_branch_backward_with(
        ctx(),
        &d_branch,
        &dlam,
        &part,
        &up(&dy),
        &up(&branch),
        &up(&lam),
        &u,
        &p,
        rows_per_chunk,
    )
    .unwrap());
    let (mut want_d, mut want_l) = (vec![0.0; per], f64s(&dlam0));
    cpu::droppath::residual_branch_backward(
        &mut want_d,
        &mut want_l,
        &f64s(&dy),
        &f64s(&branch),
        &f64s(&lam),
        (batch, tokens * cols, cols),
        keep,
        seed,
        stream,
    );
    let what = format!(
        "residual_branch_backward {batch}x{tokens}x{cols} keep {keep:?}, {rows_per_chunk} rows per thread"
    );
    assert_close(
        &format!("{what} d_branch"),
        &read(&d_branch),
        &want_d,
        1e-6,
        1e-6,
    );
    // dλ sums up to batch · tokens products: f32 rounding grows with the count.
    let tol = 1e-6 * (batch * tokens) as f64;
    assert_close(&format!("{what} dλ"), &read(&dlam), &want_l, tol, 1e-5);
}

#[test]
fn residual_branch_backward_every_combination() {
    for (i, keep) in [None, Some(0.6)].into_iter().enumerate() {
        let s = 10 * i as u64;
        residual_backward_case(1, 1, 1, keep, s + 1);
        residual_backward_case(5, 17, 3, keep, s + 2);
        residual_backward_case(3, 7, 12, keep, s + 3);
        residual_backward_case(16, 65, 192, keep, s + 4);
    }
    residual_backward_case(3, 29_297, 192, Some(0.5), 40);
}

#[test]
fn residual_branch_backward_refuses_a_missing_layer_scale() {
    let x = up(&[0.0; 8]);
    let p = droppath::DropPathParams::residual(1, 8, 4, None, false, 0, 0);
    let u = beitlab::gpu::GpuSlice::uniform(ctx(), "DropPathParams", &p);
    let Err(err) =
        droppath::residual_branch_backward_with(ctx(), &x, &x, &x, &x, &x, &x, &u, &p, 1)
    else {
        panic!("the backward needs the layer scale on")
    };
    assert!(err.to_string().contains("layer scale"), "{err}");
}
