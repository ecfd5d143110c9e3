//! `beitlab forward`: run a model folder on inputs and write what HuggingFace transformers' BEiT returns.

use std::path::PathBuf;

use clap::Args;

use crate::gpu;

/// Run a model folder (config.json + model.safetensors) on inputs and write logits, loss, hidden states,
/// attention maps and (with --grads) every parameter gradient, like HuggingFace transformers' BEiT.
#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// Checkpoint folder (HuggingFace layout, transformers 4.x or 5.x names, f32 / f16 / bf16).
    #[arg(long)]
    pub model: PathBuf,
    /// safetensors file with pixel_values (B, C, H, W), optional bool_masked_pos (B, N) and labels.
    #[arg(long)]
    pub input: PathBuf,
    /// safetensors file to write.
    #[arg(long)]
    pub output: PathBuf,
    /// Also write grad.{name} for every parameter (needs labels).
    #[arg(long)]
    pub grads: bool,
}

pub fn run(args: &ForwardArgs) -> Result<(), String> {
    let (model, input, output) = (&args.model, &args.input, &args.output);
    let ck = crate::model::checkpoint::read_folder(model).map_err(|e| e.to_string())?;
    let batch = crate::model::io_forward::read_inputs(input)
        .map_err(|e| e.to_string())?
        .shape[0] as u32;
    let need = ck.config.largest_buffer_bytes(batch, ck.config.patches());
    let ctx = super::common::device(&gpu::Requirements::kernels().with_buffer_bytes(need))?;
    let loss = crate::model::io_forward::forward_files(&ctx, model, input, output, args.grads)
        .map_err(|e| e.to_string())?;
    match loss {
        Some(l) => println!("wrote {} (loss {l:.6})", output.display()),
        None => println!("wrote {}", output.display()),
    }
    Ok(())
}
