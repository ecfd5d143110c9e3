//! crossentropy.wgsl: loss, correctness, log-sum-exp, means and the fused backward over selected rows,
//! with and without label smoothing. Tolerance atol 1e-5, rtol 1e-5: a log-sum-exp over V ≤ 8192 terms
//! in f32 (the max is subtracted first, so every term is ≤ 1).

use super::common::*;
use beitlab::cpu;
use beitlab::ops::crossentropy::{self, CrossEntropyOut};
use beitlab::ops::RowKernel;

/// Both forward kernels (a workgroup per row, a thread per row) on the same inputs.
fn case(total_rows: usize, m: usize, vocab: usize, smoothing: f32, seed: u64) {
    case_using(RowKernel::Workgroup, total_rows, m, vocab, smoothing, seed);
    case_using(RowKernel::Thread, total_rows, m, vocab, smoothing, seed);
}

fn case_using(
    kind: RowKernel,
    total_rows: usize,
    m: usize,
    vocab: usize,
    smoothing: f32,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let logits = rng.vec(total_rows * vocab, 6.0);
    let mut rows: Vec<u32> = (0..total_rows as u32).collect();
    for i in (1..rows.len()).rev() {
        rows.swap(i, rng.below(i as u32 + 1) as usize);
    }
    rows.truncate(m);
    let labels: Vec<u32> = (0..m).map(|_| rng.below(vocab as u32)).collect();
    let (loss, correct, lse, stats) = (poisoned(m), poisoned(m), poisoned(m), poisoned(2));
    let (lg, rg, yg) = (up(&logits), up_u32(&rows), up_u32(&labels));
    let out = CrossEntropyOut {
        loss: &loss,
        correct: &correct,
        lse: &lse,
        stats: Some(&stats),
    };
    run(crossentropy::ce_forward_using(
        kind,
        ctx(),
        out,
        &lg,
        total_rows as u32,
        &rg,
        &yg,
        m as u32,
        vocab as u32,
        smoothing,
    )
    .unwrap());
    let (mut wl, mut wc, mut wlse) = (vec![0.0; m], vec![0.0; m], vec![0.0; m]);
    let (ml, acc) = cpu::crossentropy::ce_forward(
        &mut wl,
        &mut wc,
        &mut wlse,
        &f64s(&logits),
        &rows,
        &labels,
        m,
        vocab,
        smoothing,
    );
    assert_close("ce loss", &read(&loss), &wl, 1e-5, 1e-5);
    assert_close("ce correct", &read(&correct), &wc, 0.0, 0.0);
    assert_close("ce lse", &read(&lse), &wlse, 1e-5, 1e-5);
    assert_close("ce stats", &read(&stats), &[ml, acc], 1e-5, 1e-5);

    let d0 = rng.vec(total_rows * vocab, 1.0);
    let dl = with(&d0);
    let scale = 1.0 / m as f32;
    run(crossentropy::ce_backward(
        ctx(),
        &dl,
        &lg,
        total_rows as u32,
        &lse,
        &rg,
        &yg,
        m as u32,
        vocab as u32,
        smoothing,
        scale,
    )
    .unwrap());
    let mut want = f64s(&d0);
    cpu::crossentropy::ce_backward(
        &mut want,
        &f64s(&logits),
        &wlse,
        &rows,
        &labels,
        m,
        vocab,
        smoothing,
        scale,
    );
    assert_close("ce dlogits", &read(&dl), &want, 1e-6, 1e-5);
}

#[test]
fn crossentropy_tiny() {
    case(1, 1, 1, 0.0, 1);
    case(4, 3, 5, 0.1, 2);
    // Vocabularies of whole quads (read four logits at a time): one quad, and three.
    case(3, 2, 4, 0.1, 6);
    case(5, 4, 12, 0.0, 7);
}

#[test]
fn crossentropy_odd() {
    case(37, 23, 1031, 0.0, 3);
    case(20, 20, 8192, 0.1, 4);
}

#[test]
fn crossentropy_rows_past_65535() {
    case(70_010, 70_001, 3, 0.1, 5);
}

/// The forward's `correct` flags for one row of logits and one selected copy of it per label.
fn correct_flags(kind: RowKernel, row: &[f32], labels: &[u32]) -> Vec<f32> {
    let m = labels.len();
    let logits = up(row);
    let (loss, correct, lse) = (poisoned(m), poisoned(m), poisoned(m));
    let out = CrossEntropyOut {
        loss: &loss,
        correct: &correct,
        lse: &lse,
        stats: None,
    };
    run(crossentropy::ce_forward_using(
        kind,
        ctx(),
        out,
        &logits,
        1,
        &up_u32(&vec![0; m]),
        &up_u32(labels),
        m as u32,
        row.len() as u32,
        0.0,
    )
    .unwrap());
    read(&correct)
}

#[test]
fn crossentropy_argmax_ties_take_lowest_index() {
    for kind in [RowKernel::Workgroup, RowKernel::Thread] {
        assert_eq!(
            correct_flags(kind, &[1.0, 3.0, 3.0, 0.0], &[1]),
            vec![1.0],
            "{kind:?}"
        );
        // A tie between values that different threads read (quads 1 and 75 of a 512-wide row): label 5 is the
        // lowest index of the maximum, 300 is not.
        let mut row = vec![0.0f32; 512];
        row[5] = 2.0;
        row[300] = 2.0;
        assert_eq!(
            correct_flags(kind, &row, &[5, 300]),
            vec![1.0, 0.0],
            "{kind:?}"
        );
    }
}

#[test]
fn mse_rows_with_a_per_step_count() {
    use beitlab::ops::crossentropy::{mse_backward_with, mse_forward_with, CrossEntropyParams};
    for (cap, m, width, seed) in [
        (1u32, 1u32, 1u32, 1u64),
        (37, 23, 49, 2),
        (70_001, 70_000, 3, 3),
    ] {
        let mut rng = Rng::new(seed);
        let (pred, target) = (
            rng.vec((cap * width) as usize, 1.0),
            rng.vec((cap * width) as usize, 1.0),
        );
        let scale = 1.0 / (m * width) as f32;
        let params = beitlab::gpu::GpuSlice::uniform(
            ctx(),
            "p",
            &CrossEntropyParams {
                m,
                vocab: width,
                smoothing: 0.0,
                scale,
            },
        );
        let (loss, stats) = (poisoned(cap as usize), poisoned(2));
        let (pg, tg) = (up(&pred), up(&target));
        run(mse_forward_with(ctx(), &loss, Some(&stats), &pg, &tg, &params, cap, width).unwrap());
        let mut wl = vec![0.0; cap as usize];
        cpu::crossentropy::mse_forward(
            &mut wl,
            &f64s(&pred),
            &f64s(&target),
            m as usize,
            width as usize,
        );
        assert_close("mse loss", &read(&loss), &wl, 1e-5, 1e-5);
        let total: f64 = wl.iter().sum();
        assert_close(
            "mse sum",
            &read(&stats)[..1],
            &[total],
            1e-6 * (cap as f64).sqrt() + 1e-5,
            1e-5,
        );
        let d0 = rng.vec((cap * width) as usize, 1.0);
        let dp = with(&d0);
        run(mse_backward_with(ctx(), &dp, &pg, &tg, &params, cap, width).unwrap());
        let mut wd = f64s(&d0);
        cpu::crossentropy::mse_backward(
            &mut wd,
            &f64s(&pred),
            &f64s(&target),
            m as usize,
            width as usize,
            scale,
        );
        assert_close("mse dpred", &read(&dp), &wd, 1e-7, 1e-6);
    }
}
