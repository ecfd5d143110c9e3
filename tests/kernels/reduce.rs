//! reduce.wgsl: column sums (one and two stages), row sums, multi-pass sums, mean, sum of squares, L2 norm.
//! Tolerance atol 1e-6·√n + 1e-6, rtol 1e-5: f32 tree / chunk sums of n values in [-1, 1].

use super::common::*;
use beitlab::cpu;
use beitlab::ops::reduce;
use beitlab::ops::RowKernel;

fn cols_rows_case(rows: usize, cols: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(rows * cols, 1.0);
    let xg = up(&x);
    let o0 = rng.vec(cols, 1.0);
    let out = with(&o0);
    run(reduce::col_sum(ctx(), &out, &xg, rows as u32, cols as u32, true).unwrap());
    let mut want = f64s(&o0);
    cpu::reduce::col_sum(&mut want, &f64s(&x), rows, cols, true);
    assert_close(
        "col_sum",
        &read(&out),
        &want,
        1e-6 * (rows as f64).sqrt() + 1e-6,
        1e-5,
    );

    let out = poisoned(rows);
    run(reduce::row_sum(ctx(), &out, &xg, rows as u32, cols as u32, 0.5, false).unwrap());
    let mut want = vec![0.0; rows];
    cpu::reduce::row_sum(&mut want, &f64s(&x), rows, cols, 0.5, false);
    assert_close(
        "row_sum",
        &read(&out),
        &want,
        1e-6 * (cols as f64).sqrt() + 1e-6,
        1e-5,
    );
}

#[test]
fn col_row_sum_tiny() {
    cols_rows_case(1, 1, 1);
    cols_rows_case(3, 2, 2);
}

#[test]
fn col_row_sum_odd() {
    cols_rows_case(1031, 67, 3);
    cols_rows_case(70_001, 3, 4);
}

fn sum_case(n: usize, seed: u64) {
    // Both kernels on every adapter: many short workgroups (GPUs) and long runs per thread (software).
    for kind in [RowKernel::Workgroup, RowKernel::Thread] {
        let x = Rng::new(seed).vec(n, 1.0);
        let xg = up(&x);
        let out = poisoned(4);
        let mean_scale = 1.0 / n.max(1) as f32;
        let mut d = reduce::sum_using(
            kind,
            ctx(),
            &out,
            0,
            &xg,
            n as u32,
            mean_scale,
            false,
            false,
        )
        .unwrap();
        d.extend(reduce::sum_using(kind, ctx(), &out, 1, &xg, n as u32, 1.0, true, false).unwrap());
        d.extend(reduce::sum_using(kind, ctx(), &out, 2, &xg, n as u32, 1.0, true, true).unwrap());
        d.extend(
            reduce::sum_using(kind, ctx(), &out, 3, &xg, n as u32, 2.0, false, false).unwrap(),
        );
        run(d);
        let fx = f64s(&x);
        let mut want = vec![0.0; 4];
        cpu::reduce::mean(&mut want, 0, &fx, n);
        cpu::reduce::sum_squares(&mut want, 1, &fx, n);
        cpu::reduce::l2_norm(&mut want, 2, &fx, n);
        cpu::reduce::sum(&mut want, 3, &fx, n, 2.0, false, false);
        assert_close(
            &format!("sums ({kind:?})"),
            &read(&out),
            &want,
            1e-6 * (n as f64).sqrt() + 1e-6,
            1e-5,
        );
    }
}

#[test]
fn sum_tiny() {
    sum_case(1, 1);
    sum_case(7, 2);
}

#[test]
fn sum_multi_pass() {
    sum_case(1025, 3);
    sum_case(3_000_007, 4);
    // Whole workgroups of quads (4096 elements each), then a second pass over 3 partial sums.
    sum_case(4096, 5);
    sum_case(12_288, 6);
    // The same for the long workgroups (65536 elements each): exactly one, three, and one past them.
    sum_case(65_536, 7);
    sum_case(196_608, 8);
    sum_case(196_611, 9);
}

#[test]
fn sum_of_nothing_is_zero() {
    for kind in [RowKernel::Workgroup, RowKernel::Thread] {
        let out = poisoned(2);
        let x = up(&[1.0]);
        let mut d = reduce::sum_using(kind, ctx(), &out, 0, &x, 0, 1.0, false, false).unwrap();
        d.extend(reduce::sum_using(kind, ctx(), &out, 1, &x, 0, 1.0, true, true).unwrap());
        run(d);
        assert_eq!(read(&out), vec![0.0, 0.0], "{kind:?}");
    }
}
