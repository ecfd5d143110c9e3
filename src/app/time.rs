//! Clock types for the app's frame budget and throughput: the standard library's natively, the browser's
//! `performance.now()` on the web (where `std::time::Instant` does not exist).

pub use web_time::{Duration, Instant};
