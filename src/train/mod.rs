//! Training loops. Each step is one submit (data is prepared on the CPU while the GPU runs the previous step);
//! loss, accuracy and gradient norm come back through the readback ring a step or two late.

#[cfg(not(target_arch = "wasm32"))]
pub mod checkpoint;
pub mod checks;
#[cfg(not(target_arch = "wasm32"))]
pub mod fault;
pub mod finetune;
#[cfg(not(target_arch = "wasm32"))]
pub mod knn;
#[cfg(not(target_arch = "wasm32"))]
pub mod linprobe;
pub mod metrics;
pub mod mim_step;
pub mod plot;
pub mod precision;
#[cfg(not(target_arch = "wasm32"))]
pub mod pretrain;
#[cfg(not(target_arch = "wasm32"))]
pub mod record;
#[cfg(not(target_arch = "wasm32"))]
pub mod run_dir;
pub mod runner;
pub mod schedule;
pub mod segment;
