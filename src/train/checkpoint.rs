//! Run folders: the model as a HuggingFace folder plus `training_state.safetensors` (AdamW moments and the step),
//! written into a temporary folder that replaces the previous checkpoint only once complete, so a crash during a
//! save leaves the previous checkpoint intact.

use std::collections::BTreeMap;
use std::path::Path;

use crate::gpu::{FlatBuffer, GpuContext};
use crate::model::checkpoint::{write_folder, BeitModel};
use crate::model::ModelError;
use crate::tensorfile::{self, HostTensor};

/// Save model + optimizer state to `dir` atomically (as a whole folder).
pub fn save_run(
    ctx: &GpuContext,
    dir: &Path,
    model: &BeitModel,
    m: &FlatBuffer,
    v: &FlatBuffer,
    step: u32,
    rng_state: u64,
) -> Result<(), ModelError> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("run");
    let tmp = dir.with_file_name(format!(".{name}.saving"));
    let old = dir.with_file_name(format!(".{name}.previous"));
    std::fs::remove_dir_all(&tmp).ok();
    write_folder(
        &tmp,
        &model.cfg,
        &model.table,
        &ctx.read_f32(&model.params.whole)?,
    )?;
    let mut st = BTreeMap::new();
    st.insert(
        "adam_m".to_string(),
        HostTensor::f32(vec![m.layout.total as usize], ctx.read_f32(&m.whole)?),
    );
    st.insert(
        "adam_v".to_string(),
        HostTensor::f32(vec![v.layout.total as usize], ctx.read_f32(&v.whole)?),
    );
    st.insert(
        "step".to_string(),
        HostTensor::i64(vec![1], vec![step as i64]),
    );
    // The data order's position: the generator state that draws the next step's batch.
    st.insert(
        "rng_state".to_string(),
        HostTensor::i64(vec![1], vec![rng_state as i64]),
    );
    tensorfile::write(&tmp.join("training_state.safetensors"), &st)?;
    std::fs::remove_dir_all(&old).ok();
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| ModelError::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| ModelError::io(dir, e))?;
    std::fs::remove_dir_all(&old).ok();
    Ok(())
}

/// What a run needs to continue exactly where it stopped.
pub struct TrainState {
    pub step: u32,
    pub rng_state: u64,
    pub adam_m: Vec<f32>,
    pub adam_v: Vec<f32>,
}

/// Read `dir/training_state.safetensors`; the moments must match a parameter buffer of `total` values.
pub fn read_state(dir: &Path, total: u64) -> Result<TrainState, ModelError> {
    let path = dir.join("training_state.safetensors");
    let t = tensorfile::read(&path)?;
    let bad = |m: String| ModelError::Checkpoint(format!("{}: {m}", path.display()));
    let get = |k: &str| {
        t.get(k)
            .ok_or_else(|| bad(format!("tensor {k} is missing")))
    };
    let scalar = |k: &str| -> Result<i64, ModelError> {
        get(k)?
            .to_i64()
            .and_then(|v| v.first().copied())
            .ok_or_else(|| bad(format!("{k} must be one integer")))
    };
    let (adam_m, adam_v) = (get("adam_m")?.to_f32(), get("adam_v")?.to_f32());
    if adam_m.len() as u64 != total || adam_v.len() as u64 != total {
        return Err(bad(format!(
            "the AdamW moments hold {} values but the model has {total}",
            adam_m.len()
        )));
    }
    Ok(TrainState {
        step: scalar("step")? as u32,
        rng_state: scalar("rng_state")? as u64,
        adam_m,
        adam_v,
    })
}

/// Where a run starts: step 1 with a generator seeded by `seed`, or, resuming the run saved in `resume`, the step
/// after the saved one with its generator and AdamW moments (restored into `runner`).
pub fn start_or_resume(
    runner: &mut super::runner::StepRunner,
    model: &BeitModel,
    resume: Option<&Path>,
    seed: u64,
) -> Result<(u32, crate::rng::Rng), ModelError> {
    match resume {
        Some(dir) => {
            let st = read_state(dir, model.table.layout.total)?;
            runner.restore(&st);
            Ok((st.step + 1, crate::rng::Rng::new(st.rng_state)))
        }
        None => Ok((1, crate::rng::Rng::new(seed))),
    }
}
