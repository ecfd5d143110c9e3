//! The architecture of a DALL-E discrete-VAE encoder or decoder, inferred from its tensors' names and shapes as
//! the `dall-e` package names them (`blocks.input.w`, `blocks.group_G.block_I.{id_path,res_path.conv_J}.{w,b}`,
//! `blocks.output.conv.{w,b}`). Weights are (out, in, k, k) as PyTorch's Conv2d.
//!
//! Encoder: input conv k x k (7) -> groups of residual blocks, 2x2 max-pool after every group but the last ->
//! ReLU -> 1x1 conv to the vocabulary's logits. Block: x -> id_path(x) + gain · conv_4(relu(conv_3(relu(conv_2(
//! relu(conv_1(relu(x)))))))) with kernels 3, 3, 3, 1 and gain = 1 / n_layers² (n_layers = all blocks).
//! Decoder: one-hot tokens -> 1x1 input conv -> groups, 2x nearest upsampling after every group but the last ->
//! ReLU -> 1x1 conv to 2·C channels (pixel means and log-scales); blocks with kernels 1, 3, 3, 3.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::ModelError;
use crate::tensorfile::HostTensor;

/// Which half of the discrete VAE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Half {
    Encoder,
    Decoder,
}

impl Half {
    /// "encoder" or "decoder".
    pub fn name(self) -> &'static str {
        match self {
            Self::Encoder => "encoder",
            Self::Decoder => "decoder",
        }
    }
    /// Kernel sides of conv_1..conv_4 in a residual block.
    pub fn block_kernels(self) -> [u32; 4] {
        match self {
            Self::Encoder => [3, 3, 3, 1],
            Self::Decoder => [1, 3, 3, 3],
        }
    }
}

/// One residual block: n_in -> n_out channels through a bottleneck of `hidden`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockShape {
    pub n_in: u32,
    pub hidden: u32,
    pub n_out: u32,
}

impl BlockShape {
    /// A 1x1 convolution on the identity path when the width changes.
    pub fn has_id_conv(&self) -> bool {
        self.n_in != self.n_out
    }
}

/// An encoder or a decoder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetShape {
    pub half: Half,
    /// Image channels: the encoder's input, the decoder's output (it produces twice as many statistics).
    pub image_channels: u32,
    pub vocab_size: u32,
    /// Side of the input convolution's kernel.
    pub input_kernel: u32,
    /// Channels out of the input convolution.
    pub input_width: u32,
    /// Residual blocks of each group.
    pub groups: Vec<Vec<BlockShape>>,
}

impl NetShape {
    pub fn blocks(&self) -> u32 {
        self.groups.iter().map(|g| g.len() as u32).sum()
    }
    /// The residual branch's gain, 1 / n_layers².
    pub fn post_gain(&self) -> f32 {
        1.0 / (self.blocks() as f32).powi(2)
    }
    /// Image side / token-grid side: 2^(groups − 1).
    pub fn downsampling(&self) -> u32 {
        1 << (self.groups.len() as u32 - 1)
    }
    /// Channels of the last group (what the output convolution reads).
    pub fn last_width(&self) -> u32 {
        self.groups
            .last()
            .and_then(|g| g.last())
            .map_or(self.input_width, |b| b.n_out)
    }
    /// The widest bottleneck and the widest block output, with the side they are at, for scratch sizing:
    /// (max over layers of channels·side² for block inputs/outputs, the same for bottlenecks) at token grid `g`.
    pub fn scratch_per_image(&self, grid: u32) -> (u64, u64) {
        let d = self.downsampling();
        let (mut wide, mut hidden) = (0u64, 0u64);
        for (gi, group) in self.groups.iter().enumerate() {
            let side = match self.half {
                Half::Encoder => (grid * d) >> gi,
                Half::Decoder => grid << gi,
            } as u64;
            for b in group {
                wide = wide.max(b.n_in.max(b.n_out) as u64 * side * side);
                hidden = hidden.max(b.hidden as u64 * side * side);
            }
        }
        let image_side = (grid * d) as u64;
        let ends = match self.half {
            Half::Encoder => self.input_width as u64 * image_side * image_side,
            Half::Decoder => (self.input_width as u64 * grid as u64 * grid as u64)
                .max(2 * self.image_channels as u64 * image_side * image_side),
        };
        (wide.max(ends), hidden)
    }
    /// Every tensor name with its shape, in the package's order.
    pub fn tensor_specs(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        let mut conv = |name: String, o: u32, i: u32, k: u32| {
            v.push((
                format!("{name}.w"),
                vec![o as usize, i as usize, k as usize, k as usize],
            ));
            v.push((format!("{name}.b"), vec![o as usize]));
        };
        let input_in = match self.half {
            Half::Encoder => self.image_channels,
            Half::Decoder => self.vocab_size,
        };
        conv(
            "blocks.input".into(),
            self.input_width,
            input_in,
            self.input_kernel,
        );
        let ks = self.half.block_kernels();
        for (gi, group) in self.groups.iter().enumerate() {
            for (bi, b) in group.iter().enumerate() {
                let p = format!("blocks.group_{}.block_{}", gi + 1, bi + 1);
                if b.has_id_conv() {
                    conv(format!("{p}.id_path"), b.n_out, b.n_in, 1);
                }
                conv(format!("{p}.res_path.conv_1"), b.hidden, b.n_in, ks[0]);
                conv(format!("{p}.res_path.conv_2"), b.hidden, b.hidden, ks[1]);
                conv(format!("{p}.res_path.conv_3"), b.hidden, b.hidden, ks[2]);
                conv(format!("{p}.res_path.conv_4"), b.n_out, b.hidden, ks[3]);
            }
        }
        let out_ch = match self.half {
            Half::Encoder => self.vocab_size,
            Half::Decoder => 2 * self.image_channels,
        };
        conv("blocks.output.conv".into(), out_ch, self.last_width(), 1);
        v
    }
    /// Parameters in all.
    pub fn parameters(&self) -> u64 {
        self.tensor_specs()
            .iter()
            .map(|(_, s)| s.iter().map(|&d| d as u64).product::<u64>())
            .sum()
    }

    /// Infer the architecture from the tensors of `source` (a file name for messages), refusing anything that is
    /// not a DALL-E `half` with a sentence saying what is wrong.
    pub fn infer(
        t: &BTreeMap<String, HostTensor>,
        half: Half,
        source: &str,
    ) -> Result<Self, ModelError> {
        let what = half.name();
        let bad = |m: String| ModelError::Checkpoint(format!("{source}: {m}"));
        let shape4 = |name: &str| -> Result<[u32; 4], ModelError> {
            let x = t.get(name).ok_or_else(|| {
                bad(format!(
                    "tensor {name} is missing, so this is not a DALL-E {what}"
                ))
            })?;
            match x.shape[..] {
                [o, i, k1, k2] if k1 == k2 && o > 0 && i > 0 && k1 > 0 => {
                    let c = |v: usize| u32::try_from(v).map_err(|_| bad(format!("tensor {name} is too large")));
                    Ok([c(o)?, c(i)?, c(k1)?, c(k2)?])
                }
                _ => Err(bad(format!(
                    "tensor {name} has shape {:?} but a DALL-E convolution weight is (out, in, k, k)",
                    x.shape
                ))),
            }
        };
        if !t.contains_key("blocks.input.w") {
            let sample: Vec<&str> = t.keys().take(3).map(String::as_str).collect();
            return Err(bad(format!(
                "it has no tensor blocks.input.w, so it is not a DALL-E {what} (its first tensors: {})",
                if sample.is_empty() { "none".to_string() } else { sample.join(", ") }
            )));
        }
        let [input_width, input_in, input_kernel, _] = shape4("blocks.input.w")?;
        let mut groups = Vec::new();
        let mut width = input_width;
        let ks = half.block_kernels();
        while t
            .keys()
            .any(|k| k.starts_with(&format!("blocks.group_{}.", groups.len() + 1)))
        {
            let g = groups.len() + 1;
            let mut blocks = Vec::new();
            while t.contains_key(&format!(
                "blocks.group_{g}.block_{}.res_path.conv_1.w",
                blocks.len() + 1
            )) {
                let p = format!("blocks.group_{g}.block_{}", blocks.len() + 1);
                let conv_j = |j: u32| shape4(&format!("{p}.res_path.conv_{j}.w"));
                let (c1, c2, c3, c4) = (conv_j(1)?, conv_j(2)?, conv_j(3)?, conv_j(4)?);
                let b = BlockShape {
                    n_in: c1[1],
                    hidden: c1[0],
                    n_out: c4[0],
                };
                let other = match half {
                    Half::Encoder => Half::Decoder,
                    Half::Decoder => Half::Encoder,
                };
                let kernels = [c1[2], c2[2], c3[2], c4[2]];
                for (j, (c, k)) in kernels.iter().zip(ks).enumerate() {
                    if *c != k {
                        let hint = if kernels == other.block_kernels() {
                            format!(": these are the kernels of a DALL-E {}", other.name())
                        } else {
                            String::new()
                        };
                        return Err(bad(format!(
                            "{p}.res_path.conv_{}.w has a {c}x{c} kernel but a DALL-E {what} block's is {k}x{k}{hint}",
                            j + 1
                        )));
                    }
                }
                if b.n_in != width
                    || c2[..2] != [b.hidden, b.hidden]
                    || c3[..2] != [b.hidden, b.hidden]
                    || c4[1] != b.hidden
                {
                    return Err(bad(format!(
                        "the convolutions of {p} do not chain ({width} channels come in; conv_1..4 are {:?}, {:?}, {:?}, {:?})",
                        c1, c2, c3, c4
                    )));
                }
                let id = format!("{p}.id_path.w");
                match (b.has_id_conv(), t.contains_key(&id)) {
                    (true, false) => {
                        return Err(bad(format!(
                            "{p} changes {} channels to {} but has no {id}",
                            b.n_in, b.n_out
                        )))
                    }
                    (false, true) => {
                        return Err(bad(format!(
                            "{p} keeps {} channels but has an {id}",
                            b.n_in
                        )))
                    }
                    (true, true) if shape4(&id)? != [b.n_out, b.n_in, 1, 1] => {
                        return Err(bad(format!(
                            "{id} is not a 1x1 convolution from {} to {} channels",
                            b.n_in, b.n_out
                        )))
                    }
                    _ => {}
                }
                width = b.n_out;
                blocks.push(b);
            }
            if blocks.is_empty() {
                return Err(bad(format!("group_{g} has no block_1")));
            }
            groups.push(blocks);
        }
        if groups.is_empty() {
            return Err(bad(format!(
                "it has no blocks.group_1, so it is not a DALL-E {what}"
            )));
        }
        if groups.len() > 12 {
            return Err(bad(format!(
                "{} groups is more than beitlab's limit of 12",
                groups.len()
            )));
        }
        let [out_ch, out_in, out_k, _] = shape4("blocks.output.conv.w")?;
        if out_in != width || out_k != 1 {
            return Err(bad(format!(
                "blocks.output.conv.w is {out_ch}x{out_in}x{out_k}x{out_k} but a 1x1 convolution from the last group's {width} channels is needed"
            )));
        }
        let (image_channels, vocab_size) = match half {
            Half::Encoder => (input_in, out_ch),
            Half::Decoder => {
                if out_ch % 2 != 0 {
                    return Err(bad(format!(
                        "blocks.output.conv.w has {out_ch} outputs but a DALL-E decoder has two per image channel"
                    )));
                }
                if input_kernel != 1 {
                    return Err(bad("blocks.input.w is not 1x1, so this is not a DALL-E decoder (an encoder's is 7x7)".into()));
                }
                (out_ch / 2, input_in)
            }
        };
        if image_channels != 1 && image_channels != 3 {
            return Err(bad(format!(
                "the {what} works on {image_channels}-channel images but beitlab reads gray (1) or RGB (3) images"
            )));
        }
        if vocab_size > crate::model::config::limits::VOCABULARY {
            return Err(bad(format!(
                "a vocabulary of {vocab_size} is above beitlab's limit"
            )));
        }
        let net = Self {
            half,
            image_channels,
            vocab_size,
            input_kernel,
            input_width,
            groups,
        };
        // Every tensor must be one of the architecture's, with its shape.
        let specs = net.tensor_specs();
        let known: BTreeSet<&str> = specs.iter().map(|(n, _)| n.as_str()).collect();
        if let Some(extra) = t.keys().find(|k| !known.contains(k.as_str())) {
            return Err(bad(format!(
                "tensor {extra} is not part of a DALL-E {what} (is this the {}?)",
                match half {
                    Half::Encoder => "decoder",
                    Half::Decoder => "encoder",
                }
            )));
        }
        for (name, shape) in &specs {
            let x = t
                .get(name)
                .ok_or_else(|| bad(format!("tensor {name} is missing")))?;
            if &x.shape != shape {
                return Err(bad(format!(
                    "tensor {name} has shape {:?} but {shape:?} is needed",
                    x.shape
                )));
            }
        }
        Ok(net)
    }

    /// One line: "encoder: 3 channels -> 8192 tokens, 4 groups x 2 blocks, widths 256..2048, 53.8 M parameters".
    pub fn describe(&self) -> String {
        let per_group: Vec<String> = self.groups.iter().map(|g| g.len().to_string()).collect();
        let widths: Vec<String> = self
            .groups
            .iter()
            .map(|g| g[g.len() - 1].n_out.to_string())
            .collect();
        format!(
            "{}: {} image channels, {} codes, {} groups of {} blocks, widths {}, {:.1} M parameters",
            self.half.name(),
            self.image_channels,
            self.vocab_size,
            self.groups.len(),
            per_group.join("/"),
            widths.join("/"),
            self.parameters() as f64 / 1e6
        )
    }
}
