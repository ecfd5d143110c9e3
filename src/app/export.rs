//! Saving the session's networks as one file without blocking: the copies of every parameter buffer go to the
//! GPU in one submit, and the file's bytes are assembled once they are back (the browser then offers them as a
//! download). Training may go on meanwhile; the file holds the weights as of the steps submitted before it.

use crate::gpu::{AsyncRead, GpuContext};
use crate::model::checkpoint::tensors_from_flat;
use crate::model::BeitModel;
use crate::tokenizer::VisualTokenizer;

use super::bundle::{self, Entry};

/// A one-file checkpoint being read back.
pub struct Export {
    read: AsyncRead,
    /// Clones share the GPU buffers; they keep the layouts as they were when the copies were made.
    tokenizer: VisualTokenizer,
    models: Vec<(&'static str, BeitModel)>,
}

impl Export {
    /// Queue the copies of the tokenizer and of `models` (role, model).
    pub fn start(
        ctx: &GpuContext,
        tokenizer: &VisualTokenizer,
        models: Vec<(&'static str, &BeitModel)>,
    ) -> Self {
        let mut slices = tokenizer.state_slices();
        slices.extend(models.iter().map(|(_, m)| &m.params.whole));
        Self {
            read: AsyncRead::start(ctx, &slices),
            tokenizer: tokenizer.clone(),
            models: models.into_iter().map(|(r, m)| (r, m.clone())).collect(),
        }
    }

    /// The file's bytes once the copies are back; `None` while they are in flight.
    pub fn poll(&mut self, ctx: &GpuContext) -> Option<Result<Vec<u8>, String>> {
        let parts = match self.read.poll(ctx)? {
            Ok(p) => p,
            Err(e) => return Some(Err(format!("the checkpoint could not be read back: {e}"))),
        };
        Some(self.assemble(parts).map_err(|e| e.to_string()))
    }

    fn assemble(&self, parts: Vec<Vec<u8>>) -> Result<Vec<u8>, crate::model::ModelError> {
        let values: Vec<Vec<f32>> = parts
            .iter()
            .map(|b| bytemuck::pod_collect_to_vec(b))
            .collect();
        let n_tk = self.tokenizer.state_slices().len();
        let mut entries = vec![Entry {
            role: "tokenizer",
            config_json: self.tokenizer.config_json()?,
            tensors: self.tokenizer.tensors(&values[..n_tk])?,
        }];
        for ((role, m), flat) in self.models.iter().zip(&values[n_tk..]) {
            entries.push(Entry {
                role,
                config_json: m.cfg.to_json(),
                tensors: tensors_from_flat(&m.table, flat),
            });
        }
        bundle::encode(entries)
    }
}
