//! `beitlab app` (also what `beitlab` alone runs): the desktop app.

use std::path::PathBuf;

use clap::Args;

/// Open the app: train BEiT on the built-in data (or your images) and watch it learn, live.
#[derive(Args, Debug, Default)]
pub struct AppArgs {
    /// Preset to open with (mini, micro, tiny or tiny14; default: mini on a CPU adapter, tiny14 on a GPU).
    #[arg(long)]
    pub preset: Option<String>,
    /// Images per training step (default: 32 for micro, 64 for tiny).
    #[arg(value_parser = crate::train::checks::parse::count, long)]
    pub batch: Option<u32>,
    /// Start training (tokenizer, pretraining, fine-tuning) as soon as the window opens.
    #[arg(long)]
    pub start: bool,
    /// Close the window after this many seconds (for scripted runs).
    #[arg(long)]
    pub quit_after: Option<f64>,
    /// When the window closes, write frame times and progress to this JSON file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Open on this view: mim, tokens, codebook, attention, paint, segment, compare, curves, status or data.
    #[arg(long, value_parser = crate::app::View::from_name)]
    pub view: Option<crate::app::View>,
    /// Save the view as a PNG (beitlab-VIEW.png) after this many seconds, as the "Save view as PNG" button does.
    #[arg(long)]
    pub save_view_after: Option<f64>,
    /// Open the guided lesson at chapter N (1 to 6): patches and tokens, the codebook, masking, predicting hidden
    /// tokens, attention, fine-tuning.
    #[arg(long, value_parser = crate::app::lesson::parse_chapter)]
    pub lesson: Option<usize>,
    /// Run one phase alone as soon as the window opens: tokenizer, pretrain, fine-tune or segment.
    #[arg(long, value_parser = crate::app::phases::PhaseKind::from_name)]
    pub run: Option<crate::app::phases::PhaseKind>,
}

/// Open the window.
pub fn run(args: AppArgs) -> Result<(), String> {
    crate::app::window::run(crate::app::shell::WindowOptions {
        preset: args.preset,
        batch: args.batch,
        start: args.start,
        quit_after: args.quit_after,
        report: args.report,
        view: args.view,
        save_view_after: args.save_view_after,
        lesson: args.lesson,
        run: args.run,
    })
}
