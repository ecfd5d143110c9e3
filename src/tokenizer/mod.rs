//! The visual tokenizer, trained on the user's own images on the GPU: an MLP encoder over each patch and its
//! four neighbours, L2-normalised codes, nearest-code quantisation against an EMA-updated codebook with dead-code
//! restart, straight-through gradients, and an MLP decoder back to the patch's pixels. Loss = reconstruction MSE
//! + commitment. Its token grid equals the ViT's patch grid; the decoder turns any token grid back into pixels.

pub mod batches;
pub mod config;
pub mod dalle;
pub mod graph;
#[cfg(not(target_arch = "wasm32"))]
pub mod train;
pub mod visual;

pub use config::TokenizerConfig;
pub use graph::{Tokenizer, TokenizerGraph};
pub use visual::{TokenizerView, VisualGraph, VisualTokenizer};
