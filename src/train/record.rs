//! `beitlab pretrain --record FILE`: the masked image modeling view over training as an animated GIF. Every few
//! steps the app's inspector runs on the live weights (six fixed validation images with fixed blockwise masks)
//! and its results become one frame (`app::mim_gif`).

use std::path::{Path, PathBuf};

use image::RgbaImage;

use crate::app::inspect::Inspector;
use crate::app::mim_gif;
use crate::app::time::Duration;
use crate::data::dataset::Dataset;
use crate::data::masking::BlockMasking;
use crate::gpu::GpuContext;
use crate::model::{BeitModel, ModelError};
use crate::rng::Rng;
use crate::tokenizer::VisualTokenizer;

/// Frames of the MIM view, collected during pretraining and written as one GIF.
pub struct MimRecorder {
    path: PathBuf,
    inspector: Inspector,
    frames: Vec<RgbaImage>,
}

impl MimRecorder {
    /// Six images of `val` with blockwise masks, both fixed by `seed` for the whole recording. The file is
    /// created now (empty until `finish`), so an unwritable path is refused before training starts.
    pub fn new(path: &Path, model: &BeitModel, val: &Dataset, seed: u64) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut inspector = Inspector::new(Duration::from_secs(0));
        let mut rng = Rng::new(seed ^ 0x5EED_F00D);
        let masking = BlockMasking::scaled(model.cfg.grid());
        inspector.reshuffle(model, val, &mut rng, &mut |r| masking.generate(r));
        Ok(Self {
            path: path.to_path_buf(),
            inspector,
            frames: Vec::new(),
        })
    }

    /// One frame from the current weights (waits for the GPU; called between training steps).
    pub fn capture(
        &mut self,
        ctx: &GpuContext,
        tk: &VisualTokenizer,
        model: &BeitModel,
        val: &Dataset,
        step: u32,
        accuracy: f32,
    ) -> Result<(), ModelError> {
        let before = self.inspector.results.as_ref().map(|r| r.generation);
        for _ in 0..64 {
            self.inspector.tick(ctx, tk, model, (0, step as u64), val)?;
            let r = self.inspector.results.as_ref();
            if r.is_some_and(|r| Some(r.generation) != before && !r.recon_pred.is_empty()) {
                break;
            }
            ctx.wait()?;
        }
        let Some(results) = self.inspector.results.clone() else {
            return Err(ModelError::Input(
                "the recording's inspection returned nothing".into(),
            ));
        };
        self.frames.push(mim_gif::frame(
            &model.cfg,
            &self.inspector.samples,
            &results,
            step,
            accuracy,
        ));
        Ok(())
    }

    /// Frames captured so far.
    pub fn frames(&self) -> usize {
        self.frames.len()
    }

    /// Write the GIF.
    pub fn finish(self) -> Result<PathBuf, String> {
        let bytes = mim_gif::encode_gif(self.frames)?;
        std::fs::write(&self.path, bytes).map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok(self.path)
    }
}
