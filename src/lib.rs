//! beitlab: BEiT (BERT pre-training of image Transformers) end to end on the GPU through WebGPU.
//!
//! The crate is layered:
//! - [`gpu`]: one device-creation path, the pipeline cache, flat buffers, dispatch and readback helpers;
//! - [`ops`]: thin typed launchers, one module per WGSL kernel family in `shaders/`;
//! - [`cpu`]: the CPU reference ("twin") of every kernel, same names and argument order, plain loops;
//! - [`bench`]: the kernel benchmark behind `beitlab bench kernels`.
//!
//! Dimension vocabulary used in every shape comment:
//! - `B` batch, `N` patches per image, `T = N + 1` tokens (with CLS), `C` hidden size,
//!   `H` attention heads, `D = C / H` head size, `V` vocabulary (codebook) size, `L` layers;
//! - `M, N, K` in matrix products: `Y (M, N) = X (M, K) · Wᵀ` with `W (N, K)` as in PyTorch `nn.Linear`.

pub mod app;
pub mod cpu;
pub mod data;
pub mod gpu;
pub mod model;
pub mod ops;
pub mod rng;
pub mod tensorfile;
pub mod tokenizer;
pub mod train;

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
#[cfg(not(target_arch = "wasm32"))]
pub mod bench_segment;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
#[cfg(not(target_arch = "wasm32"))]
pub mod soak;

pub use gpu::{GpuContext, GpuError};
