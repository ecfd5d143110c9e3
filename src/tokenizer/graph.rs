//! The tokenizer's parameters (flat buffer, AdamW) and codebook state on the GPU, and its passes for one batch
//! size: training step (forward, loss, backward, EMA codebook update), encoding to tokens, decoding tokens.
//!
//! Shapes (R = B·N rows, one per patch): pixels (B, C, S, S); patches (R, P); context (R, 5P); encoder hidden
//! (R, H); codes z, ẑ, q (R, D); similarities (R, K); tokens (R) u32; reconstruction (R, P); codebook (K, D).

use std::collections::BTreeMap;
use std::path::Path;

use super::config::TokenizerConfig;
use crate::gpu::{Dispatch, FlatBuffer, FlatLayout, GpuContext, GpuSlice};
use crate::model::ModelError;
use crate::ops::matmul::{gemm, GemmShape, MatView};
use crate::ops::patches::{self, PatchShape};
use crate::ops::precision::ProductInputs;
use crate::ops::vq::{self, EmaState};
use crate::ops::{elementwise, matmul, reduce, tokens};
use crate::rng::Rng;
use crate::tensorfile::{self, HostTensor};

/// Names and shapes of the trainable tensors.
pub fn param_specs(cfg: &TokenizerConfig) -> Vec<(&'static str, Vec<usize>)> {
    let (p, h, d) = (
        cfg.patch_dim() as usize,
        cfg.hidden_size as usize,
        cfg.code_dim as usize,
    );
    vec![
        ("encoder.fc1.weight", vec![h, 5 * p]),
        ("encoder.fc1.bias", vec![h]),
        ("encoder.fc2.weight", vec![d, h]),
        ("encoder.fc2.bias", vec![d]),
        ("decoder.fc1.weight", vec![h, d]),
        ("decoder.fc1.bias", vec![h]),
        ("decoder.fc2.weight", vec![p, h]),
        ("decoder.fc2.bias", vec![p]),
    ]
}

/// A tokenizer on the GPU: parameters, AdamW moments, codebook and its EMA state. A clone shares the buffers.
#[derive(Clone)]
pub struct Tokenizer {
    pub cfg: TokenizerConfig,
    pub params: FlatBuffer,
    pub codebook: GpuSlice,
    pub ema_sum: GpuSlice,
    pub ema_count: GpuSlice,
}

impl Tokenizer {
    /// Weights drawn from N(0, 1/fan_in) (truncated at 2σ), biases zero, every code dead so that the first
    /// step restarts the codebook at encoder outputs (a data-dependent initialisation).
    pub fn new_random(
        ctx: &GpuContext,
        cfg: &TokenizerConfig,
        seed: u64,
    ) -> Result<Self, ModelError> {
        cfg.validate()?;
        let mut layout = FlatLayout::new(ctx.storage_alignment());
        let specs = param_specs(cfg);
        for (n, s) in &specs {
            layout.push(n, s);
        }
        let mut flat = vec![0.0f32; layout.total as usize];
        let mut rng = Rng::new(seed);
        for ((_, shape), e) in specs.iter().zip(&layout.entries) {
            if shape.len() == 2 {
                let std = 1.0 / (shape[1] as f64).sqrt();
                for v in &mut flat[e.offset as usize..(e.offset + e.len) as usize] {
                    *v = rng.trunc_normal(std, 2.0) as f32;
                }
            }
        }
        let kd = cfg.codebook_size as usize * cfg.code_dim as usize;
        let codes: Vec<f32> = (0..kd).map(|_| rng.normal() as f32).collect();
        Ok(Self::from_values(
            ctx,
            cfg.clone(),
            layout,
            &flat,
            &codes,
            &codes,
            &vec![0.0; cfg.codebook_size as usize],
        ))
    }

    fn from_values(
        ctx: &GpuContext,
        cfg: TokenizerConfig,
        layout: FlatLayout,
        flat: &[f32],
        codebook: &[f32],
        ema_sum: &[f32],
        ema_count: &[f32],
    ) -> Self {
        let params = FlatBuffer::new(ctx, "tokenizer parameters", layout);
        params.whole.write(ctx, flat);
        Self {
            cfg,
            params,
            codebook: GpuSlice::from_slice(ctx, "codebook", codebook),
            ema_sum: GpuSlice::from_slice(ctx, "codebook ema sums", ema_sum),
            ema_count: GpuSlice::from_slice(ctx, "codebook ema counts", ema_count),
        }
    }

    /// The GPU state a checkpoint holds, in the order [`Tokenizer::tensors`] takes it back: parameters,
    /// codebook, EMA sums, EMA counts.
    pub fn state_slices(&self) -> [&GpuSlice; 4] {
        [
            &self.params.whole,
            &self.codebook,
            &self.ema_sum,
            &self.ema_count,
        ]
    }

    /// The checkpoint's tensors from the values of [`Tokenizer::state_slices`] read back.
    pub fn tensors(&self, values: [&[f32]; 4]) -> BTreeMap<String, HostTensor> {
        let [flat, codebook, ema_sum, ema_count] = values;
        let mut t = BTreeMap::new();
        for e in &self.params.layout.entries {
            t.insert(
                e.name.clone(),
                HostTensor::f32(
                    e.shape.clone(),
                    flat[e.offset as usize..(e.offset + e.len) as usize].to_vec(),
                ),
            );
        }
        let (k, d) = (self.cfg.codebook_size as usize, self.cfg.code_dim as usize);
        t.insert(
            "codebook".into(),
            HostTensor::f32(vec![k, d], codebook.to_vec()),
        );
        t.insert(
            "codebook_ema_sum".into(),
            HostTensor::f32(vec![k, d], ema_sum.to_vec()),
        );
        t.insert(
            "codebook_ema_count".into(),
            HostTensor::f32(vec![k], ema_count.to_vec()),
        );
        t
    }

    /// The text of `tokenizer_config.json`.
    pub fn config_json(&self) -> Result<String, ModelError> {
        serde_json::to_string_pretty(&self.cfg).map_err(|e| ModelError::Config(e.to_string()))
    }

    /// Save `tokenizer_config.json` + `tokenizer.safetensors` (weights, codebook, EMA state), each atomically.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self, ctx: &GpuContext, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let values = self
            .state_slices()
            .map(|s| ctx.read_f32(s))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let t = self.tensors([&values[0], &values[1], &values[2], &values[3]]);
        tensorfile::write(&dir.join("tokenizer.safetensors"), &t)?;
        tensorfile::write_atomic(
            &dir.join("tokenizer_config.json"),
            self.config_json()?.as_bytes(),
        )
    }

    /// Load a folder written by [`Tokenizer::save`]; a missing or wrongly shaped tensor is named.
    pub fn load(ctx: &GpuContext, dir: &Path) -> Result<Self, ModelError> {
        let cfg_path = dir.join("tokenizer_config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
        let t = tensorfile::read(&dir.join("tokenizer.safetensors"))?;
        Self::from_tensors(ctx, &text, &t, &dir.display().to_string())
    }

    /// A tokenizer from the text of its config and its tensors; `source` names them in messages.
    pub fn from_tensors(
        ctx: &GpuContext,
        config_json: &str,
        t: &BTreeMap<String, HostTensor>,
        source: &str,
    ) -> Result<Self, ModelError> {
        let cfg: TokenizerConfig = serde_json::from_str(config_json).map_err(|e| {
            ModelError::Config(format!("{source}: not a valid tokenizer config: {e}"))
        })?;
        cfg.validate()?;
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, ModelError> {
            let x = t.get(name).ok_or_else(|| {
                ModelError::Checkpoint(format!("{source}: tensor {name} is missing"))
            })?;
            if x.shape != shape {
                return Err(ModelError::Checkpoint(format!(
                    "{source}: tensor {name} has shape {:?} but the config needs {shape:?}",
                    x.shape
                )));
            }
            let v = x.to_f32();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(ModelError::Checkpoint(format!(
                    "{source}: tensor {name} holds values that are not finite (NaN or infinite)"
                )));
            }
            Ok(v)
        };
        let mut layout = FlatLayout::new(ctx.storage_alignment());
        let specs = param_specs(&cfg);
        for (n, s) in &specs {
            layout.push(n, s);
        }
        let mut flat = vec![0.0f32; layout.total as usize];
        for ((n, s), e) in specs.iter().zip(&layout.entries) {
            flat[e.offset as usize..(e.offset + e.len) as usize].copy_from_slice(&get(n, s)?);
        }
        let (k, d) = (cfg.codebook_size as usize, cfg.code_dim as usize);
        let codebook = get("codebook", &[k, d])?;
        let ema_sum = get("codebook_ema_sum", &[k, d])?;
        let ema_count = get("codebook_ema_count", &[k])?;
        Ok(Self::from_values(
            ctx, cfg, layout, &flat, &codebook, &ema_sum, &ema_count,
        ))
    }
}

/// Which passes a graph records.
pub struct TokenizerGraph {
    pub batch: u32,
    /// Input pixels (B, C, S, S), normalised.
    pub pixels: GpuSlice,
    /// Tokens (R) u32: written by `encode`, read by `decode`.
    pub tokens: GpuSlice,
    /// Reconstructed pixels (B, C, S, S) from `decode`.
    pub recon_pixels: GpuSlice,
    /// (reconstruction MSE, commitment loss) after a training step.
    pub stats: GpuSlice,
    pub grads: FlatBuffer,
    /// Forward, loss, backward and the EMA codebook update (AdamW is added by the trainer).
    pub train_step: Vec<Dispatch>,
    /// Pixels -> tokens.
    pub encode: Vec<Dispatch>,
    /// Tokens -> pixels.
    pub decode: Vec<Dispatch>,
    /// Writes the salt of the dead-code restart (one uniform per step).
    salt_writer: Option<(GpuSlice, crate::ops::vq::VqParams)>,
}

impl TokenizerGraph {
    /// Build every pass for `batch` images.
    pub fn new(ctx: &GpuContext, tk: &Tokenizer, batch: u32) -> Result<Self, ModelError> {
        let cfg = &tk.cfg;
        let (n, p, h, d, k) = (
            cfg.tokens(),
            cfg.patch_dim(),
            cfg.hidden_size,
            cfg.code_dim,
            cfg.codebook_size,
        );
        let r = batch * n;
        let (r64, p64, h64, d64) = (r as u64, p as u64, h as u64, d as u64);
        let b = |label: &str, len: u64| GpuSlice::new(ctx, label, len.max(1));
        let prm = |name: &str| tk.params.get(name);
        let ps = PatchShape {
            batch,
            channels: cfg.num_channels,
            height: cfg.image_size,
            width: cfg.image_size,
            patch: cfg.patch_size,
        };
        let pixels = b("tokenizer pixels", ps.elements());
        let x = b("patches", r64 * p64);
        let xc = b("patch context", 5 * r64 * p64);
        let (h1, a1) = (b("encoder hidden", r64 * h64), b("encoder gelu", r64 * h64));
        let (z, zn, norm) = (
            b("codes", r64 * d64),
            b("normalised codes", r64 * d64),
            b("code norms", r64),
        );
        let sims = b("code similarities", r64 * k as u64);
        let (tok, best) = (b("tokens", r64), b("best similarity", r64));
        let q = b("quantised codes", r64 * d64);
        let (h2, a2, y) = (
            b("decoder hidden", r64 * h64),
            b("decoder gelu", r64 * h64),
            b("reconstruction", r64 * p64),
        );
        let recon_pixels = b("reconstructed pixels", ps.elements());
        let stats = b("tokenizer losses", 2);
        let grads = FlatBuffer::new(ctx, "tokenizer gradients", tk.params.layout.clone());
        let g = |name: &str| grads.get(name);

        // Encoder and quantiser: pixels -> patches -> context -> MLP -> ẑ -> nearest code.
        let mut enc = patches::patchify(ctx, &x, &pixels, ps)?;
        enc.extend(patches::patch_context(ctx, &xc, &x, ps)?);
        enc.extend(matmul::linear_gelu_forward_as(
            ProductInputs::F32,
            ctx,
            &h1,
            &a1,
            &xc,
            &prm("encoder.fc1.weight")?,
            Some(&prm("encoder.fc1.bias")?),
            r,
            h,
            5 * p,
        )?);
        enc.extend(matmul::linear_forward(
            ctx,
            &z,
            &a1,
            &prm("encoder.fc2.weight")?,
            Some(&prm("encoder.fc2.bias")?),
            r,
            d,
            h,
        )?);
        enc.extend(vq::l2norm_forward(ctx, &zn, &norm, &z, r, d)?);
        enc.extend(matmul::linear_forward(
            ctx,
            &sims,
            &zn,
            &tk.codebook,
            None,
            r,
            k,
            d,
        )?);
        enc.extend(vq::argmax_rows(ctx, &tok, &best, &sims, r, k)?);

        // Decoder: tokens -> codes -> MLP -> patches.
        let mut dec = tokens::gather_rows(ctx, &q, &tk.codebook, &tok, r, d, false)?;
        dec.extend(matmul::linear_gelu_forward_as(
            ProductInputs::F32,
            ctx,
            &h2,
            &a2,
            &q,
            &prm("decoder.fc1.weight")?,
            Some(&prm("decoder.fc1.bias")?),
            r,
            h,
            d,
        )?);
        dec.extend(matmul::linear_forward(
            ctx,
            &y,
            &a2,
            &prm("decoder.fc2.weight")?,
            Some(&prm("decoder.fc2.bias")?),
            r,
            p,
            h,
        )?);

        let mut decode = dec.clone();
        decode.extend(patches::unpatchify(ctx, &recon_pixels, &y, ps)?);

        // Training step: losses, backward, EMA update.
        let mut step = enc.clone();
        step.extend(dec);
        let (diff, cdiff) = (
            b("reconstruction error", r64 * p64),
            b("commitment error", r64 * d64),
        );
        step.extend(elementwise::axpby(
            ctx,
            &diff,
            1.0,
            &y,
            -1.0,
            &x,
            r * p,
            false,
        )?);
        step.extend(reduce::sum(
            ctx,
            &stats,
            0,
            &diff,
            r * p,
            1.0 / (r * p) as f32,
            true,
            false,
        )?);
        step.extend(elementwise::axpby(
            ctx,
            &cdiff,
            1.0,
            &zn,
            -1.0,
            &q,
            r * d,
            false,
        )?);
        step.extend(reduce::sum(
            ctx,
            &stats,
            1,
            &cdiff,
            r * d,
            cfg.commitment / (r * d) as f32,
            true,
            false,
        )?);
        step.extend(elementwise::fill(
            ctx,
            &grads.whole,
            grads.layout.total as u32,
            0.0,
        )?);
        // The f32 products take GELU's slope in their launch: no buffer for d gelu before it.
        let unfused = b("d gelu (unused in f32)", 1);
        let (dy, dh2, dq) = (
            b("d reconstruction", r64 * p64),
            b("d decoder hidden", r64 * h64),
            b("d quantised", r64 * d64),
        );
        step.extend(elementwise::axpby(
            ctx,
            &dy,
            2.0 / (r * p) as f32,
            &diff,
            0.0,
            &diff,
            r * p,
            false,
        )?);
        step.extend(matmul::linear_backward_gelu_as(
            ProductInputs::F32,
            ctx,
            &dh2,
            &unfused,
            &g("decoder.fc2.weight")?,
            Some(&g("decoder.fc2.bias")?),
            &dy,
            &a2,
            &h2,
            &prm("decoder.fc2.weight")?,
            r,
            p,
            h,
        )?);
        step.extend(matmul::linear_backward(
            ctx,
            Some(&dq),
            &g("decoder.fc1.weight")?,
            Some(&g("decoder.fc1.bias")?),
            &dh2,
            &q,
            &prm("decoder.fc1.weight")?,
            r,
            h,
            d,
            false,
        )?);
        // Straight-through: the decoder's gradient passes to ẑ, plus the commitment term 2β(ẑ − q)/(R·D).
        let (dzn, dz, dh1) = (
            b("d normalised codes", r64 * d64),
            b("d codes", r64 * d64),
            b("d encoder hidden", r64 * h64),
        );
        step.extend(elementwise::axpby(
            ctx,
            &dzn,
            1.0,
            &dq,
            2.0 * cfg.commitment / (r * d) as f32,
            &cdiff,
            r * d,
            false,
        )?);
        step.extend(vq::l2norm_backward(ctx, &dz, &dzn, &zn, &norm, r, d)?);
        step.extend(matmul::linear_backward_gelu_as(
            ProductInputs::F32,
            ctx,
            &dh1,
            &unfused,
            &g("encoder.fc2.weight")?,
            Some(&g("encoder.fc2.bias")?),
            &dz,
            &a1,
            &h1,
            &prm("encoder.fc2.weight")?,
            r,
            d,
            h,
        )?);
        step.extend(matmul::linear_backward(
            ctx,
            None,
            &g("encoder.fc1.weight")?,
            Some(&g("encoder.fc1.bias")?),
            &dh1,
            &xc,
            &prm("encoder.fc1.weight")?,
            r,
            h,
            5 * p,
            false,
        )?);
        // EMA codebook: per-code counts and sums of ẑ through a one-hot matrix (no float atomics).
        let onehot = b("one-hot assignments", r64 * k as u64);
        let (counts, sums) = (b("code counts", k as u64), b("code sums", k as u64 * d64));
        step.extend(vq::one_hot(ctx, &onehot, &tok, r, k)?);
        step.extend(reduce::col_sum(ctx, &counts, &onehot, r, k, false)?);
        step.extend(gemm(
            ctx,
            &sums,
            MatView::row_major(k, d),
            &onehot,
            MatView::transposed(k, r),
            &zn,
            MatView::row_major(r, d),
            None,
            GemmShape::new(k, d, r),
        )?);
        // The EMA dispatch reads its salt from a uniform the trainer rewrites each step.
        let salt_params = crate::ops::vq::VqParams {
            rows: r,
            dim: d,
            codes: k,
            salt: 0,
            eps: vq::NORM_EPS,
            decay: cfg.ema_decay,
            threshold: cfg.dead_threshold,
            _pad: 0,
        };
        let salt_uniform = GpuSlice::uniform(ctx, "VqParams", &salt_params);
        let st = EmaState {
            codebook: &tk.codebook,
            ema_sum: &tk.ema_sum,
            ema_count: &tk.ema_count,
        };
        step.extend(vq::ema_update_with(
            ctx,
            st,
            &counts,
            &sums,
            &zn,
            &best,
            &salt_uniform,
            k,
        )?);

        Ok(Self {
            batch,
            pixels,
            tokens: tok,
            recon_pixels,
            stats,
            grads,
            train_step: step,
            encode: enc,
            decode,
            salt_writer: Some((salt_uniform, salt_params)),
        })
    }

    /// Set the dead-code restart's salt for the next step (a queue write, no new buffers).
    pub fn set_step(&self, ctx: &GpuContext, step: u32) {
        if let Some((u, p)) = &self.salt_writer {
            let params = crate::ops::vq::VqParams { salt: step, ..*p };
            ctx.queue
                .write_buffer(&u.buffer, 0, bytemuck::bytes_of(&params));
        }
    }
}
