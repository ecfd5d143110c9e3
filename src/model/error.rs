//! Typed errors of the model layer: configs, checkpoints, shapes. One clear sentence each.

use thiserror::Error;

use crate::gpu::GpuError;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Checkpoint(String),
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ModelError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
