//! Training loops. Each step is one submit (data is prepared on the CPU while the GPU runs the previous step);
//! loss, accuracy and gradient norm come back through the readback ring a step or two late.

pub mod checkpoint;
pub mod finetune;
pub mod linprobe;
pub mod metrics;
pub mod plot;
pub mod pretrain;
pub mod runner;
pub mod schedule;
