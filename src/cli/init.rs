//! `beitlab init`: a freshly initialised model folder.

use std::path::PathBuf;

use clap::Args;

/// Write a freshly initialised model folder (BEiT's initialisation, seeded).
#[derive(Args, Debug)]
pub struct InitArgs {
    /// A preset (micro, tiny, small, base) ...
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// ... or a config.json to take the architecture from.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the model already in --out (without it, a folder holding one is refused).
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(args: &InitArgs) -> Result<(), String> {
    let (seed, out) = (args.seed, &args.out);
    let cfg = match (args.preset.as_deref(), args.config.as_deref()) {
        (_, Some(path)) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            crate::model::BeitConfig::from_json(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        (Some(p), None) => crate::model::BeitConfig::preset(p).map_err(|e| e.to_string())?,
        (None, None) => return Err("give --preset NAME or --config FILE".into()),
    };
    let run_dir = crate::train::run_dir::RunDir::acquire(
        out,
        crate::train::run_dir::RunMode::New {
            overwrite: args.overwrite,
        },
    )?;
    run_dir.clear_for_new_run()?;
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
