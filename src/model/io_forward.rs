//! `beitlab forward`: run a checkpoint folder on inputs from a safetensors file and write what HuggingFace's
//! model would return (logits, loss, every hidden state and attention map) and, on request, every gradient.

use std::collections::BTreeMap;
use std::path::Path;

use super::checkpoint::BeitModel;
use super::config::Architecture;
use super::error::ModelError;
use super::graph::{BeitGraph, GraphOptions, MimRows};
use crate::gpu::{Dispatch, GpuContext};
use crate::tensorfile::{self, HostTensor};

/// What `forward` reads from the input file.
pub struct ForwardInputs {
    pub pixel_values: Vec<f32>,
    /// (B, C, H, W)
    pub shape: [usize; 4],
    pub bool_masked_pos: Option<Vec<u8>>,
    pub labels: Option<Vec<u32>>,
}

/// Read `pixel_values`, `bool_masked_pos` and `labels` from a safetensors file (other tensors ignored).
pub fn read_inputs(path: &Path) -> Result<ForwardInputs, ModelError> {
    let t = tensorfile::read(path)?;
    let bad = |m: String| ModelError::Input(format!("{}: {m}", path.display()));
    let pv = t
        .get("pixel_values")
        .ok_or_else(|| bad("has no pixel_values tensor".into()))?;
    if pv.shape.len() != 4 {
        return Err(bad(format!(
            "pixel_values has shape {:?}; expected (batch, channels, height, width)",
            pv.shape
        )));
    }
    if pv.to_i64().is_some() {
        return Err(bad(
            "pixel_values must be floating point (already normalized)".into(),
        ));
    }
    let shape = [pv.shape[0], pv.shape[1], pv.shape[2], pv.shape[3]];
    let bool_masked_pos = match t.get("bool_masked_pos") {
        Some(m) => Some(
            m.to_i64()
                .ok_or_else(|| bad("bool_masked_pos must be bool, u8 or an integer type".into()))?
                .iter()
                .map(|&v| (v != 0) as u8)
                .collect(),
        ),
        None => None,
    };
    let labels = match t.get("labels") {
        Some(l) => {
            let v = l
                .to_i64()
                .ok_or_else(|| bad("labels must be an integer tensor".into()))?;
            if let Some(neg) = v.iter().find(|&&x| x < 0 || x > u32::MAX as i64) {
                return Err(bad(format!("label {neg} is out of range")));
            }
            Some(v.iter().map(|&x| x as u32).collect())
        }
        None => None,
    };
    Ok(ForwardInputs {
        pixel_values: pv.to_f32(),
        shape,
        bool_masked_pos,
        labels,
    })
}

/// Run the model of `model_dir` on `input`, write `output`. Returns the loss when labels were given.
#[cfg(not(target_arch = "wasm32"))]
pub fn forward_files(
    ctx: &GpuContext,
    model_dir: &Path,
    input: &Path,
    output: &Path,
    grads: bool,
) -> Result<Option<f32>, ModelError> {
    let inp = read_inputs(input)?;
    let [b, ch, h, w] = inp.shape;
    if h != w {
        return Err(ModelError::Input(format!(
            "pixel_values is {h} x {w}; beitlab models take square images"
        )));
    }
    let mut model = BeitModel::load(ctx, model_dir, None)?;
    if h as u32 != model.cfg.image_size {
        // Another resolution: position tables are interpolated, as transformers' interpolate_pos_encoding.
        model = BeitModel::load(ctx, model_dir, Some(h as u32))?;
    }
    let cfg = model.cfg.clone();
    if ch as u32 != cfg.num_channels {
        return Err(ModelError::Input(format!(
            "pixel_values has {ch} channels but the model takes {}",
            cfg.num_channels
        )));
    }
    let arch = cfg.architecture();
    if grads && inp.labels.is_none() {
        return Err(ModelError::Input(
            "--grads needs labels in the input file".into(),
        ));
    }
    if arch == Architecture::MaskedImageModeling
        && inp.labels.is_some()
        && inp.bool_masked_pos.is_none()
    {
        return Err(ModelError::Input(
            "MIM labels need bool_masked_pos to say which patches they belong to".into(),
        ));
    }
    let opts = GraphOptions {
        batch: b as u32,
        mim_rows: MimRows::All,
        drop_path_seed: None,
        label_smoothing: 0.0,
        keep_block_outputs: None,
        // `attentions` are among the outputs.
        fused_attention: Some(false),
        mixed: None,
    };
    let graph = BeitGraph::new(ctx, &cfg, &model.table, &model.params, opts)?;
    graph.write_batch(
        ctx,
        &inp.pixel_values,
        inp.bool_masked_pos.as_deref(),
        inp.labels.as_deref(),
    )?;
    let has_loss = inp.labels.is_some();
    let mut work: Vec<Dispatch> = graph.forward.clone();
    if grads {
        work.extend(graph.backward.iter().cloned());
    }
    if arch == Architecture::ImageClassification && !has_loss {
        // No loss dispatches were built; the forward list ends at the logits.
    }
    Dispatch::submit(ctx, "forward", &work)?;
    ctx.wait()?;

    let (n, t, c, heads) = (
        cfg.patches() as usize,
        cfg.tokens() as usize,
        cfg.hidden_size as usize,
        cfg.num_attention_heads as usize,
    );
    let mut out = BTreeMap::new();
    let logits = ctx.read_f32(&graph.logits)?;
    let logits_shape = match arch {
        Architecture::MaskedImageModeling => vec![b, n, cfg.vocab_size as usize],
        Architecture::ImageClassification => vec![b, cfg.labels() as usize],
        Architecture::SemanticSegmentation => vec![
            b,
            cfg.labels() as usize,
            cfg.image_size as usize,
            cfg.image_size as usize,
        ],
    };
    let logits_len: usize = logits_shape.iter().product();
    out.insert(
        "logits".to_string(),
        HostTensor::f32(logits_shape, logits[..logits_len].to_vec()),
    );
    let mut loss = None;
    if has_loss {
        let (mean_loss, _) = graph.metrics(&ctx.read_f32(&graph.stats)?);
        loss = Some(mean_loss);
        out.insert(
            "loss".to_string(),
            HostTensor::f32(vec![1], vec![mean_loss]),
        );
    }
    for (k, hs) in graph.hidden.iter().enumerate() {
        let v = ctx.read_f32(hs)?;
        out.insert(
            format!("hidden_states.{k}"),
            HostTensor::f32(vec![b, t, c], v[..b * t * c].to_vec()),
        );
    }
    for (k, a) in graph.attentions.iter().enumerate() {
        let v = ctx.read_f32(a)?;
        out.insert(
            format!("attentions.{k}"),
            HostTensor::f32(vec![b, heads, t, t], v[..b * heads * t * t].to_vec()),
        );
    }
    if grads {
        let g = ctx.read_f32(&graph.grads.whole)?;
        for (name, tensor) in super::checkpoint::tensors_from_flat(&model.table, &g) {
            out.insert(format!("grad.{}", model.file_name(&name)), tensor);
        }
    }
    tensorfile::write(output, &out)?;
    Ok(loss)
}
