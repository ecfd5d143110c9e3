//! The startup tuner (`gpu::tune`) on contexts of their own with tuning on and a table directory of their own:
//! a product's shape is timed once, the fastest candidate kept and its result still equals the CPU twin; the
//! table is reused within the process and by a new context through its file; `fresh` times again; a corrupt
//! table is reported and replaced; `off` times nothing; the attention core is tuned between fused and kept; a
//! whole training step with tuned kernels equals the rules' step. No assertion depends on which candidate is faster: only that the choice is the measured fastest.
//! Tolerance of the product: atol 1e-5·√K, rtol 1e-5 (one f32 dot product of K terms).

use super::common::{assert_close, f64s, Rng};
use beitlab::cpu;
use beitlab::gpu::{ErrorPolicy, GpuContext, GpuSlice, Requirements, TuneMode};
use beitlab::ops::attention::AttentionShape;
use beitlab::ops::{attention_fused, matmul};
use std::path::{Path, PathBuf};

fn tuned_ctx(mode: TuneMode, dir: &Path) -> GpuContext {
    GpuContext::new_headless_blocking(&Requirements::kernels(), ErrorPolicy::Panic)
        .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
        .with_tuning(mode, Some(dir.to_path_buf()))
}

fn table_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("beitlab-tune-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

/// `Y = X·Wᵀ + b` on `ctx` against the CPU twin.
fn linear_matches_twin(ctx: &GpuContext, seed: u64, (m, n, k): (u32, u32, u32)) {
    let mut rng = Rng::new(seed);
    let (x, w, b) = (
        rng.vec((m * k) as usize, 1.0),
        rng.vec((n * k) as usize, 1.0),
        rng.vec(n as usize, 1.0),
    );
    let up = |v: &[f32]| GpuSlice::from_slice(ctx, "tune test input", v);
    let y = GpuSlice::new(ctx, "tune test output", (m * n) as u64);
    y.poison(ctx);
    let work = matmul::linear_forward(ctx, &y, &up(&x), &up(&w), Some(&up(&b)), m, n, k).unwrap();
    beitlab::gpu::Dispatch::submit(ctx, "tune test", &work).unwrap();
    ctx.wait().unwrap();
    let mut want = vec![0.0; (m * n) as usize];
    let (mu, nu, ku) = (m as usize, n as usize, k as usize);
    cpu::matmul::linear_forward(&mut want, &f64s(&x), &f64s(&w), Some(&f64s(&b)), mu, nu, ku);
    let got = ctx.read_f32(&y).unwrap();
    assert_close(
        "tuned linear forward",
        &got,
        &want,
        1e-5 * (k as f64).sqrt(),
        1e-5,
    );
}

#[test]
fn a_product_is_timed_once_and_its_table_reused() {
    let dir = table_dir("gemm");
    let shape = (70, 40, 33);
    let a = tuned_ctx(TuneMode::On, &dir);
    linear_matches_twin(&a, 1, shape);
    let s = a.tune_summary();
    assert_eq!((s.timed, s.reused), (1, 0), "{s:?}");
    let file = s.file.clone().expect("a table file");
    assert!(file.exists(), "{} written", file.display());
    let table = a.tuned_table();
    let (key, tuned) = table.iter().next().expect("one entry");
    assert!(key.starts_with("gemm 70x40x33 batch 1"), "{key}");
    assert!(tuned.micros.len() >= 2, "every candidate timed: {tuned:?}");
    let fastest = tuned
        .micros
        .iter()
        .min_by(|x, y| x.1.total_cmp(y.1))
        .map(|(name, _)| name.clone());
    assert_eq!(
        Some(tuned.choice.clone()),
        fastest,
        "the measured fastest is kept"
    );

    // The same shape again: from the table.
    linear_matches_twin(&a, 2, shape);
    let s = a.tune_summary();
    assert_eq!((s.timed, s.reused), (1, 1), "{s:?}");

    // A new context reads the file and times nothing.
    let b = tuned_ctx(TuneMode::On, &dir);
    linear_matches_twin(&b, 3, shape);
    let s = b.tune_summary();
    assert_eq!((s.timed, s.reused), (0, 1), "{s:?}");
    assert_eq!(b.tuned_table(), table, "the file holds what was measured");

    // `fresh` ignores the file and times again.
    let c = tuned_ctx(TuneMode::Fresh, &dir);
    linear_matches_twin(&c, 4, shape);
    assert_eq!(c.tune_summary().timed, 1);

    // A corrupt table is reported, timed again and replaced.
    std::fs::write(&file, "not json").unwrap();
    let d = tuned_ctx(TuneMode::On, &dir);
    linear_matches_twin(&d, 5, shape);
    let s = d.tune_summary();
    assert_eq!(s.timed, 1, "{s:?}");
    assert!(
        s.trouble
            .as_deref()
            .is_some_and(|t| t.contains("not a tuning table")),
        "{s:?}"
    );
    let e = tuned_ctx(TuneMode::On, &dir);
    linear_matches_twin(&e, 6, shape);
    assert_eq!(
        (e.tune_summary().timed, e.tune_summary().trouble),
        (0, None)
    );

    // Off: the rules, nothing timed.
    let f = tuned_ctx(TuneMode::Off, &dir);
    linear_matches_twin(&f, 7, shape);
    let s = f.tune_summary();
    assert_eq!((s.timed, s.reused), (0, 0), "{s:?}");
    assert!(!f.tunes());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_attention_core_is_tuned_between_fused_and_kept() {
    let dir = table_dir("attention");
    let ctx = tuned_ctx(TuneMode::On, &dir);
    let shape = AttentionShape {
        batch: 2,
        heads: 2,
        tokens: 17,
        head_dim: 16,
        scale: 0.25,
    };
    let fused = attention_fused::tuned(&ctx, shape, true)
        .unwrap()
        .expect("a tuning context decides");
    let table = ctx.tuned_table();
    let tuned = table
        .get("attention B2 H2 T17 D16 bias 1")
        .unwrap_or_else(|| panic!("no attention entry in {table:?}"));
    let (f, k) = (tuned.micros["fused"], tuned.micros["composed"]);
    assert_eq!(fused, f <= 1.05 * k, "fused {f} us, kept {k} us: {tuned:?}");
    assert_eq!(tuned.choice == "fused", fused);
    // Heads past 64 dimensions do not fit the fused core: nothing to tune.
    let wide = AttentionShape {
        head_dim: 65,
        ..shape
    };
    assert_eq!(attention_fused::tuned(&ctx, wide, true).unwrap(), None);
    std::fs::remove_dir_all(&dir).ok();
}

/// A whole pretraining step of micro on a tuning context (every product's kernel timed and chosen) gives the
/// loss and gradients of the same step by the rules. Tolerance: 1e-5 of the largest gradient plus 1e-4 relative
/// (kernels that sum in other orders).
#[test]
fn a_tuned_training_step_equals_the_rules_step() {
    use beitlab::gpu::Dispatch;
    use beitlab::model::{BeitConfig, BeitGraph, BeitModel, GraphOptions, MimRows};
    let dir = table_dir("graph");
    let cfg = BeitConfig::preset("micro").unwrap();
    let mut rng = Rng::new(17);
    let b = 3usize;
    let pixels = rng.vec(b * (cfg.image_size * cfg.image_size) as usize, 1.0);
    let mask: Vec<u8> = (0..b * cfg.patches() as usize)
        .map(|_| (rng.unit() < 0.4) as u8)
        .collect();
    let masked = mask.iter().filter(|&&m| m != 0).count();
    let labels: Vec<u32> = (0..masked).map(|_| rng.below(cfg.vocab_size)).collect();
    let mut results = Vec::new();
    for mode in [TuneMode::Off, TuneMode::On] {
        let ctx = tuned_ctx(mode, &dir);
        let model = BeitModel::new_random(&ctx, &cfg, 4).unwrap();
        let opts = GraphOptions {
            batch: b as u32,
            mim_rows: MimRows::Masked(masked as u32),
            drop_path_seed: None,
            label_smoothing: 0.0,
            keep_block_outputs: None,
            fused_attention: None,
            mixed: None,
        };
        let g = BeitGraph::new(&ctx, &cfg, &model.table, &model.params, opts).unwrap();
        g.write_batch(&ctx, &pixels, Some(&mask), Some(&labels))
            .unwrap();
        let mut work = g.forward.clone();
        work.extend(g.backward.iter().cloned());
        Dispatch::submit(&ctx, "tuned step", &work).unwrap();
        ctx.wait().unwrap();
        let timed = ctx.tune_summary().timed;
        assert_eq!(
            timed > 0,
            mode == TuneMode::On,
            "{mode:?}: {timed} shapes timed"
        );
        results.push((
            ctx.read_f32(&g.stats).unwrap(),
            ctx.read_f32(&g.grads.whole).unwrap(),
        ));
    }
    let (rules, tuned) = (&results[0], &results[1]);
    assert_close(
        "loss",
        &tuned.0,
        &f64s(&rules.0),
        1e-5 * rules.0[0].abs() as f64,
        1e-5,
    );
    let largest = rules.1.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    assert_close("gradients", &tuned.1, &f64s(&rules.1), 1e-5 * largest, 1e-4);
    std::fs::remove_dir_all(&dir).ok();
}
