//! Clock types for the app's frame budget and throughput (the standard library's on native targets).

pub use std::time::{Duration, Instant};
