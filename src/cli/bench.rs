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
    /// Time full semantic-segmentation fine-tuning steps (backbone, dense head, per-pixel loss, backward, AdamW)
    /// on random images: images/s (median), step time, dispatches, GPU memory; --profile as for `train`.
    Segment(SegmentBenchArgs),
    /// Time every kernel at BEiT-sized shapes: us per call, GFLOP/s or GB/s, us per dispatch in a chain.
    Kernels(KernelBenchArgs),
    /// A long pretraining run that samples memory as it goes (beitlab's GPU buffers, wgpu's live objects,
    /// resident memory) and reports whether anything grew; exits with status 1 when something did.
    Soak(SoakArgs),
    /// The DALL-E tokenizer's encoder (and decoder) at a view size: images/s, ms per batch, GFLOP/s; the public
    /// weights' architecture with random weights, or --tokenizer DIR's.
    Dalle(DalleBenchArgs),
}

/// `bench dalle`: see [`BenchCommand::Dalle`].
#[derive(Args, Debug)]
pub struct DalleBenchArgs {
    /// A DALL-E tokenizer folder (default: the published architecture, 8192 codes, random weights).
    #[arg(long)]
    pub tokenizer: Option<std::path::PathBuf>,
    /// Side of the view encoded (112: the tokenizer's view of a 224-pixel BEiT/16).
    #[arg(long, default_value_t = 112)]
    pub image_size: u32,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 16)]
    pub batch: u32,
    /// Timed batches per pass (after one untimed).
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 3)]
    pub steps: u32,
    /// Time the decoder too.
    #[arg(long)]
    pub decoder: bool,
    /// The card's peak TFLOP/s, to print achieved / peak.
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    #[arg(long)]
    pub json: bool,
}

/// `bench soak`: see [`BenchCommand::Soak`].
#[derive(Args, Debug)]
pub struct SoakArgs {
    #[arg(long, default_value = "micro")]
    pub preset: String,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 8)]
    pub batch: u32,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 1000)]
    pub steps: u32,
    /// Steps before the first sample (the readback ring and the driver's pools fill up first).
    #[arg(long, default_value_t = 50)]
    pub warmup: u32,
    /// Resident memory may move by this many MiB without counting as growth.
    #[arg(long, default_value_t = 8.0)]
    pub resident_slack_mib: f64,
    /// One JSON object with every sample instead of the table.
    #[arg(long)]
    pub json: bool,
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
    /// mini, micro, tiny or tiny14 (default: mini on a CPU adapter, tiny14 on a GPU).
    #[arg(long)]
    pub preset: Option<String>,
    #[arg(value_parser = crate::train::checks::parse::count, long)]
    pub batch: Option<u32>,
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 60.0)]
    pub fps: f64,
    /// The view drawn each frame: mim, tokens, codebook, attention, paint, segment, compare, curves, status or data.
    #[arg(long, value_parser = crate::app::View::from_name, default_value = "mim")]
    pub view: crate::app::View,
    /// Start with this many steps of an earlier run's curves (made-up numbers, five series) next to the live
    /// ones, as after a long run: with `--view curves`, what plotting them costs.
    #[arg(long, default_value_t = 0)]
    pub history: u32,
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
    /// --profile with the launches summed per kernel and launch grid (tells one kernel's products apart).
    #[arg(long)]
    pub profile_grids: bool,
    /// f32, or mixed (f16-input products, dynamic loss scale); where mixed cannot run the step is f32, a note
    /// says why, and the result's `precision` says what ran.
    #[arg(long, value_parser = crate::train::precision::Precision::parse, default_value = "f32")]
    pub precision: crate::train::precision::Precision,
    /// The card's peak TFLOP/s, to print achieved / peak.
    #[arg(long)]
    pub peak_tflops: Option<f64>,
}

/// `bench segment`: see [`BenchCommand::Segment`].
#[derive(Args, Debug)]
pub struct SegmentBenchArgs {
    #[arg(long, default_value = "micro")]
    pub preset: String,
    #[arg(long)]
    pub image_size: Option<u32>,
    #[arg(long)]
    pub patch_size: Option<u32>,
    /// linear or pyramid.
    #[arg(long, value_parser = parse_head, default_value = "linear")]
    pub head: crate::model::SegmentationHead,
    /// Classes predicted per pixel (the built-in set has 11).
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 11)]
    pub classes: u32,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 16)]
    pub batch: u32,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 5)]
    pub steps: u32,
    #[arg(long)]
    pub json: bool,
    /// Also time every kernel launch of a step alone and print where the step's time goes.
    #[arg(long)]
    pub profile: bool,
    /// --profile with the launches summed per kernel and launch grid.
    #[arg(long)]
    pub profile_grids: bool,
}

fn parse_head(name: &str) -> Result<crate::model::SegmentationHead, String> {
    crate::model::SegmentationHead::parse(name)
        .ok_or_else(|| format!("unknown head `{name}`: linear or pyramid"))
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
            view: a.view,
            history: a.history,
        }),
        BenchCommand::Train(a) => train(a),
        BenchCommand::Segment(a) => segment(a),
        BenchCommand::Soak(a) => soak(a),
        BenchCommand::Dalle(a) => dalle(a),
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
        profile_grids,
        precision,
        peak_tflops,
    } = *args;
    let profile = profile_choice(profile, profile_grids);
    let mut cfg = crate::model::BeitConfig::preset(preset).map_err(|e| e.to_string())?;
    if let Some(s) = image_size {
        cfg.image_size = s;
    }
    if let Some(p) = patch_size {
        cfg.patch_size = p;
    }
    cfg.validate().map_err(|e| e.to_string())?;
    let ctx = device(&model_requirements(&cfg, batch))?;
    let resolved = precision.resolve(&ctx);
    if let Some(note) = &resolved.note {
        // On stderr, so --json's stdout stays one object.
        eprintln!("{note}");
    }
    let r = bench::bench_train(
        &ctx,
        &cfg,
        preset,
        batch.max(1),
        steps.max(1),
        profile,
        resolved.mixed,
    )
    .map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    } else {
        println!(
            "{preset} {}px patch {} batch {}, {}: {:.1} images/s, step {:.1} ms (median of {}), {} dispatches per step, {:.1} MiB in beitlab's buffers, {:.2} GFLOP per step, {:.1} GFLOP/s achieved, on {}",
            r.image_size, r.patch_size, r.batch, r.precision, r.images_per_s, r.step_ms_median, r.steps, r.dispatches_per_step, r.gpu_buffer_mib, r.gflop_per_step, r.achieved_gflops, ctx.describe()
        );
        println!("attention core: {}", r.attention);
        if r.tuning == "off" {
            println!("kernel choice: by the rules (no tuning on this adapter; BEITLAB_TUNE=on times them)");
        } else {
            println!(
                "kernel choice: tuned, {} shapes timed in {:.2} s before the steps, {} from the table ({})",
                r.tuned_shapes, r.tuning_s, r.tuned_from_table, r.tuning
            );
        }
        if let Some(trouble) = ctx.tune_summary().trouble {
            println!("tuning table: {trouble}");
        }
        if let Some(peak) = peak_tflops.filter(|p| *p > 0.0) {
            println!(
                "{:.2} TFLOP/s achieved: {:.1}% of the given peak {peak} TFLOP/s",
                r.achieved_gflops / 1e3,
                100.0 * r.achieved_gflops / (peak * 1e3)
            );
        }
        print_profile(&r.profile);
    }
    Ok(())
}

fn profile_choice(profile: bool, by_grid: bool) -> bench::Profile {
    match (profile, by_grid) {
        (_, true) => bench::Profile::ByKernelAndGrid,
        (true, false) => bench::Profile::ByKernel,
        (false, false) => bench::Profile::Off,
    }
}

/// Where a step's time goes: each kernel's launches timed alone, slowest first.
fn print_profile(profile: &[bench::KernelTime]) {
    if profile.is_empty() {
        return;
    }
    let total: f64 = profile.iter().map(|k| k.ms).sum();
    println!(
        "each launch timed alone (its own submit; the sum, {total:.1} ms, includes that overhead):"
    );
    let width = profile
        .iter()
        .map(|k| k.kernel.len())
        .max()
        .unwrap_or(0)
        .max(36);
    println!(
        "  {:<width$} {:>8} {:>10} {:>7}",
        "kernel", "launches", "ms/step", "share"
    );
    for k in profile {
        println!(
            "  {:<width$} {:>8} {:>10.2} {:>6.1}%",
            k.kernel,
            k.launches,
            k.ms,
            100.0 * k.ms / total.max(1e-12)
        );
    }
}

fn segment(args: &SegmentBenchArgs) -> Result<(), String> {
    let base = super::segment::sized_preset(&args.preset, args.image_size, args.patch_size)?;
    let ctx = device(&model_requirements(&base, args.batch))?;
    let r = crate::bench_segment::bench_segment(
        &ctx,
        &base,
        &args.preset,
        args.head,
        args.classes,
        args.batch,
        args.steps,
        profile_choice(args.profile, args.profile_grids),
    )
    .map_err(|e| e.to_string())?;
    if args.json {
        println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    } else {
        println!(
            "{} {}px patch {} {} head, {} classes, batch {}: {:.1} images/s, step {:.1} ms (median of {}), {} dispatches per step, {:.1} MiB in beitlab's buffers, on {}",
            r.preset, r.image_size, r.patch_size, r.head, r.classes, r.batch, r.images_per_s, r.step_ms_median, r.steps, r.dispatches_per_step, r.gpu_buffer_mib, ctx.describe()
        );
        print_profile(&r.profile);
    }
    Ok(())
}

fn soak(args: &SoakArgs) -> Result<(), String> {
    let cfg = crate::model::BeitConfig::preset(&args.preset).map_err(|e| e.to_string())?;
    let ctx = device(&model_requirements(&cfg, args.batch))?;
    let r = crate::soak::soak(
        &ctx,
        &cfg,
        &args.preset,
        args.batch,
        args.steps,
        args.warmup,
    )
    .map_err(|e| e.to_string())?;
    let grew = r.growth((args.resident_slack_mib * 1048576.0) as u64);
    if args.json {
        let mut v = serde_json::to_value(&r).map_err(|e| e.to_string())?;
        v["grew"] = serde_json::json!(grew);
        println!("{v}");
    } else {
        let mib = |b: f64| b / 1048576.0;
        println!(
            "{} batch {}: {} steps in {:.0} s ({:.1} ms per step), final loss {:.4}, on {}",
            r.preset,
            r.batch,
            r.steps,
            r.seconds,
            1e3 * r.seconds / r.steps as f64,
            r.final_loss,
            ctx.describe()
        );
        println!(
            "  {:>7} {:>16} {:>13} {:>17} {:>16} {:>15} {:>14}",
            "step",
            "GPU buffers MiB",
            "wgpu buffers",
            "wgpu buffer MiB",
            "wgpu bind groups",
            "wgpu encoders",
            "resident MiB"
        );
        for s in &r.samples {
            println!(
                "  {:>7} {:>16.2} {:>13} {:>17.2} {:>16} {:>15} {:>14.1}",
                s.step,
                mib(s.gpu_buffer_bytes as f64),
                s.wgpu_buffers,
                mib(s.wgpu_buffer_memory as f64),
                s.wgpu_bind_groups,
                s.wgpu_command_encoders,
                mib(s.resident_bytes as f64)
            );
        }
        match grew.is_empty() {
            true => println!(
                "flat: nothing grew from step {} to step {} (resident memory {:+.1} MiB)",
                r.first.step,
                r.last.step,
                mib(r.resident_growth() as f64)
            ),
            false => println!("grew: {}", grew.join("; ")),
        }
    }
    if grew.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "memory grew during the soak run: {}",
            grew.join("; ")
        ))
    }
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
        let peak = bench::table_peak(&ctx, &rows, opts.peak_tflops);
        if opts.peak_tflops.is_none() && peak.is_some() {
            println!(
                "of peak: against the multiply-add probe (this software adapter's arithmetic ceiling, measured here)"
            );
        }
        print!("{}", bench::format_table(&rows, peak));
    }
    Ok(())
}

fn dalle(a: &DalleBenchArgs) -> Result<(), String> {
    use crate::tokenizer::dalle::{bench, DalleTokenizer};
    let e = |e: crate::model::ModelError| e.to_string();
    // The published encoder's weights are 216 MB in one buffer.
    let ctx = super::common::device(&crate::tokenizer::dalle::model::requirements(256 << 20))?;
    let tk = match &a.tokenizer {
        Some(d) => DalleTokenizer::load(&ctx, d).map_err(e)?,
        None => bench::public_random(&ctx, a.decoder).map_err(e)?,
    };
    let tk = if a.decoder {
        tk
    } else {
        DalleTokenizer {
            decoder: None,
            ..tk
        }
    };
    let rows = bench::bench(&ctx, &tk, a.image_size, a.batch, a.steps).map_err(e)?;
    if a.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r).map_err(|e| e.to_string())?);
        }
        return Ok(());
    }
    println!(
        "DALL-E tokenizer on {}: {}",
        ctx.describe(),
        tk.encoder.shape.describe()
    );
    println!(
        "{:<8} {:>6} {:>6} {:>12} {:>10} {:>9}{}",
        "pass",
        "size",
        "batch",
        "ms/batch",
        "images/s",
        "GFLOP/s",
        if a.peak_tflops.is_some() {
            "  of peak"
        } else {
            ""
        }
    );
    for r in &rows {
        let peak = a.peak_tflops.map_or(String::new(), |p| {
            format!(" {:>7.1}%", 100.0 * r.gflops / (p * 1e3))
        });
        println!(
            "{:<8} {:>6} {:>6} {:>12.1} {:>10.3} {:>9.1}{peak}",
            r.pass, r.image_size, r.batch, r.ms_per_batch, r.images_per_s, r.gflops
        );
    }
    Ok(())
}
