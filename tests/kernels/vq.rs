//! vq.wgsl: L2 normalisation (atol 1e-6, rtol 1e-5: one sqrt and a division per element), argmax and one-hot
//! (exact), the EMA codebook update with dead-code restart (atol 1e-6: the same f32 operations in order).

use super::common::*;
use beitlab::cpu;
use beitlab::ops::vq::{self, EmaState};

fn l2_case(rows: usize, dim: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut x = rng.vec(rows * dim, 2.0);
    x[..dim].iter_mut().for_each(|v| *v = 0.0); // a zero row: divided by eps, stays zero
    let (y, norm) = (poisoned(rows * dim), poisoned(rows));
    let xg = up(&x);
    run(vq::l2norm_forward(ctx(), &y, &norm, &xg, rows as u32, dim as u32).unwrap());
    let (mut wy, mut wn) = (vec![0.0; rows * dim], vec![0.0; rows]);
    cpu::vq::l2norm_forward(&mut wy, &mut wn, &f64s(&x), rows, dim);
    assert_close("l2norm y", &read(&y), &wy, 1e-6, 1e-5);
    assert_close("l2norm norm", &read(&norm), &wn, 1e-6, 1e-5);
    let dy = rng.vec(rows * dim, 1.0);
    let dx = poisoned(rows * dim);
    run(vq::l2norm_backward(ctx(), &dx, &up(&dy), &y, &norm, rows as u32, dim as u32).unwrap());
    let mut wdx = vec![0.0; rows * dim];
    cpu::vq::l2norm_backward(&mut wdx, &f64s(&dy), &wy, &wn, rows, dim);
    // Rows away from zero: relative to the row's scale; the zero row's gradient is huge (1/eps) and only finite-checked.
    let got = read(&dx);
    assert_close("l2norm dx", &got[dim..], &wdx[dim..], 1e-5, 1e-5);
}

#[test]
fn l2norm_tiny_odd_large() {
    l2_case(2, 1, 1);
    l2_case(131, 33, 2);
    l2_case(65_536 * 64 / 8 + 5, 3, 3);
}

fn argmax_case(rows: usize, codes: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut s = rng.vec(rows * codes, 1.0);
    s[codes + 1] = 5.0;
    s[codes + 2] = 5.0; // a tie: lowest index wins
    let (idx, best) = (GpuSlice::new(ctx(), "idx", rows as u64), poisoned(rows));
    idx.write(ctx(), &vec![u32::MAX; rows]);
    let sg = up(&s);
    run(vq::argmax_rows(ctx(), &idx, &best, &sg, rows as u32, codes as u32).unwrap());
    let (mut wi, mut wb) = (vec![0u32; rows], vec![0.0; rows]);
    cpu::vq::argmax_rows(&mut wi, &mut wb, &f64s(&s), rows, codes);
    assert_eq!(ctx().read_u32(&idx).unwrap(), wi);
    assert_eq!(wi[1], 1);
    assert_close("argmax best", &read(&best), &wb, 0.0, 0.0);
    let oh = poisoned(rows * codes);
    run(vq::one_hot(ctx(), &oh, &idx, rows as u32, codes as u32).unwrap());
    let mut woh = vec![0.0; rows * codes];
    cpu::vq::one_hot(&mut woh, &wi, rows, codes);
    assert_close("one_hot", &read(&oh), &woh, 0.0, 0.0);
}

use beitlab::gpu::GpuSlice;

#[test]
fn argmax_and_one_hot_tiny_odd_large() {
    argmax_case(3, 4, 1);
    argmax_case(257, 67, 2);
    argmax_case(70_001, 3, 3);
    argmax_case(2_000, 8_400, 4);
}

#[test]
fn ema_update_with_dead_code_restart() {
    let (rows, dim, codes) = (97usize, 7usize, 41usize);
    let mut rng = Rng::new(5);
    let z = rng.vec(rows * dim, 1.0);
    let cb0 = rng.vec(codes * dim, 1.0);
    let sum0 = rng.vec(codes * dim, 1.0);
    // Some codes nearly dead, some alive.
    let count0: Vec<f32> = (0..codes)
        .map(|k| if k % 5 == 0 { 0.001 } else { 1.0 + k as f32 })
        .collect();
    let counts: Vec<f32> = (0..codes).map(|k| (k % 3) as f32).collect();
    let sums = rng.vec(codes * dim, 1.0);
    let (cb, es, ec) = (with(&cb0), with(&sum0), with(&count0));
    let st = EmaState {
        codebook: &cb,
        ema_sum: &es,
        ema_count: &ec,
    };
    let score = rng.vec(rows, 1.0);
    run(vq::ema_update(
        ctx(),
        st,
        &up(&counts),
        &up(&sums),
        &up(&z),
        &up(&score),
        rows as u32,
        dim as u32,
        codes as u32,
        0.99,
        0.01,
        17,
    )
    .unwrap());
    let (mut wcb, mut wes, mut wec) = (cb0.clone(), sum0.clone(), count0.clone());
    cpu::vq::ema_update(
        &mut wcb, &mut wes, &mut wec, &counts, &sums, &z, &score, rows, dim, codes, 0.99, 0.01, 17,
    );
    assert_close("codebook", &read(&cb), &f64s(&wcb), 1e-6, 1e-5);
    assert_close("ema sums", &read(&es), &f64s(&wes), 1e-6, 1e-5);
    assert_close("ema counts", &read(&ec), &f64s(&wec), 1e-6, 1e-5);
    let got = read(&cb);
    for k in 0..codes {
        let n: f32 = got[k * dim..(k + 1) * dim].iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-5, "code {k} has squared norm {n}");
    }
    assert_eq!(wec[0], 0.02, "a dead code restarts with count 2·threshold");
}

#[test]
fn gather_u32_tiny_odd_large() {
    for (n, rows, seed) in [
        (1usize, 1usize, 1u64),
        (1031, 517, 2),
        (70_000, 65_536 * 256 + 3, 3),
    ] {
        let mut rng = Rng::new(seed);
        let src: Vec<u32> = (0..n).map(|_| rng.below(8192)).collect();
        let pos: Vec<u32> = (0..rows).map(|_| rng.below(n as u32)).collect();
        let out = GpuSlice::new(ctx(), "out", rows as u64);
        out.write(ctx(), &vec![u32::MAX; rows]);
        run(vq::gather_u32(ctx(), &out, &up_u32(&src), &up_u32(&pos), rows as u32).unwrap());
        let mut want = vec![0u32; rows];
        cpu::vq::gather_u32(&mut want, &src, &pos, rows);
        assert_eq!(ctx().read_u32(&out).unwrap(), want);
    }
}
