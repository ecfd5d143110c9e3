//! safetensors files on the host: read every tensor (f32, f16, bf16, f64, i64, i32, u8, bool) into plain vectors,
//! write f32 / i64 / u8 tensors, and write atomically (temporary file + rename) so a crash never leaves half a file.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::model::ModelError;

/// A tensor's values on the host.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
    /// The dtype in the file, for messages ("F16", "BF16", ...).
    pub file_dtype: String,
}

impl HostTensor {
    pub fn f32(shape: Vec<usize>, v: Vec<f32>) -> Self {
        Self {
            shape,
            data: TensorData::F32(v),
            file_dtype: "F32".into(),
        }
    }
    pub fn i64(shape: Vec<usize>, v: Vec<i64>) -> Self {
        Self {
            shape,
            data: TensorData::I64(v),
            file_dtype: "I64".into(),
        }
    }
    pub fn u8(shape: Vec<usize>, v: Vec<u8>) -> Self {
        Self {
            shape,
            data: TensorData::U8(v),
            file_dtype: "U8".into(),
        }
    }
    /// Values as f32 (integers converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            TensorData::F32(v) => v.clone(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    /// Values as i64, `None` for a float tensor.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        match &self.data {
            TensorData::F32(_) => None,
            TensorData::I64(v) => Some(v.clone()),
            TensorData::U8(v) => Some(v.iter().map(|&x| x as i64).collect()),
        }
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn bad(path: &Path, msg: String) -> ModelError {
    ModelError::Checkpoint(format!("{}: {msg}", path.display()))
}

/// Read every tensor of a safetensors file.
pub fn read(path: &Path) -> Result<BTreeMap<String, HostTensor>, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    parse(path, &bytes)
}

/// Parse safetensors bytes (`path` only names the source in messages).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, HostTensor>, ModelError> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| bad(path, format!("not a valid safetensors file ({e})")))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let dtype = format!("{:?}", view.dtype());
        let data = match view.dtype() {
            Dtype::F32 => TensorData::F32(bytemuck::pod_collect_to_vec(raw)),
            Dtype::F64 => TensorData::F32(
                bytemuck::pod_collect_to_vec::<u8, f64>(raw)
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
            ),
            Dtype::F16 => TensorData::F32(
                bytemuck::pod_collect_to_vec::<u8, half::f16>(raw)
                    .into_iter()
                    .map(f32::from)
                    .collect(),
            ),
            Dtype::BF16 => TensorData::F32(
                bytemuck::pod_collect_to_vec::<u8, half::bf16>(raw)
                    .into_iter()
                    .map(f32::from)
                    .collect(),
            ),
            Dtype::I64 => TensorData::I64(bytemuck::pod_collect_to_vec(raw)),
            Dtype::I32 => TensorData::I64(
                bytemuck::pod_collect_to_vec::<u8, i32>(raw)
                    .into_iter()
                    .map(i64::from)
                    .collect(),
            ),
            Dtype::U8 | Dtype::BOOL => TensorData::U8(raw.to_vec()),
            other => {
                return Err(bad(
                    path,
                    format!("tensor {name} has dtype {other:?}, which beitlab does not read"),
                ))
            }
        };
        out.insert(
            name,
            HostTensor {
                shape: view.shape().to_vec(),
                data,
                file_dtype: dtype,
            },
        );
    }
    Ok(out)
}

/// Serialise tensors (f32, i64, u8) to safetensors bytes.
pub fn serialize(tensors: &BTreeMap<String, HostTensor>) -> Result<Vec<u8>, ModelError> {
    serialize_with_metadata(tensors, BTreeMap::new())
}

/// The `__metadata__` strings of safetensors bytes (empty when the file has none).
pub fn metadata(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, String>, ModelError> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(path, format!("not a valid safetensors file ({e})")))?;
    Ok(meta
        .metadata()
        .clone()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default())
}

/// Serialise tensors with `__metadata__` strings (none written when `meta` is empty).
pub fn serialize_with_metadata(
    tensors: &BTreeMap<String, HostTensor>,
    meta: BTreeMap<String, String>,
) -> Result<Vec<u8>, ModelError> {
    let mut views = Vec::new();
    for (name, t) in tensors {
        let (dtype, bytes): (Dtype, &[u8]) = match &t.data {
            TensorData::F32(v) => (Dtype::F32, bytemuck::cast_slice(v)),
            TensorData::I64(v) => (Dtype::I64, bytemuck::cast_slice(v)),
            TensorData::U8(v) => (Dtype::U8, v),
        };
        let view = safetensors::tensor::TensorView::new(dtype, t.shape.clone(), bytes)
            .map_err(|e| ModelError::Checkpoint(format!("tensor {name} cannot be written: {e}")))?;
        views.push((name.clone(), view));
    }
    let meta = (!meta.is_empty()).then(|| meta.into_iter().collect());
    safetensors::serialize(views, meta)
        .map_err(|e| ModelError::Checkpoint(format!("safetensors serialisation failed: {e}")))
}

/// Write `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    {
        let mut file = std::fs::File::create(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
        std::io::Write::write_all(&mut file, bytes).map_err(|e| ModelError::io(&tmp, e))?;
        // On disk before the rename, so a power cut cannot leave the new name on an empty file.
        file.sync_all().map_err(|e| ModelError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}

/// Write tensors to a safetensors file atomically.
pub fn write(path: &Path, tensors: &BTreeMap<String, HostTensor>) -> Result<(), ModelError> {
    write_atomic(path, &serialize(tensors)?)
}
