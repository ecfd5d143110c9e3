//! The command line: the subcommands (parsed in main.rs), one module each with its clap `Args` struct and what
//! it runs, plus what they share (`common`) and `--config FILE` (`config_file`).

mod app;
mod bench;
mod common;
mod config_file;
mod eval;
mod experiment;
mod experiment_paper;
mod experiment_segment;
mod finetune;
mod forward;
mod info;
mod init;
mod linprobe;
mod masks;
mod pretrain;
mod segment;
mod tokenizer;

use clap::{Parser, Subcommand};

pub use app::AppArgs;
pub use bench::{AppBenchArgs, BenchCommand, KernelBenchArgs, PresetChoice, TrainBenchArgs};
pub use common::TrainValData;
pub use config_file::expand_config;
pub use eval::EvalArgs;
pub use experiment::ExperimentArgs;
pub use finetune::FinetuneArgs;
pub use forward::ForwardArgs;
pub use init::InitArgs;
pub use linprobe::LinprobeArgs;
pub use masks::MasksArgs;
pub use pretrain::PretrainArgs;
pub use segment::SegmentArgs;
pub use tokenizer::{TokenizerCommand, TokenizerEncodeArgs, TokenizerTrainArgs};

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
    App(AppArgs),
    /// Print every GPU adapter: name, backend, device type, limits and features (set BEITLAB_ADAPTER to pick one).
    Info,
    /// Run a model folder (config.json + model.safetensors) on inputs and write logits, loss, hidden states,
    /// attention maps and (with --grads) every parameter gradient, like HuggingFace transformers' BEiT.
    Forward(ForwardArgs),
    /// Write a freshly initialised model folder (BEiT's initialisation, seeded).
    Init(InitArgs),
    /// Write BEiT masks (blockwise, or uniform random with --random) to a safetensors file: `masks` u8 (N, G·G).
    Masks(MasksArgs),
    /// BEiT masked image modeling on a dataset, with a trained tokenizer's tokens as targets (a tokenizer is
    /// trained first into OUT/tokenizer when none is given). Writes OUT/checkpoint (a HuggingFace folder plus
    /// training_state.safetensors, replaced whole at each save) and OUT/metrics.jsonl.
    Pretrain(PretrainArgs),
    /// Fine-tune for classification from a pretrained run or model folder (--init), or from scratch, on the
    /// built-in data or your own labelled images; reports validation top-1 accuracy. Writes OUT/checkpoint and
    /// OUT/metrics.jsonl.
    Finetune(FinetuneArgs),
    /// Fine-tune for semantic segmentation (a linear or pyramid head on the encoder) from a pretrained run or model
    /// folder (--init), or from scratch, on the built-in segmentation set or an ADE20K-layout folder; reports pixel
    /// accuracy and mIoU. Writes OUT/checkpoint and OUT/metrics.jsonl.
    Segment(SegmentArgs),
    /// Linear probe: the encoder frozen, a softmax-regression head on the average-pooled patch tokens of one block
    /// (BEiT-base's best is block 9 of 12); reports validation top-1.
    Linprobe(LinprobeArgs),
    /// Top-1 accuracy, per-class accuracy and confusion matrix of a classification model on labelled data; pixel
    /// accuracy, mIoU and per-class IoU of a segmentation model on label maps.
    Eval(EvalArgs),
    /// The paper's claim in miniature: tokenizer -> pretrain -> fine-tune, against the same fine-tuning from
    /// scratch, on the built-in data or your own labelled images. Writes OUT/results.md and OUT/results.png.
    Experiment(ExperimentArgs),
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

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command.unwrap_or(Command::App(AppArgs::default())) {
        Command::App(a) => app::run(a),
        Command::Info => info::info(),
        Command::Forward(a) => forward::run(&a),
        Command::Init(a) => init::run(&a),
        Command::Masks(a) => masks::run(&a),
        Command::Pretrain(a) => pretrain::run(&a),
        Command::Finetune(a) => finetune::run(&a),
        Command::Segment(a) => segment::run(&a),
        Command::Linprobe(a) => linprobe::run(&a),
        Command::Eval(a) => eval::run(&a),
        Command::Experiment(a) => experiment::run(&a),
        Command::Tokenizer { what } => tokenizer::run(&what),
        Command::Bench { what } => bench::run(&what),
    };
    match result {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("error: {msg}");
            1
        }
    }
}
