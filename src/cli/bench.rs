//! `beitlab bench`: the app's per-frame work, full training steps, and every kernel, timed.

use clap::{Args, Subcommand, ValueEnum};

use super::common::{device, model_requirements};
use crate::bench::{self, BenchOptions, BENCH_PRESETS};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// The app's per-frame work without a window: pretraining in the app loop paced at a display's refresh;
    /// prints work per frame (training submits, inspector, UI build and tessellation) and images/s.
    App(AppBenchArgs),
    /// Time full MIM pretraining steps: images/s (median), step time, GPU memory in beitlab's buffers,
    /// achieved FLOP/s. Compare with PyTorch's table (tiny32 b128, tiny224 b64, base224 b64).
    Train(TrainBenchArgs),
    /// Time every kernel at BEiT-sized shapes: us per call, GFLOP/s or GB/s, us per dispatch in a chain.
    Kernels(KernelBenchArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PresetChoice {
    Tiny,
    Base,
    All,
}

/// `bench app`: see [`BenchCommand::App`].
#[derive(Args, Debug)]
pub struct AppBenchArgs {
    /// micro or tiny (default: micro on a CPU adapter, tiny on a GPU).
    #[arg(long)]
    pub preset: Option<String>,
    #[arg(value_parser = crate::train::checks::parse::count, long)]
    pub batch: Option<u32>,
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 60.0)]
    pub fps: f64,
}

/// `bench train`: see [`BenchCommand::Train`].
#[derive(Args, Debug)]
pub struct TrainBenchArgs {
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    #[arg(long)]
    pub image_size: Option<u32>,
    #[arg(long)]
    pub patch_size: Option<u32>,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 8)]
    pub batch: u32,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 5)]
    pub steps: u32,
    #[arg(long)]
    pub json: bool,
    /// Also time every kernel launch of a step alone and print where the step's time goes.
    #[arg(long)]
    pub profile: bool,
}

/// `bench kernels`: see [`BenchCommand::Kernels`].
#[derive(Args, Debug)]
pub struct KernelBenchArgs {
    /// Which preset's dims to use.
    #[arg(long, value_enum, default_value = "all")]
    pub preset: PresetChoice,
    /// Images per batch for the shapes.
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 8)]
    pub batch: u32,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The card's peak TFLOP/s, to print achieved / peak.
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    /// Seconds of GPU work per measurement.
    #[arg(long, default_value_t = 0.25)]
    pub seconds: f64,
}

/// Run one benchmark.
pub fn run(what: &BenchCommand) -> Result<(), String> {
    match what {
        BenchCommand::App(a) => crate::app::bench::bench_app(&crate::app::bench::AppBenchOptions {
            preset: a.preset.clone(),
            batch: a.batch,
            seconds: a.seconds,
            fps: a.fps,
            view: crate::app::View::Mim,
        }),
        BenchCommand::Train(a) => train(a),
        BenchCommand::Kernels(a) => {
            let presets = BENCH_PRESETS
                .iter()
                .copied()
                .filter(|p| {
                    matches!(
                        (a.preset, p.name),
                        (PresetChoice::All, _)
                            | (PresetChoice::Tiny, "tiny")
                            | (PresetChoice::Base, "base")
                    )
                })
                .collect();
            print_kernels(
                &BenchOptions {
                    presets,
                    batch: a.batch.max(1),
                    target_seconds: a.seconds,
                    peak_tflops: a.peak_tflops,
                },
                a.json,
            )
        }
    }
}

fn train(args: &TrainBenchArgs) -> Result<(), String> {
    let TrainBenchArgs {
        ref preset,
        image_size,
        patch_size,
        batch,
        steps,
        json,
        profile,
    } = *args;
    let mut cfg = crate::model::BeitConfig::preset(preset).map_err(|e| e.to_string())?;
    if let Some(s) = image_size {
        cfg.image_size = s;
    }
    if let Some(p) = patch_size {
        cfg.patch_size = p;
    }
    cfg.validate().map_err(|e| e.to_string())?;
    let ctx = device(&model_requirements(&cfg, batch))?;
    let r = bench::bench_train(&ctx, &cfg, preset, batch.max(1), steps.max(1), profile)
        .map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    } else {
        println!(
            "{preset} {}px patch {} batch {}, {}: {:.1} images/s, step {:.1} ms (median of {}), {} dispatches per step, {:.1} MiB in beitlab's buffers, {:.2} GFLOP per step, {:.1} GFLOP/s achieved, on {}",
            r.image_size, r.patch_size, r.batch, r.precision, r.images_per_s, r.step_ms_median, r.steps, r.dispatches_per_step, r.gpu_buffer_mib, r.gflop_per_step, r.achieved_gflops, ctx.describe()
        );
        if !r.profile.is_empty() {
            let total: f64 = r.profile.iter().map(|k| k.ms).sum();
            println!("each launch timed alone (its own submit; the sum, {total:.1} ms, includes that overhead):");
            println!(
                "  {:<36} {:>8} {:>10} {:>7}",
                "kernel", "launches", "ms/step", "share"
            );
            for k in &r.profile {
                println!(
                    "  {:<36} {:>8} {:>10.2} {:>6.1}%",
                    k.kernel,
                    k.launches,
                    k.ms,
                    100.0 * k.ms / total.max(1e-12)
                );
            }
        }
    }
    Ok(())
}

fn print_kernels(opts: &BenchOptions, json: bool) -> Result<(), String> {
    let (ctx, rows) = bench::bench_kernels(opts).map_err(|e| e.to_string())?;
    if json {
        for r in &rows {
            let mut v = serde_json::to_value(r).map_err(|e| e.to_string())?;
            v["adapter"] = serde_json::Value::String(ctx.adapter_info.name.clone());
            println!("{v}");
        }
    } else {
        println!("adapter: {}", ctx.describe());
        println!("batch {} per preset; each row: one warm-up, then repetitions in one compute pass, one submit", opts.batch);
        print!("{}", bench::format_table(&rows, opts.peak_tflops));
    }
    Ok(())
}
