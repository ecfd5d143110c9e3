//! The command line: subcommand definitions (parsed in main.rs) and what each one runs.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::bench::{self, BenchOptions, BENCH_PRESETS};
use crate::gpu::{self, ADAPTER_ENV};

#[derive(Parser, Debug)]
#[command(
    name = "beitlab",
    version,
    about = "BEiT (BERT pre-training of image Transformers) on the GPU through WebGPU"
)]
#[command(args_override_self = true)]
pub struct Cli {
    /// What to do; without one, the app opens.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the app: train BEiT on the built-in data (or your images) and watch it learn, live.
    App {
        /// Preset to open with (micro or tiny; default: micro on a CPU adapter, tiny on a GPU).
        #[arg(long)]
        preset: Option<String>,
        /// Images per training step (default: 32 for micro, 64 for tiny).
        #[arg(long)]
        batch: Option<u32>,
        /// Start training (tokenizer, pretraining, fine-tuning) as soon as the window opens.
        #[arg(long)]
        start: bool,
        /// Close the window after this many seconds (for scripted runs).
        #[arg(long)]
        quit_after: Option<f64>,
        /// When the window closes, write frame times and progress to this JSON file.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Open on this view (e.g. "attention", "curves").
        #[arg(long)]
        view: Option<String>,
    },
    /// Print every GPU adapter: name, backend, device type, limits and features (set BEITLAB_ADAPTER to pick one).
    Info,
    /// Run a model folder (config.json + model.safetensors) on inputs and write logits, loss, hidden states,
    /// attention maps and (with --grads) every parameter gradient, like HuggingFace transformers' BEiT.
    Forward {
        /// Checkpoint folder (HuggingFace layout, transformers 4.x or 5.x names, f32 / f16 / bf16).
        #[arg(long)]
        model: PathBuf,
        /// safetensors file with pixel_values (B, C, H, W), optional bool_masked_pos (B, N) and labels.
        #[arg(long)]
        input: PathBuf,
        /// safetensors file to write.
        #[arg(long)]
        output: PathBuf,
        /// Also write grad.{name} for every parameter (needs labels).
        #[arg(long)]
        grads: bool,
    },
    /// Write a freshly initialised model folder (BEiT's initialisation, seeded).
    Init {
        /// A preset (micro, tiny, small, base) ...
        #[arg(long, conflicts_with = "config")]
        preset: Option<String>,
        /// ... or a config.json to take the architecture from.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write BEiT masks (blockwise, or uniform random with --random) to a safetensors file: `masks` u8 (N, G·G).
    Masks {
        /// Patch grid side G (14 for 224 / 16).
        #[arg(long)]
        grid: u32,
        /// Patches to mask per image (default 40% of the grid).
        #[arg(long)]
        num_masking_patches: Option<u32>,
        /// Smallest target area of a block (default 16 · G² / 196, at least 1).
        #[arg(long)]
        min_num_patches: Option<u32>,
        #[arg(long, default_value_t = 0.3)]
        min_aspect: f64,
        /// Largest aspect ratio (default 1 / min-aspect).
        #[arg(long)]
        max_aspect: Option<f64>,
        /// Uniform random masking of the same count instead of blocks (the paper's ablation).
        #[arg(long)]
        random: bool,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        output: PathBuf,
    },
    /// BEiT masked image modeling on a dataset, with a trained tokenizer's tokens as targets (a tokenizer is
    /// trained first into OUT/tokenizer when none is given). Writes OUT/checkpoint (a HuggingFace folder plus
    /// training_state.safetensors, replaced whole at each save) and OUT/metrics.jsonl.
    Pretrain {
        #[arg(long, default_value = "builtin")]
        data: String,
        #[arg(long, default_value = "micro")]
        preset: String,
        /// A tokenizer folder (from `beitlab tokenizer train`) matching the preset's patch grid.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        #[arg(long, default_value_t = 500)]
        steps: u32,
        /// Train for this many passes over the training set instead of --steps.
        #[arg(long)]
        epochs: Option<f64>,
        #[arg(long, default_value_t = 32)]
        batch: u32,
        #[arg(long, default_value_t = 1.5e-3)]
        lr: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// blockwise (BEiT) or random (the paper's ablation).
        #[arg(long, default_value = "blockwise")]
        masking: String,
        /// What the MIM head learns: visual tokens (BEiT) or the normalised pixels of masked patches (the paper's ablation).
        #[arg(long, default_value = "tokens")]
        target: String,
        /// Save a checkpoint every this many steps (0: at the end only).
        #[arg(long, default_value_t = 0)]
        checkpoint_every: u32,
        /// One JSON object per logged step on stdout.
        #[arg(long)]
        json: bool,
        /// Continue the run saved in DIR (its checkpoint/, tokenizer/ and data position) up to --steps;
        /// the result equals the uninterrupted run's.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Run folder (defaults to the --resume folder).
        #[arg(long, required_unless_present = "resume")]
        out: Option<PathBuf>,
    },
    /// Fine-tune for classification from a pretrained run or model folder (--init), or from scratch; reports
    /// validation top-1 accuracy. Writes OUT/checkpoint and OUT/metrics.jsonl.
    Finetune {
        /// A pretraining run folder (its checkpoint/) or a model folder.
        #[arg(long, conflicts_with_all = ["scratch", "resume"])]
        init: Option<PathBuf>,
        /// Start from a fresh initialisation of --preset instead.
        #[arg(long)]
        scratch: bool,
        #[arg(long, default_value = "micro")]
        preset: String,
        #[arg(long, default_value = "builtin")]
        data: String,
        #[arg(long, default_value_t = 500)]
        steps: u32,
        /// Train for this many passes over the training set instead of --steps.
        #[arg(long)]
        epochs: Option<f64>,
        #[arg(long, default_value_t = 32)]
        batch: u32,
        #[arg(long, default_value_t = 3e-3)]
        lr: f32,
        #[arg(long, default_value_t = 0.65)]
        layer_decay: f32,
        #[arg(long, default_value_t = 0.1)]
        label_smoothing: f32,
        #[arg(long, default_value_t = 0.1)]
        drop_path: f64,
        /// Smallest crop scale of the random resized crop.
        #[arg(long, default_value_t = 0.8)]
        min_crop: f64,
        /// No horizontal flips (for digits and text).
        #[arg(long)]
        no_flip: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        json: bool,
        /// Save a checkpoint every this many steps (0: at the end only).
        #[arg(long, default_value_t = 0)]
        checkpoint_every: u32,
        /// Continue the fine-tuning run saved in DIR (settings from its finetune.json) up to --steps.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Run folder (defaults to the --resume folder).
        #[arg(long, required_unless_present = "resume")]
        out: Option<PathBuf>,
    },
    /// Linear probe: the encoder frozen, a softmax-regression head on the average-pooled patch tokens of one block
    /// (BEiT-base's best is block 9 of 12); reports validation top-1.
    Linprobe {
        /// A pretraining run folder (its checkpoint/) or a model folder.
        #[arg(long)]
        init: PathBuf,
        #[arg(long, default_value = "builtin")]
        data: String,
        /// Block whose output is pooled (1..=L; default: the last).
        #[arg(long)]
        layer: Option<u32>,
        #[arg(long, default_value_t = 50)]
        epochs: u32,
        #[arg(long, default_value_t = 1e-2)]
        lr: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// Top-1 accuracy and confusion matrix of a classification model folder on labelled data.
    Eval {
        #[arg(long)]
        model: PathBuf,
        /// `builtin` (the built-in validation split), an image folder, or IDX files.
        #[arg(long, default_value = "builtin")]
        data: String,
        #[arg(long)]
        json: bool,
    },
    /// The paper's claim in miniature on the built-in data: tokenizer -> pretrain -> fine-tune, against the same
    /// fine-tuning from scratch; both evaluated on the official Fashion-MNIST test split when installed
    /// (apt-get install dataset-fashion-mnist), on the validation split otherwise. Writes OUT/results.md.
    Experiment {
        /// Only `pretrain-vs-scratch` exists.
        which: String,
        #[arg(long, default_value = "micro")]
        preset: String,
        #[arg(long, default_value_t = 1000)]
        pretrain_steps: u32,
        #[arg(long, default_value_t = 600)]
        finetune_steps: u32,
        #[arg(long, default_value_t = 32)]
        batch: u32,
        /// blockwise (BEiT) or random masking (the paper's ablation).
        #[arg(long, default_value = "blockwise")]
        masking: String,
        /// What the MIM head learns: visual tokens (BEiT) or the normalised pixels of masked patches (the paper's ablation).
        #[arg(long, default_value = "tokens")]
        target: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// The visual tokenizer: train it on a dataset, or encode a dataset to tokens.
    Tokenizer {
        #[command(subcommand)]
        what: TokenizerCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenizerCommand {
    /// Train a tokenizer whose token grid is the patch grid of a BEiT preset; writes a checkpoint folder.
    Train {
        /// `builtin` (Fashion-MNIST subset), an image folder, or IDX files.
        #[arg(long, default_value = "builtin")]
        data: String,
        /// BEiT preset whose image and patch size the tokens follow (micro, tiny, small, base).
        #[arg(long, default_value = "tiny")]
        preset: String,
        #[arg(long, default_value_t = 2000)]
        steps: u32,
        #[arg(long, default_value_t = 64)]
        batch: u32,
        #[arg(long, default_value_t = 2e-3)]
        lr: f32,
        /// Codebook size (default: 512, 8192 for base).
        #[arg(long)]
        codebook_size: Option<u32>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Smallest crop scale of the random resized crop (BEiT: 0.08).
        #[arg(long, default_value_t = 0.08)]
        min_crop: f64,
        /// No horizontal flips (for digits and text).
        #[arg(long)]
        no_flip: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Encode every image of a dataset (evaluation view) to tokens: `tokens` i64 (images, N) (+ `labels`).
    Encode {
        #[arg(long)]
        tokenizer: PathBuf,
        #[arg(long, default_value = "builtin")]
        data: String,
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// The app's per-frame work without a window: pretraining in the app loop paced at a display's refresh;
    /// prints work per frame (training submits, inspector, UI build and tessellation) and images/s.
    App {
        /// micro or tiny (default: micro on a CPU adapter, tiny on a GPU).
        #[arg(long)]
        preset: Option<String>,
        #[arg(long)]
        batch: Option<u32>,
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        #[arg(long, default_value_t = 60.0)]
        fps: f64,
    },
    /// Time full MIM pretraining steps: images/s (median), step time, GPU memory in beitlab's buffers,
    /// achieved FLOP/s. Compare with PyTorch's table (tiny32 b128, tiny224 b64, base224 b64).
    Train {
        #[arg(long, default_value = "tiny")]
        preset: String,
        #[arg(long)]
        image_size: Option<u32>,
        #[arg(long)]
        patch_size: Option<u32>,
        #[arg(long, default_value_t = 8)]
        batch: u32,
        #[arg(long, default_value_t = 5)]
        steps: u32,
        #[arg(long)]
        json: bool,
    },
    /// Time every kernel at BEiT-sized shapes: us per call, GFLOP/s or GB/s, us per dispatch in a chain.
    Kernels {
        /// Which preset's dims to use.
        #[arg(long, value_enum, default_value = "all")]
        preset: PresetChoice,
        /// Images per batch for the shapes.
        #[arg(long, default_value_t = 8)]
        batch: u32,
        /// Print one JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// The card's peak TFLOP/s, to print achieved / peak.
        #[arg(long)]
        peak_tflops: Option<f64>,
        /// Seconds of GPU work per measurement.
        #[arg(long, default_value_t = 0.25)]
        seconds: f64,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PresetChoice {
    Tiny,
    Base,
    All,
}

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command.unwrap_or(Command::App {
        preset: None,
        batch: None,
        start: false,
        quit_after: None,
        report: None,
        view: None,
    }) {
        Command::App {
            preset,
            batch,
            start,
            quit_after,
            report,
            view,
        } => crate::app::window::run(crate::app::shell::WindowOptions {
            preset,
            batch,
            start,
            quit_after,
            report,
            view,
        }),
        Command::Info => info(),
        Command::Tokenizer { what } => tokenizer(what),
        Command::Finetune {
            init,
            scratch,
            preset,
            data,
            steps,
            epochs,
            batch,
            lr,
            layer_decay,
            label_smoothing,
            drop_path,
            min_crop,
            no_flip,
            seed,
            json,
            checkpoint_every,
            resume,
            out,
        } => {
            let typed = FinetuneSettings {
                init,
                scratch,
                preset,
                data,
                batch,
                lr,
                layer_decay,
                label_smoothing,
                drop_path,
                min_crop,
                flip: !no_flip,
                seed,
            };
            match (out.or_else(|| resume.clone()), &resume) {
                (Some(out), Some(_)) => FinetuneSettings::read(&out)
                    .and_then(|s| finetune(&s, steps, epochs, json, checkpoint_every, true, &out)),
                (Some(out), None) => {
                    finetune(&typed, steps, epochs, json, checkpoint_every, false, &out)
                }
                (None, _) => Err("give --out DIR or --resume DIR".into()),
            }
        }
        Command::Experiment {
            which,
            preset,
            pretrain_steps,
            finetune_steps,
            batch,
            masking,
            target,
            seed,
            out,
        } => experiment(
            &which,
            &preset,
            pretrain_steps,
            finetune_steps,
            batch,
            (masking.as_str(), target.as_str()),
            seed,
            &out,
        ),
        Command::Linprobe {
            init,
            data,
            layer,
            epochs,
            lr,
            seed,
            json,
        } => linprobe(&init, &data, layer, epochs, lr, seed, json),
        Command::Eval { model, data, json } => eval(&model, &data, json),
        Command::Pretrain {
            data,
            preset,
            tokenizer,
            steps,
            epochs,
            batch,
            lr,
            seed,
            masking,
            target,
            checkpoint_every,
            json,
            resume,
            out,
        } => match out.or_else(|| resume.clone()) {
            Some(out) => {
                // A resumed run takes its settings from the run folder (only --steps may change).
                let run = RunSettings {
                    data,
                    preset,
                    batch,
                    lr,
                    seed,
                    masking,
                    target,
                };
                match if resume.is_some() {
                    RunSettings::read(&out)
                } else {
                    Ok(run)
                } {
                    Ok(run) => pretrain(
                        &run.data,
                        &run.preset,
                        tokenizer,
                        steps,
                        run.batch,
                        run.lr,
                        run.seed,
                        &run.masking,
                        &run.target,
                        checkpoint_every,
                        json,
                        resume.is_some(),
                        epochs,
                        &out,
                    ),
                    Err(e) => Err(e),
                }
            }
            None => Err("give --out DIR or --resume DIR".into()),
        },
        Command::Masks {
            grid,
            num_masking_patches,
            min_num_patches,
            min_aspect,
            max_aspect,
            random,
            count,
            seed,
            output,
        } => masks(
            grid,
            num_masking_patches,
            min_num_patches,
            min_aspect,
            max_aspect,
            random,
            count,
            seed,
            &output,
        ),
        Command::Forward {
            model,
            input,
            output,
            grads,
        } => forward(&model, &input, &output, grads),
        Command::Init {
            preset,
            config,
            seed,
            out,
        } => init(preset.as_deref(), config.as_deref(), seed, &out),
        Command::Bench {
            what:
                BenchCommand::App {
                    preset,
                    batch,
                    seconds,
                    fps,
                },
        } => crate::app::bench::bench_app(&crate::app::bench::AppBenchOptions {
            preset,
            batch,
            seconds,
            fps,
            view: crate::app::View::Mim,
        }),
        Command::Bench {
            what:
                BenchCommand::Train {
                    preset,
                    image_size,
                    patch_size,
                    batch,
                    steps,
                    json,
                },
        } => bench_train(&preset, image_size, patch_size, batch, steps, json),
        Command::Bench {
            what:
                BenchCommand::Kernels {
                    preset,
                    batch,
                    json,
                    peak_tflops,
                    seconds,
                },
        } => {
            let presets = BENCH_PRESETS
                .iter()
                .copied()
                .filter(|p| {
                    matches!(
                        (preset, p.name),
                        (PresetChoice::All, _)
                            | (PresetChoice::Tiny, "tiny")
                            | (PresetChoice::Base, "base")
                    )
                })
                .collect();
            bench_kernels(
                &BenchOptions {
                    presets,
                    batch: batch.max(1),
                    target_seconds: seconds,
                    peak_tflops,
                },
                json,
            )
        }
    };
    match result {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("error: {msg}");
            1
        }
    }
}

fn device(req: &gpu::Requirements) -> Result<gpu::GpuContext, String> {
    gpu::GpuContext::new_headless_blocking(req, gpu::ErrorPolicy::Record).map_err(|e| e.to_string())
}

/// What a model of `cfg` needs from the adapter at `batch`: its largest buffer must fit one binding.
fn model_requirements(cfg: &crate::model::BeitConfig, batch: u32) -> gpu::Requirements {
    // Training runs the MIM head on masked patches only (at most the masking budget per image).
    let rows = crate::data::masking::BlockMasking::scaled(cfg.grid()).num_masking_patches;
    gpu::Requirements::kernels().with_buffer_bytes(cfg.largest_buffer_bytes(batch, rows))
}

fn forward(
    model: &std::path::Path,
    input: &std::path::Path,
    output: &std::path::Path,
    grads: bool,
) -> Result<(), String> {
    let ck = crate::model::checkpoint::read_folder(model).map_err(|e| e.to_string())?;
    let batch = crate::model::io_forward::read_inputs(input)
        .map_err(|e| e.to_string())?
        .shape[0] as u32;
    let need = ck.config.largest_buffer_bytes(batch, ck.config.patches());
    let ctx = device(&gpu::Requirements::kernels().with_buffer_bytes(need))?;
    let loss = crate::model::io_forward::forward_files(&ctx, model, input, output, grads)
        .map_err(|e| e.to_string())?;
    match loss {
        Some(l) => println!("wrote {} (loss {l:.6})", output.display()),
        None => println!("wrote {}", output.display()),
    }
    Ok(())
}

fn init(
    preset: Option<&str>,
    config: Option<&std::path::Path>,
    seed: u64,
    out: &std::path::Path,
) -> Result<(), String> {
    let cfg = match (preset, config) {
        (_, Some(path)) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            crate::model::BeitConfig::from_json(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        (Some(p), None) => crate::model::BeitConfig::preset(p).map_err(|e| e.to_string())?,
        (None, None) => return Err("give --preset NAME or --config FILE".into()),
    };
    let table = crate::model::ParamTable::new(&cfg, 4);
    crate::model::checkpoint::write_folder(out, &cfg, &table, &table.init_values(seed))
        .map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} parameters)",
        out.display(),
        table.trainable_count()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn masks(
    grid: u32,
    k: Option<u32>,
    m: Option<u32>,
    min_aspect: f64,
    max_aspect: Option<f64>,
    random: bool,
    count: u32,
    seed: u64,
    output: &std::path::Path,
) -> Result<(), String> {
    use crate::data::masking::{random_mask, BlockMasking};
    let scaled = BlockMasking::scaled(grid);
    let gen = BlockMasking::new(
        grid,
        grid,
        k.unwrap_or(scaled.num_masking_patches),
        m.unwrap_or(scaled.min_num_patches),
        min_aspect,
        max_aspect,
    );
    gen.validate()?;
    let mut rng = crate::rng::Rng::new(seed);
    let n = (grid * grid) as usize;
    let mut all = Vec::with_capacity(count as usize * n);
    let mut masked = 0u64;
    for _ in 0..count {
        let mask = if random {
            random_mask(grid * grid, gen.num_masking_patches, &mut rng)
        } else {
            gen.generate(&mut rng)
        };
        masked += mask.iter().map(|&v| v as u64).sum::<u64>();
        all.extend(mask);
    }
    let mut t = std::collections::BTreeMap::new();
    t.insert(
        "masks".to_string(),
        crate::tensorfile::HostTensor::u8(vec![count as usize, n], all),
    );
    crate::tensorfile::write(output, &t).map_err(|e| e.to_string())?;
    println!(
        "wrote {count} {} masks of {grid}x{grid} to {} (mean {:.2} masked of budget {})",
        if random { "random" } else { "blockwise" },
        output.display(),
        masked as f64 / count.max(1) as f64,
        gen.num_masking_patches
    );
    Ok(())
}

/// Train and validation sets: the built-in splits, or a user dataset with every tenth image held out.
fn train_val(
    spec: &str,
    channels: u32,
) -> Result<(crate::data::dataset::Dataset, crate::data::dataset::Dataset), String> {
    use crate::data::dataset::{Dataset, Split};
    if spec == "builtin" {
        return Ok((
            Dataset::builtin(Split::Train, channels).map_err(|e| e.to_string())?,
            Dataset::builtin(Split::Val, channels).map_err(|e| e.to_string())?,
        ));
    }
    let all = Dataset::open(spec, channels).map_err(|e| e.to_string())?;
    if let Some(s) = all.skipped_summary() {
        eprintln!("{}: {s}", all.source);
    }
    let (mut train, mut val) = (
        Dataset {
            source: all.source.clone(),
            ..Default::default()
        },
        Dataset {
            source: format!("{} (every 10th image)", all.source),
            ..Default::default()
        },
    );
    for (i, img) in all.images.into_iter().enumerate() {
        if i % 10 == 9 { &mut val } else { &mut train }
            .images
            .push(img);
    }
    if val.is_empty() {
        val.images = train.images.clone();
    }
    Ok((train, val))
}

fn tokenizer(what: TokenizerCommand) -> Result<(), String> {
    use crate::tokenizer::train::{evaluate, train, TrainOptions};
    use crate::tokenizer::{Tokenizer, TokenizerConfig};
    match what {
        TokenizerCommand::Train {
            data,
            preset,
            steps,
            batch,
            lr,
            codebook_size,
            seed,
            min_crop,
            no_flip,
            out,
        } => {
            let mut cfg = TokenizerConfig::preset(&preset).map_err(|e| e.to_string())?;
            if let Some(k) = codebook_size {
                cfg.codebook_size = k;
            }
            let (train_set, val_set) = train_val(&data, cfg.num_channels)?;
            let ctx = device(&gpu::Requirements::kernels())?;
            println!(
                "tokenizer: {} images from {}, {}x{} grid of {}-pixel patches, {} codes, on {}",
                train_set.len(),
                train_set.source,
                cfg.grid(),
                cfg.grid(),
                cfg.patch_size,
                cfg.codebook_size,
                ctx.describe()
            );
            let tk = Tokenizer::new_random(&ctx, &cfg, seed).map_err(|e| e.to_string())?;
            let opts = TrainOptions {
                steps,
                batch,
                lr,
                seed,
                crop_scale: (min_crop, 1.0),
                flip: !no_flip,
            };
            let t0 = std::time::Instant::now();
            let every = (steps / 20).max(1);
            train(&ctx, &tk, &train_set, &opts, |r| {
                if r.step % every == 0 || r.step == steps {
                    let el = t0.elapsed().as_secs_f64();
                    let ips = (r.step * batch) as f64 / el;
                    let eta = (steps - r.step) as f64 * batch as f64 / ips.max(1e-9);
                    println!("tokenizer {} {:>6}/{steps}  reconstruction {:.5}  commitment {:.5}  {:.0} img/s  ETA {:.0} s", bar(r.step, steps), r.step, r.reconstruction, r.commitment, ips, eta);
                }
            })
            .map_err(|e| e.to_string())?;
            let secs = t0.elapsed().as_secs_f64();
            let m = evaluate(&ctx, &tk, &val_set, batch).map_err(|e| e.to_string())?;
            tk.save(&ctx, &out).map_err(|e| e.to_string())?;
            println!(
                "trained {steps} steps in {secs:.0} s; validation ({} images): PSNR {:.2} dB, codebook usage {:.1}% ({} of {}), perplexity {:.1}; saved {}",
                val_set.len(),
                m.psnr,
                100.0 * m.usage,
                (m.usage * cfg.codebook_size as f64).round(),
                cfg.codebook_size,
                m.perplexity,
                out.display()
            );
            Ok(())
        }
        TokenizerCommand::Encode {
            tokenizer,
            data,
            output,
        } => {
            let ctx = device(&gpu::Requirements::kernels())?;
            let tk = Tokenizer::load(&ctx, &tokenizer).map_err(|e| e.to_string())?;
            let spec = if data == "builtin" {
                "builtin:train"
            } else {
                data.as_str()
            };
            let ds = crate::data::dataset::Dataset::open(spec, tk.cfg.num_channels)
                .map_err(|e| e.to_string())?;
            if let Some(s) = ds.skipped_summary() {
                eprintln!("{}: {s}", ds.source);
            }
            let toks = crate::tokenizer::train::encode_dataset(&ctx, &tk, &ds, 64)
                .map_err(|e| e.to_string())?;
            let mut t = std::collections::BTreeMap::new();
            let n = tk.cfg.tokens() as usize;
            t.insert(
                "tokens".to_string(),
                crate::tensorfile::HostTensor::i64(
                    vec![ds.len(), n],
                    toks.iter().map(|&v| v as i64).collect(),
                ),
            );
            if let Some(l) = &ds.labels {
                t.insert(
                    "labels".to_string(),
                    crate::tensorfile::HostTensor::i64(
                        vec![ds.len()],
                        l.iter().map(|&v| v as i64).collect(),
                    ),
                );
            }
            crate::tensorfile::write(&output, &t).map_err(|e| e.to_string())?;
            println!(
                "wrote tokens of {} images ({} per image) to {}",
                ds.len(),
                n,
                output.display()
            );
            Ok(())
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn pretrain(
    data: &str,
    preset: &str,
    tokenizer_dir: Option<PathBuf>,
    steps: u32,
    batch: u32,
    lr: f32,
    seed: u64,
    masking: &str,
    target: &str,
    checkpoint_every: u32,
    json: bool,
    resume: bool,
    epochs: Option<f64>,
    out: &std::path::Path,
) -> Result<(), String> {
    use crate::data::augment::Augment;
    use crate::data::masking::BlockMasking;
    use crate::model::{BeitConfig, BeitModel};
    use crate::tokenizer::Tokenizer;
    use crate::train::pretrain::{pretrain, Masking, PretrainOptions};
    use std::io::Write;
    let cfg = BeitConfig::preset(preset).map_err(|e| e.to_string())?;
    let (train_set, _) = train_val(data, cfg.num_channels)?;
    let steps = epochs.map_or(steps, |e| steps_for_epochs(e, train_set.len(), batch));
    let ctx = device(&model_requirements(&cfg, batch))?;
    let pixels = match target {
        "tokens" => false,
        "pixels" => true,
        other => return Err(format!("unknown target \"{other}\"; use tokens or pixels")),
    };
    let tok_dir = match tokenizer_dir {
        _ if pixels => PathBuf::new(),
        Some(d) => d,
        None if resume => out.join("tokenizer"),
        None => {
            let d = out.join("tokenizer");
            println!(
                "no --tokenizer given: training one first into {}",
                d.display()
            );
            tokenizer(TokenizerCommand::Train {
                data: data.to_string(),
                preset: preset.to_string(),
                steps: 300,
                batch: 64,
                lr: 2e-3,
                codebook_size: None,
                seed,
                min_crop: 0.08,
                no_flip: false,
                out: d.clone(),
            })?;
            d
        }
    };
    let tk = if pixels {
        None
    } else {
        Some(Tokenizer::load(&ctx, &tok_dir).map_err(|e| e.to_string())?)
    };
    // The run folder keeps its own copy of the tokenizer, so --resume needs nothing else.
    let own = out.join("tokenizer");
    if !pixels && tok_dir != own {
        std::fs::create_dir_all(&own).map_err(|e| format!("{}: {e}", own.display()))?;
        for f in ["tokenizer_config.json", "tokenizer.safetensors"] {
            std::fs::copy(tok_dir.join(f), own.join(f))
                .map_err(|e| format!("{}: {e}", own.join(f).display()))?;
        }
    }
    let mut cfg = cfg;
    match &tk {
        Some(tk) => cfg.vocab_size = tk.cfg.codebook_size,
        None => cfg.mim_target = Some("pixels".into()),
    }
    let model = if resume {
        BeitModel::load(&ctx, &out.join("checkpoint"), None).map_err(|e| e.to_string())?
    } else {
        BeitModel::new_random(&ctx, &cfg, seed).map_err(|e| e.to_string())?
    };
    let cfg = model.cfg.clone();
    let grid = cfg.grid();
    let block = BlockMasking::scaled(grid);
    let masking = match masking {
        "blockwise" => Masking::Blockwise(block),
        "random" => Masking::Random(block.num_masking_patches),
        other => {
            return Err(format!(
                "unknown masking \"{other}\"; use blockwise or random"
            ))
        }
    };
    let opts = PretrainOptions {
        steps,
        batch,
        lr,
        min_lr: lr * 0.01,
        warmup: (steps / 10).max(1),
        weight_decay: 0.05,
        clip: 3.0,
        seed,
        masking,
        augment: Augment::beit(cfg.image_size, cfg.num_channels),
        checkpoint_every,
        out: Some(out.join("checkpoint")),
        resume: resume.then(|| out.join("checkpoint")),
        stop_after: None,
    };
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    RunSettings {
        data: data.to_string(),
        preset: preset.to_string(),
        batch,
        lr,
        seed,
        masking: if matches!(masking, Masking::Random(_)) {
            "random"
        } else {
            "blockwise"
        }
        .to_string(),
        target: target.to_string(),
    }
    .write(out)?;
    let log_path = out.join("metrics.jsonl");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(resume)
        .write(true)
        .truncate(!resume)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    println!(
        "pretraining {preset} ({} parameters) on {} images from {}, {} masking, on {}",
        model.table.trainable_count(),
        train_set.len(),
        train_set.source,
        if matches!(masking, Masking::Random(_)) {
            "random"
        } else {
            "blockwise"
        },
        ctx.describe()
    );
    let t0 = std::time::Instant::now();
    let every = (steps / 20).max(1);
    let mut last_line = None;
    pretrain(&ctx, &model, tk.as_ref(), &train_set, &opts, |m| {
        let el = t0.elapsed().as_secs_f64();
        let ips = (m.step * batch) as f64 / el.max(1e-9);
        let line = serde_json::json!({"step": m.step, "loss": m.loss, "accuracy": m.accuracy, "grad_norm": m.grad_norm, "lr": m.lr, "masked": m.masked, "images_per_s": ips});
        let _ = writeln!(log, "{line}");
        if m.step % every == 0 || m.step == steps {
            if json {
                println!("{line}");
            } else {
                let eta = (steps - m.step) as f64 * batch as f64 / ips.max(1e-9);
                println!("pretrain {} {:>6}/{steps}  loss {:.4}  MIM accuracy {:>5.1}%  grad norm {:.3}  lr {:.2e}  {:.0} img/s  ETA {:.0} s", bar(m.step, steps), m.step, m.loss, 100.0 * m.accuracy, m.grad_norm, m.lr, ips, eta);
            }
        }
        last_line = Some(m);
    })
    .map_err(|e| e.to_string())?;
    let plot = crate::train::plot::plot_run(out, "pretraining")?;
    println!("curves: {}", plot.display());
    if let Some(m) = last_line {
        println!("pretrained {steps} steps in {:.0} s: final loss {:.4}, MIM accuracy {:.1}%; saved {} (metrics in {})", t0.elapsed().as_secs_f64(), m.loss, 100.0 * m.accuracy, out.join("checkpoint").display(), log_path.display());
    }
    Ok(())
}

/// The settings of a pretraining run, kept in its folder (`run.json`) so `--resume` continues it unchanged.
#[derive(serde::Serialize, serde::Deserialize)]
struct RunSettings {
    data: String,
    preset: String,
    batch: u32,
    lr: f32,
    seed: u64,
    masking: String,
    #[serde(default = "tokens_target")]
    target: String,
}

fn tokens_target() -> String {
    "tokens".into()
}

impl RunSettings {
    fn read(dir: &std::path::Path) -> Result<Self, String> {
        let p = dir.join("run.json");
        let text = std::fs::read_to_string(&p)
            .map_err(|e| format!("{}: {e} (is this a pretraining run folder?)", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
    }
    fn write(&self, dir: &std::path::Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        crate::tensorfile::write_atomic(&dir.join("run.json"), text.as_bytes())
            .map_err(|e| e.to_string())
    }
}

/// A 20-character progress bar.
fn bar(done: u32, total: u32) -> String {
    let filled = ((done as f64 / total.max(1) as f64) * 20.0).round() as usize;
    format!(
        "[{}{}]",
        "#".repeat(filled.min(20)),
        ".".repeat(20 - filled.min(20))
    )
}

/// Expand `--config FILE` (a JSON object of option names to values, e.g. {"batch": 64, "lr": 0.001, "no_flip": true})
/// into command-line options placed before the ones typed, so typed options win.
pub fn expand_config(args: Vec<String>) -> Result<Vec<String>, String> {
    let Some(pos) = args
        .iter()
        .position(|a| a == "--config" || a.starts_with("--config="))
    else {
        return Ok(args);
    };
    let (path, skip) = match args[pos].strip_prefix("--config=") {
        Some(p) => (p.to_string(), 1),
        None => (
            args.get(pos + 1).cloned().ok_or("--config needs a file")?,
            2,
        ),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| format!("{path}: not a JSON object of options ({e})"))?;
    let mut from_file = Vec::new();
    for (k, v) in obj {
        let flag = format!("--{}", k.replace('_', "-"));
        match v {
            serde_json::Value::Bool(true) => from_file.push(flag),
            serde_json::Value::Bool(false) | serde_json::Value::Null => {}
            serde_json::Value::String(s) => from_file.extend([flag, s]),
            serde_json::Value::Number(n) => from_file.extend([flag, n.to_string()]),
            other => {
                return Err(format!(
                    "{path}: option {k} has an unsupported value {other}"
                ))
            }
        }
    }
    // The file's options go before every typed option (right after the subcommands), so typed ones win.
    let rest: Vec<String> = args[..pos]
        .iter()
        .chain(&args[pos + skip..])
        .cloned()
        .collect();
    let first_option = rest
        .iter()
        .skip(1)
        .position(|a| a.starts_with('-'))
        .map_or(rest.len(), |i| i + 1);
    let mut out: Vec<String> = rest[..first_option].to_vec();
    out.extend(from_file);
    out.extend(rest[first_option..].iter().cloned());
    Ok(out)
}

/// Steps for `epochs` passes over `images` in batches of `batch` (at least one).
fn steps_for_epochs(epochs: f64, images: usize, batch: u32) -> u32 {
    ((epochs * images as f64) / batch.max(1) as f64)
        .ceil()
        .max(1.0) as u32
}

/// A model folder: the folder itself, or the `checkpoint/` of a run folder.
fn model_folder(dir: &std::path::Path) -> PathBuf {
    let ck = dir.join("checkpoint");
    if ck.join("config.json").exists() {
        ck
    } else {
        dir.to_path_buf()
    }
}

/// The settings of a fine-tuning run, kept in its folder (`finetune.json`) so `--resume` continues it unchanged.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct FinetuneSettings {
    init: Option<PathBuf>,
    scratch: bool,
    preset: String,
    data: String,
    batch: u32,
    lr: f32,
    layer_decay: f32,
    label_smoothing: f32,
    drop_path: f64,
    min_crop: f64,
    flip: bool,
    seed: u64,
}

impl FinetuneSettings {
    fn read(dir: &std::path::Path) -> Result<Self, String> {
        let p = dir.join("finetune.json");
        let text = std::fs::read_to_string(&p)
            .map_err(|e| format!("{}: {e} (is this a fine-tuning run folder?)", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
    }
}

fn finetune(
    settings: &FinetuneSettings,
    steps: u32,
    epochs: Option<f64>,
    json: bool,
    checkpoint_every: u32,
    resume: bool,
    out: &std::path::Path,
) -> Result<(), String> {
    let FinetuneSettings {
        init,
        scratch,
        preset,
        data,
        batch,
        lr,
        layer_decay,
        label_smoothing,
        drop_path,
        min_crop,
        flip,
        seed,
    } = settings.clone();
    let (preset, data) = (preset.as_str(), data.as_str());
    use crate::data::augment::Augment;
    use crate::model::{BeitConfig, BeitModel};
    use crate::train::finetune::{
        classification_config, evaluate, finetune, from_pretrained, FinetuneOptions,
    };
    use std::io::Write;
    let base_cfg = match &init {
        Some(dir) => {
            crate::model::checkpoint::read_folder(&model_folder(dir))
                .map_err(|e| e.to_string())?
                .config
        }
        None if scratch => BeitConfig::preset(preset).map_err(|e| e.to_string())?,
        None => return Err("give --init DIR (a pretrained run or model) or --scratch".into()),
    };
    let (train_set, val_set) = train_val(data, base_cfg.num_channels)?;
    let steps = epochs.map_or(steps, |e| steps_for_epochs(e, train_set.len(), batch));
    let names = if train_set.class_names.is_empty() {
        return Err(format!("{} has no labels", train_set.source));
    } else {
        train_set.class_names.clone()
    };
    let cfg = classification_config(&base_cfg, &names, drop_path);
    let ctx = device(&model_requirements(&cfg, batch))?;
    let model = match &init {
        _ if resume => {
            BeitModel::load(&ctx, &out.join("checkpoint"), None).map_err(|e| e.to_string())?
        }
        Some(dir) => {
            let pre = BeitModel::load(&ctx, &model_folder(dir), None).map_err(|e| e.to_string())?;
            from_pretrained(&ctx, &pre, &cfg, seed).map_err(|e| e.to_string())?
        }
        None => BeitModel::new_random(&ctx, &cfg, seed).map_err(|e| e.to_string())?,
    };
    let mut augment = Augment::beit(cfg.image_size, cfg.num_channels);
    augment.scale = (min_crop, 1.0);
    augment.flip = flip;
    let opts = FinetuneOptions {
        steps,
        batch,
        lr,
        warmup: (steps / 10).max(1),
        weight_decay: 0.05,
        layer_decay,
        label_smoothing,
        clip: None,
        seed,
        augment,
        out: Some(out.join("checkpoint")),
        checkpoint_every,
        resume: resume.then(|| out.join("checkpoint")),
        stop_after: None,
    };
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let text = serde_json::to_string_pretty(settings).map_err(|e| e.to_string())?;
    crate::tensorfile::write_atomic(&out.join("finetune.json"), text.as_bytes())
        .map_err(|e| e.to_string())?;
    let log_path = out.join("metrics.jsonl");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(resume)
        .write(true)
        .truncate(!resume)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    println!(
        "fine-tuning {} ({} parameters) on {} images of {} classes, on {}",
        init.as_ref()
            .map_or("from scratch".to_string(), |d| format!(
                "from {}",
                d.display()
            )),
        model.table.trainable_count(),
        train_set.len(),
        names.len(),
        ctx.describe()
    );
    let t0 = std::time::Instant::now();
    let every = (steps / 20).max(1);
    finetune(&ctx, &model, &train_set, &opts, |m| {
        let ips = (m.step * batch) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        let line = serde_json::json!({"step": m.step, "loss": m.loss, "accuracy": m.accuracy, "grad_norm": m.grad_norm, "lr": m.lr, "images_per_s": ips});
        let _ = writeln!(log, "{line}");
        if m.step % every == 0 || m.step == steps {
            if json {
                println!("{line}");
            } else {
                let eta = (steps - m.step) as f64 * batch as f64 / ips.max(1e-9);
                println!("finetune {} {:>6}/{steps}  loss {:.4}  train accuracy {:>5.1}%  grad norm {:.3}  lr {:.2e}  {:.0} img/s  ETA {:.0} s", bar(m.step, steps), m.step, m.loss, 100.0 * m.accuracy, m.grad_norm, m.lr, ips, eta);
            }
        }
    })
    .map_err(|e| e.to_string())?;
    let (top1, _) = evaluate(&ctx, &model, &val_set, batch).map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::json!({"top1": top1, "images": val_set.len(), "data": val_set.source})
        );
    }
    let plot = crate::train::plot::plot_run(out, "fine-tuning")?;
    println!("curves: {}", plot.display());
    println!(
        "fine-tuned {steps} steps in {:.0} s; top-1 accuracy on {} ({} images): {:.2}%; saved {}",
        t0.elapsed().as_secs_f64(),
        val_set.source,
        val_set.len(),
        100.0 * top1,
        out.join("checkpoint").display()
    );
    Ok(())
}

fn eval(model_dir: &std::path::Path, data: &str, json: bool) -> Result<(), String> {
    use crate::model::BeitModel;
    let folder = model_folder(model_dir);
    let ck = crate::model::checkpoint::read_folder(&folder).map_err(|e| e.to_string())?;
    let spec = if data == "builtin" {
        "builtin:val"
    } else {
        data
    };
    let ds = crate::data::dataset::Dataset::open(spec, ck.config.num_channels)
        .map_err(|e| e.to_string())?;
    if let Some(s) = ds.skipped_summary() {
        eprintln!("{}: {s}", ds.source);
    }
    let ctx = device(&model_requirements(&ck.config, 64))?;
    let model = BeitModel::load(&ctx, &folder, None).map_err(|e| e.to_string())?;
    let (top1, confusion) =
        crate::train::finetune::evaluate(&ctx, &model, &ds, 64).map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::json!({"top1": top1, "images": ds.len(), "data": ds.source, "confusion": confusion})
        );
    } else {
        println!(
            "top-1 accuracy on {} ({} images): {:.2}%",
            ds.source,
            ds.len(),
            100.0 * top1
        );
        println!("confusion matrix (rows: true class, columns: predicted):");
        for (i, row) in confusion.iter().enumerate() {
            let name = ds
                .class_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| i.to_string());
            println!(
                "{name:>12} {}",
                row.iter().map(|v| format!("{v:>5}")).collect::<String>()
            );
        }
    }
    Ok(())
}

fn bench_train(
    preset: &str,
    image_size: Option<u32>,
    patch_size: Option<u32>,
    batch: u32,
    steps: u32,
    json: bool,
) -> Result<(), String> {
    let mut cfg = crate::model::BeitConfig::preset(preset).map_err(|e| e.to_string())?;
    if let Some(s) = image_size {
        cfg.image_size = s;
    }
    if let Some(p) = patch_size {
        cfg.patch_size = p;
    }
    cfg.validate().map_err(|e| e.to_string())?;
    let ctx = device(&model_requirements(&cfg, batch))?;
    let r = bench::bench_train(&ctx, &cfg, preset, batch.max(1), steps.max(1))
        .map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    } else {
        println!(
            "{preset} {}px patch {} batch {}: {:.1} images/s, step {:.1} ms (median of {}), {:.1} MiB in beitlab's buffers, {:.2} GFLOP per step, {:.1} GFLOP/s achieved, on {}",
            r.image_size, r.patch_size, r.batch, r.images_per_s, r.step_ms_median, r.steps, r.gpu_buffer_mib, r.gflop_per_step, r.achieved_gflops, ctx.describe()
        );
    }
    Ok(())
}

/// The evaluation set of the experiment: the official test split when installed, the validation split otherwise.
fn experiment_eval_set(channels: u32) -> Result<crate::data::dataset::Dataset, String> {
    let sys = std::path::Path::new("/usr/share/datasets/fashion-mnist");
    if sys.is_dir() {
        if let Ok(mut d) = crate::data::dataset::Dataset::folder(sys, channels, true) {
            d.class_names = crate::data::dataset::FASHION_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect();
            d.source = format!("the official Fashion-MNIST test split ({})", sys.display());
            return Ok(d);
        }
    }
    let mut d = crate::data::dataset::Dataset::builtin(crate::data::dataset::Split::Val, channels)
        .map_err(|e| e.to_string())?;
    d.source = "the built-in validation split (the official test split is not installed)".into();
    Ok(d)
}

#[allow(clippy::too_many_arguments)]
fn experiment(
    which: &str,
    preset: &str,
    pretrain_steps: u32,
    finetune_steps: u32,
    batch: u32,
    (masking, target): (&str, &str),
    seed: u64,
    out: &std::path::Path,
) -> Result<(), String> {
    use crate::data::augment::Augment;
    use crate::model::BeitModel;
    use crate::train::finetune::{
        classification_config, evaluate, finetune, from_pretrained, FinetuneOptions,
    };
    if which != "pretrain-vs-scratch" {
        return Err(format!(
            "unknown experiment \"{which}\"; the one there is: pretrain-vs-scratch"
        ));
    }
    let t0 = std::time::Instant::now();
    let pre_dir = out.join("pretrain");
    pretrain(
        "builtin",
        preset,
        None,
        pretrain_steps,
        batch,
        1.5e-3,
        seed,
        masking,
        target,
        0,
        false,
        false,
        None,
        &pre_dir,
    )?;
    let pre_secs = t0.elapsed().as_secs_f64();
    let ck = crate::model::checkpoint::read_folder(&pre_dir.join("checkpoint"))
        .map_err(|e| e.to_string())?;
    let (train_set, _) = train_val("builtin", ck.config.num_channels)?;
    let eval_set = experiment_eval_set(ck.config.num_channels)?;
    let cfg = classification_config(&ck.config, &train_set.class_names, 0.1);
    let ctx = device(&model_requirements(&cfg, batch))?;
    let pre =
        BeitModel::load(&ctx, &pre_dir.join("checkpoint"), None).map_err(|e| e.to_string())?;
    let mut augment = Augment::beit(cfg.image_size, cfg.num_channels);
    augment.scale = (0.8, 1.0);
    let opts = |dir: &str| FinetuneOptions {
        steps: finetune_steps,
        batch,
        lr: 3e-3,
        warmup: (finetune_steps / 10).max(1),
        weight_decay: 0.05,
        layer_decay: 0.65,
        label_smoothing: 0.1,
        clip: None,
        seed,
        augment: augment.clone(),
        out: Some(out.join(dir).join("checkpoint")),
        checkpoint_every: 0,
        resume: None,
        stop_after: None,
    };
    let mut rows = Vec::new();
    // (model, [(step, loss, accuracy)])
    type Curve<'a> = (&'a str, Vec<(f64, f64, f64)>);
    let mut curves: Vec<Curve> = Vec::new();
    for (name, model) in [
        (
            "BEiT pretrained",
            from_pretrained(&ctx, &pre, &cfg, seed).map_err(|e| e.to_string())?,
        ),
        (
            "from scratch",
            BeitModel::new_random(&ctx, &cfg, seed).map_err(|e| e.to_string())?,
        ),
    ] {
        let dir = if name == "from scratch" {
            "scratch"
        } else {
            "finetune"
        };
        let t = std::time::Instant::now();
        let mut last = None;
        let mut curve = Vec::new();
        finetune(&ctx, &model, &train_set, &opts(dir), |m| {
            curve.push((m.step as f64, m.loss as f64, m.accuracy as f64));
            last = Some(m)
        })
        .map_err(|e| e.to_string())?;
        curves.push((name, curve));
        let (top1, _) = evaluate(&ctx, &model, &eval_set, 64).map_err(|e| e.to_string())?;
        println!(
            "{name}: fine-tuned {finetune_steps} steps in {:.0} s, top-1 {:.2}% on {}",
            t.elapsed().as_secs_f64(),
            100.0 * top1,
            eval_set.source
        );
        rows.push((name, top1, last.map_or(f32::NAN, |m| m.loss)));
    }
    let mut md = format!(
        "# BEiT pretraining vs training from scratch ({preset} preset, built-in Fashion-MNIST subset)\n\n\
         Pretraining: {pretrain_steps} steps of {batch} images, {masking} masking, {target} as the target ({pre_secs:.0} s, tokenizer training included when there is one). \
         Fine-tuning: {finetune_steps} steps of {batch} images for both rows. Evaluated on {} ({} images). Adapter: {}.\n\n\
         | model | top-1 | final training loss |\n|---|---|---|\n",
        eval_set.source,
        eval_set.len(),
        ctx.describe()
    );
    for (name, top1, loss) in &rows {
        md.push_str(&format!("| {name} | {:.2}% | {loss:.4} |\n", 100.0 * top1));
    }
    md.push_str(&format!("\nTotal time: {:.0} s. Command: `beitlab experiment pretrain-vs-scratch --preset {preset} --pretrain-steps {pretrain_steps} --finetune-steps {finetune_steps} --batch {batch} --masking {masking} --target {target} --seed {seed} --out {}`\n", t0.elapsed().as_secs_f64(), out.display()));
    {
        use crate::train::plot::{smooth, write_png};
        let colors = [[30, 90, 200], [200, 80, 30]];
        let series = |pick: fn(&(f64, f64, f64)) -> f64| -> Vec<crate::train::plot::Series<'_>> {
            curves
                .iter()
                .zip(colors)
                .map(|((name, c), color)| {
                    let pts: Vec<(f64, f64)> = c.iter().map(|p| (p.0, pick(p))).collect();
                    (*name, smooth(&pts, (pts.len() / 50).max(1)), color)
                })
                .collect()
        };
        write_png(
            &out.join("results.png"),
            &[
                ("fine-tuning loss", series(|p| p.1)),
                ("fine-tuning train accuracy", series(|p| p.2)),
            ],
        )?;
    }
    md.push_str("\n![fine-tuning curves](results.png)\n");
    crate::tensorfile::write_atomic(&out.join("results.md"), md.as_bytes())
        .map_err(|e| e.to_string())?;
    println!("\n{md}");
    Ok(())
}

fn linprobe(
    init: &std::path::Path,
    data: &str,
    layer: Option<u32>,
    epochs: u32,
    lr: f32,
    seed: u64,
    json: bool,
) -> Result<(), String> {
    use crate::train::linprobe::{extract_features, train_linear};
    let folder = model_folder(init);
    let ck = crate::model::checkpoint::read_folder(&folder).map_err(|e| e.to_string())?;
    let (train_set, val_set) = train_val(data, ck.config.num_channels)?;
    let (ytr, yva) = match (&train_set.labels, &val_set.labels) {
        (Some(a), Some(b)) => (a.clone(), b.clone()),
        _ => {
            return Err(format!(
                "{} has no labels; a linear probe needs one folder per class",
                train_set.source
            ))
        }
    };
    let ctx = device(&model_requirements(&ck.config, 64))?;
    let model = crate::model::BeitModel::load(&ctx, &folder, None).map_err(|e| e.to_string())?;
    let layer = layer.unwrap_or(model.cfg.num_hidden_layers);
    let t0 = std::time::Instant::now();
    let ftr = extract_features(&ctx, &model, &train_set, layer, 64).map_err(|e| e.to_string())?;
    let fva = extract_features(&ctx, &model, &val_set, layer, 64).map_err(|e| e.to_string())?;
    let classes = train_set
        .class_names
        .len()
        .max(1 + *ytr.iter().max().unwrap_or(&0) as usize);
    let head = train_linear(&ftr, &ytr, classes, epochs, lr, seed);
    let (train_acc, val_acc) = (head.accuracy(&ftr, &ytr), head.accuracy(&fva, &yva));
    if json {
        println!(
            "{}",
            serde_json::json!({"layer": layer, "train_top1": train_acc, "top1": val_acc, "images": val_set.len()})
        );
    } else {
        println!("linear probe on block {layer} of {}: train top-1 {:.2}%, validation top-1 {:.2}% ({} images, {:.0} s)", folder.display(), 100.0 * train_acc, 100.0 * val_acc, val_set.len(), t0.elapsed().as_secs_f64());
    }
    Ok(())
}

fn info() -> Result<(), String> {
    let adapters = gpu::list_adapters();
    if adapters.is_empty() {
        return Err(gpu::GpuError::NoAdapter {
            detail: String::new(),
        }
        .to_string());
    }
    let wanted = std::env::var(ADAPTER_ENV).ok();
    for (i, a) in adapters.iter().enumerate() {
        let info = a.get_info();
        let l = a.limits();
        println!("adapter {i}: {}", info.name);
        println!(
            "  backend {:?}, device type {:?}, vendor 0x{:04x}, device 0x{:04x}",
            info.backend, info.device_type, info.vendor, info.device
        );
        println!("  driver {} ({})", info.driver, info.driver_info);
        println!("  limits:");
        println!(
            "    max_buffer_size                       {}",
            l.max_buffer_size
        );
        println!(
            "    max_storage_buffer_binding_size       {}",
            l.max_storage_buffer_binding_size
        );
        println!(
            "    max_storage_buffers_per_shader_stage  {}",
            l.max_storage_buffers_per_shader_stage
        );
        println!(
            "    max_compute_workgroup_storage_size    {}",
            l.max_compute_workgroup_storage_size
        );
        println!(
            "    max_compute_invocations_per_workgroup {}",
            l.max_compute_invocations_per_workgroup
        );
        println!(
            "    max_compute_workgroups_per_dimension  {}",
            l.max_compute_workgroups_per_dimension
        );
        println!(
            "    min_storage_buffer_offset_alignment   {}",
            l.min_storage_buffer_offset_alignment
        );
        println!(
            "    max_bind_groups                       {}",
            l.max_bind_groups
        );
        println!("  features: {:?}", a.features());
    }
    match gpu::GpuContext::new_headless_blocking(
        &gpu::Requirements::kernels(),
        gpu::ErrorPolicy::Record,
    ) {
        Ok(ctx) => println!(
            "beitlab uses: {}{}",
            ctx.describe(),
            wanted
                .map(|w| format!(" ({ADAPTER_ENV}={w})"))
                .unwrap_or_default()
        ),
        Err(e) => return Err(e.to_string()),
    }
    Ok(())
}

fn bench_kernels(opts: &BenchOptions, json: bool) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_options_come_before_typed_ones() {
        let path = std::env::temp_dir().join(format!("beitlab-config-{}.json", std::process::id()));
        std::fs::write(
            &path,
            r#"{"batch": 50, "lr": 0.004, "no_flip": true, "json": false}"#,
        )
        .unwrap();
        let args: Vec<String> = [
            "beitlab",
            "finetune",
            "--scratch",
            "--batch",
            "25",
            "--config",
            path.to_str().unwrap(),
            "--out",
            "x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = expand_config(args).unwrap();
        assert_eq!(
            out,
            [
                "beitlab",
                "finetune",
                "--batch",
                "50",
                "--lr",
                "0.004",
                "--no-flip",
                "--scratch",
                "--batch",
                "25",
                "--out",
                "x"
            ]
        );
        let cli = Cli::try_parse_from(&out).unwrap();
        match cli.command {
            Some(Command::Finetune {
                batch, lr, no_flip, ..
            }) => assert_eq!((batch, lr, no_flip), (25, 0.004, true)),
            _ => panic!("wrong command"),
        }
        std::fs::write(&path, "[1, 2]").unwrap();
        let bad = vec![
            "beitlab".to_string(),
            "finetune".into(),
            "--config".into(),
            path.to_str().unwrap().into(),
        ];
        assert!(expand_config(bad)
            .unwrap_err()
            .contains("not a JSON object"));
        std::fs::remove_file(path).ok();
    }
}
