//! Run folders: the model as a HuggingFace folder plus `training_state.safetensors` (AdamW moments and the step),
//! written into a temporary folder that replaces the previous checkpoint only once complete, so a crash during a
//! save leaves the previous checkpoint intact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::fault;
use crate::gpu::GpuContext;
use crate::model::checkpoint::{write_folder, BeitModel};
use crate::model::ModelError;
use crate::model::ParamTable;
use crate::tensorfile::{self, HostTensor};

/// The optimizer state's file in a checkpoint folder, written last by a save.
const STATE_FILE: &str = "training_state.safetensors";

/// The temporary folder a save writes into and the name the replaced checkpoint has until the save completes.
fn swap_names(dir: &Path) -> (PathBuf, PathBuf) {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("run");
    (
        dir.with_file_name(format!(".{name}.saving")),
        dir.with_file_name(format!(".{name}.previous")),
    )
}

/// Finish or undo a save that was cut off: where `dir` is missing, a complete new checkpoint (`.NAME.saving`
/// holding its training state, which a save writes last) takes its place, else the previous one
/// (`.NAME.previous`) is put back. Returns whether anything was restored. Called before every save and when a
/// run folder is taken, so `--resume` always finds the last complete checkpoint.
pub fn recover(dir: &Path) -> Result<bool, ModelError> {
    if dir.exists() {
        return Ok(false);
    }
    let (tmp, old) = swap_names(dir);
    let from = if tmp.join(STATE_FILE).is_file() {
        tmp
    } else if old.is_dir() {
        old.clone()
    } else {
        return Ok(false);
    };
    std::fs::rename(&from, dir).map_err(|e| ModelError::io(dir, e))?;
    std::fs::remove_dir_all(&old).ok();
    Ok(true)
}

/// The first non-finite value of a flat vector laid out by `table`: (tensor name, how many in it).
fn first_non_finite(table: &ParamTable, flat: &[f32]) -> Option<(String, usize)> {
    table
        .specs
        .iter()
        .zip(&table.layout.entries)
        .find_map(|(spec, e)| {
            let bad = flat[e.offset as usize..(e.offset + e.len) as usize]
                .iter()
                .filter(|v| !v.is_finite())
                .count();
            (bad > 0).then(|| (spec.name.clone(), bad))
        })
}

/// Save model + optimizer state to `dir` atomically (as a whole folder). Weights or moments that are not finite
/// are refused (the previous checkpoint stays) with the tensor named.
pub fn save_run(
    ctx: &GpuContext,
    dir: &Path,
    model: &BeitModel,
    runner: &super::runner::StepRunner,
    step: u32,
    rng_state: u64,
) -> Result<(), ModelError> {
    let (m, v) = (&runner.m, &runner.v);
    let loss_scale = runner.loss_scale_state()?;
    let params = ctx.read_f32(&model.params.whole)?;
    let (adam_m, adam_v) = (ctx.read_f32(&m.whole)?, ctx.read_f32(&v.whole)?);
    for (what, values) in [
        ("weights", &params),
        ("AdamW moments", &adam_m),
        ("AdamW moments", &adam_v),
    ] {
        if let Some((name, count)) = first_non_finite(&model.table, values) {
            return Err(ModelError::Input(format!(
                "the {what} after step {step} are not finite ({count} values of {name}); training stopped and the last checkpoint is kept (a smaller learning rate may help)"
            )));
        }
    }
    recover(dir)?;
    let (tmp, old) = swap_names(dir);
    std::fs::remove_dir_all(&tmp).ok();
    write_folder(&tmp, &model.cfg, &model.table, &params)?;
    fault::cut_file_point("model", &tmp.join("model.safetensors"));
    fault::kill_point("state");
    let mut st = BTreeMap::new();
    st.insert(
        "adam_m".to_string(),
        HostTensor::f32(vec![m.layout.total as usize], adam_m),
    );
    st.insert(
        "adam_v".to_string(),
        HostTensor::f32(vec![v.layout.total as usize], adam_v),
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
    // Mixed precision: the dynamic loss scale, its run of good steps and the AdamW updates applied.
    if let Some(ls) = loss_scale {
        st.insert(
            "loss_scale_state".to_string(),
            HostTensor::f32(vec![ls.len()], ls.to_vec()),
        );
    }
    tensorfile::write(&tmp.join(STATE_FILE), &st)?;
    std::fs::remove_dir_all(&old).ok();
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| ModelError::io(dir, e))?;
    }
    fault::kill_point("swap");
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
    /// Mixed precision's loss scaler state (see `cpu::precision`), when the run had one.
    pub loss_scale: Option<[f32; crate::cpu::precision::state::LEN]>,
}

/// Read `dir/training_state.safetensors`; the moments must match a parameter buffer of `total` values.
pub fn read_state(dir: &Path, total: u64) -> Result<TrainState, ModelError> {
    let path = dir.join(STATE_FILE);
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
    let loss_scale = match t.get("loss_scale_state") {
        None => None,
        Some(ls) => {
            let v = ls.to_f32();
            Some(v.as_slice().try_into().map_err(|_| {
                bad(format!(
                    "loss_scale_state holds {} values, not {}",
                    v.len(),
                    crate::cpu::precision::state::LEN
                ))
            })?)
        }
    };
    Ok(TrainState {
        step: scalar("step")? as u32,
        rng_state: scalar("rng_state")? as u64,
        adam_m,
        adam_v,
        loss_scale,
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
