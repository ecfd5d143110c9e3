//! The BEiT network against HuggingFace transformers (fixtures from tests/fixtures/make_fixtures.py, computed in
//! float64), checkpoint round trips and refusals, and training sanity on the micro preset.

// The kernel tests' harness; not every helper is used here.
#[allow(dead_code)]
#[path = "../kernels/common.rs"]
mod common;

mod checkpoints;
mod hf_fixtures;
mod mixed;
mod segmentation;
mod training;
