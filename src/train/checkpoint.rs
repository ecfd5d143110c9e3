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
    tensorfile::write(&tmp.join("training_state.safetensors"), &st)?;
    std::fs::remove_dir_all(&old).ok();
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| ModelError::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| ModelError::io(dir, e))?;
    std::fs::remove_dir_all(&old).ok();
    Ok(())
}
