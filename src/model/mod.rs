//! The BEiT network: configuration, parameter table, the GPU graph (forward and backward), checkpoints.

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod graph;
#[cfg(not(target_arch = "wasm32"))]
pub mod io_forward;
pub mod params;

pub use checkpoint::BeitModel;
pub use config::{Architecture, BeitConfig, SegmentationHead};
pub use error::ModelError;
pub use graph::{BeitGraph, GraphOptions, MimRows};
pub use params::ParamTable;
