//! The paper's tokenizer: DALL-E's discrete VAE (encoder to 8192 visual tokens per 8x8 block, decoder back to
//! pixels), frozen, imported from the `dall-e` package's weights and run by WGSL convolutions.

pub mod arch;
#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod graph;
pub mod model;

pub use arch::{Half, NetShape};
pub use graph::{DalleGraph, PixelOut};
pub use model::{DalleConfig, DalleNet, DalleTokenizer};
