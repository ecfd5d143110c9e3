//! "Record GIF" in the masked image modeling view: while on, every new result of the inspector becomes a frame
//! (`mim_gif::frame`: the samples, their masks, the tokenizer's and BEiT's reconstructions, right and wrong
//! patches, the pretraining step and masked-token accuracy); "Stop and save" writes the animation
//! (`beitlab-mim.gif`, or a download in the browser). Frames are thinned to every other one past a cap, so a long
//! recording stays a few tens of megabytes.

use image::RgbaImage;

use super::curves::Panel;
use super::{mim_gif, BeitApp};

/// Most frames kept; past it every other frame is dropped (the recording keeps its whole span, coarser).
const MAX_FRAMES: usize = 60;

/// A recording in progress.
#[derive(Default)]
pub struct Recording {
    pub frames: Vec<RgbaImage>,
    /// The inspector results last turned into a frame.
    seen_generation: Option<u64>,
    /// Keep one result in `stride` (doubles each time the frames are thinned).
    stride: u64,
    offered: u64,
}

impl BeitApp {
    /// Start or stop (and save) the recording.
    pub fn toggle_recording(&mut self) {
        match self.recording.take() {
            None => {
                self.recording = Some(Recording {
                    stride: 1,
                    ..Default::default()
                });
            }
            Some(r) if r.frames.is_empty() => {
                self.notice = Some("the recording had no frames yet; nothing was saved".into());
            }
            Some(r) => {
                let frames = r.frames.len();
                let saved = mim_gif::encode_gif(r.frames)
                    .and_then(|bytes| self.save_output("beitlab-mim", "gif", &bytes));
                self.notice = Some(match saved {
                    Ok(name) => format!("saved {frames} frames of the MIM view as {name}"),
                    Err(e) => e,
                });
            }
        }
    }

    /// Turn the inspector's newest results into a frame (called every frame; cheap when nothing is new).
    pub(super) fn record_frame(&mut self) {
        let (Some(rec), Some(s), Some(res)) = (
            self.recording.as_mut(),
            self.session.as_ref(),
            self.inspector.results.as_ref(),
        ) else {
            return;
        };
        if res.recon_pred.is_empty() || rec.seen_generation == Some(res.generation) {
            return;
        }
        rec.seen_generation = Some(res.generation);
        rec.offered += 1;
        if rec.offered % rec.stride != 0 {
            return;
        }
        let accuracy = s
            .curves
            .last(Panel::Accuracy, "pretrain MIM accuracy")
            .unwrap_or(0.0) as f32;
        rec.frames.push(mim_gif::frame(
            &s.mim.cfg,
            &self.inspector.samples,
            res,
            s.done[1],
            accuracy,
        ));
        if rec.frames.len() > MAX_FRAMES {
            let kept: Vec<RgbaImage> = std::mem::take(&mut rec.frames)
                .into_iter()
                .step_by(2)
                .collect();
            rec.frames = kept;
            rec.stride *= 2;
        }
    }
}
