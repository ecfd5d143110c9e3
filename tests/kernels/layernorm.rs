//! layernorm.wgsl: forward (y, mean, rstd) and backward (dx, dγ, dβ). Tolerance atol = 1e-5, rtol = 1e-5:
//! two-pass mean / variance in f32 over C ≤ a few hundred values keeps ~1e-6 relative; backward sums over
//! rows add √R growth, covered by atol scaled with the row count.

use super::common::*;
use beitlab::cpu;
use beitlab::ops::{layernorm, RowKernel};

/// Both kernels (a workgroup per row, a thread per row) on the same inputs.
fn case(rows: usize, cols: usize, seed: u64) {
    case_using(RowKernel::Workgroup, rows, cols, seed);
    case_using(RowKernel::Thread, rows, cols, seed);
}

fn case_using(kind: RowKernel, rows: usize, cols: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = rng.vec(rows * cols, 2.0).iter().map(|v| v + 0.5).collect();
    let gamma = rng.vec(cols, 1.0);
    let beta = rng.vec(cols, 1.0);
    let (y, mean, rstd) = (poisoned(rows * cols), poisoned(rows), poisoned(rows));
    let (xg, gg, bg) = (up(&x), up(&gamma), up(&beta));
    run(layernorm::layernorm_forward_using(
        kind,
        ctx(),
        &y,
        &mean,
        &rstd,
        &xg,
        &gg,
        &bg,
        rows as u32,
        cols as u32,
        1e-6,
    )
    .unwrap());
    let (mut wy, mut wm, mut wr) = (vec![0.0; rows * cols], vec![0.0; rows], vec![0.0; rows]);
    cpu::layernorm::layernorm_forward(
        &mut wy,
        &mut wm,
        &mut wr,
        &f64s(&x),
        &f64s(&gamma),
        &f64s(&beta),
        rows,
        cols,
        1e-6,
    );
    // y and dx carry the f32 rounding of (x − mean) amplified by rstd: scale atol by each row's rstd.
    let row_tol: Vec<f64> = (0..rows * cols)
        .map(|i| 1e-6 * (1.0 + wr[i / cols]))
        .collect();
    assert_close_each("layernorm y", &read(&y), &wy, &row_tol, 1e-5);
    assert_close("layernorm mean", &read(&mean), &wm, 1e-6, 1e-5);
    assert_close("layernorm rstd", &read(&rstd), &wr, 1e-6, 1e-5);

    let dy = rng.vec(rows * cols, 1.0);
    let dx0 = rng.vec(rows * cols, 1.0);
    let dg0 = rng.vec(cols, 1.0);
    let db0 = rng.vec(cols, 1.0);
    let (dx, dg, db) = (with(&dx0), with(&dg0), with(&db0));
    run(layernorm::layernorm_backward_using(
        kind,
        ctx(),
        &dx,
        &dg,
        &db,
        &up(&dy),
        &xg,
        &mean,
        &rstd,
        &gg,
        rows as u32,
        cols as u32,
        true,
    )
    .unwrap());
    let (mut wdx, mut wdg, mut wdb) = (f64s(&dx0), f64s(&dg0), f64s(&db0));
    cpu::layernorm::layernorm_backward(
        &mut wdx,
        &mut wdg,
        &mut wdb,
        &f64s(&dy),
        &f64s(&x),
        &wm,
        &wr,
        &f64s(&gamma),
        rows,
        cols,
        true,
    );
    // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) and x̂ itself carries rstd·ε·|x| of rounding, so dx's error grows
    // with rstd²: rows of nearly equal values (rstd ~ 100) differ by ~1e-3 between GPUs' f32 orders of summation.
    let dx_tol: Vec<f64> = (0..rows * cols)
        .map(|i| 4.0 * row_tol[i] + 3e-7 * wr[i / cols] * wr[i / cols])
        .collect();
    assert_close_each("layernorm dx", &read(&dx), &wdx, &dx_tol, 1e-5);
    let sum_tol = 1e-6 * (rows as f64).sqrt() * 4.0;
    assert_close("layernorm dgamma", &read(&dg), &wdg, 1e-5 + sum_tol, 1e-5);
    assert_close("layernorm dbeta", &read(&db), &wdb, 1e-5 + sum_tol, 1e-5);
}

#[test]
fn layernorm_tiny() {
    case(1, 1, 1);
    case(2, 3, 2);
}

/// Rows of a multiple of 4 columns: the thread-per-row kernels read and write them as quads.
#[test]
fn layernorm_quads() {
    case(3, 4, 6);
    case(65, 192, 7);
}

#[test]
fn layernorm_odd() {
    case(197, 129, 3);
    case(1031, 67, 4);
}

#[test]
fn layernorm_rows_past_65535() {
    case(70_001, 3, 5);
}
