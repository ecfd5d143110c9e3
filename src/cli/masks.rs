//! `beitlab masks`: BEiT's blockwise masks (or the ablation's random ones) written to a file.

use std::path::PathBuf;

use clap::Args;

/// Write BEiT masks (blockwise, or uniform random with --random) to a safetensors file: `masks` u8 (N, G·G).
#[derive(Args, Debug)]
pub struct MasksArgs {
    /// Patch grid side G (14 for 224 / 16).
    #[arg(long)]
    pub grid: u32,
    /// Patches to mask per image (default 40% of the grid).
    #[arg(long)]
    pub num_masking_patches: Option<u32>,
    /// Smallest target area of a block (default 16 · G² / 196, at least 1).
    #[arg(long)]
    pub min_num_patches: Option<u32>,
    #[arg(long, default_value_t = 0.3)]
    pub min_aspect: f64,
    /// Largest aspect ratio (default 1 / min-aspect).
    #[arg(long)]
    pub max_aspect: Option<f64>,
    /// Uniform random masking of the same count instead of blocks (the paper's ablation).
    #[arg(long)]
    pub random: bool,
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub output: PathBuf,
}

pub fn run(args: &MasksArgs) -> Result<(), String> {
    let MasksArgs {
        grid,
        num_masking_patches: k,
        min_num_patches: m,
        min_aspect,
        max_aspect,
        random,
        count,
        seed,
        ref output,
    } = *args;
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
