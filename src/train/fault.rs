//! Fault injection for the tests of "a kill at any moment loses nothing": `BEITLAB_FAULT=STAGE:N` ends the process
//! abruptly (exit status 137, as SIGKILL, no clean-up) the N-th time it reaches STAGE, or makes the N-th training
//! step fail on the GPU. Stages: `model` (inside a checkpoint save, the model file half written), `state` (the
//! model written, the training state not yet), `swap` (between the two renames that replace the previous
//! checkpoint), `lose-device` (the device destroyed before step N is submitted), `gpu-error` (an invalid GPU
//! command recorded with step N). Unset, every check is one comparison.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a fault.
pub const FAULT_ENV: &str = "BEITLAB_FAULT";

fn armed() -> Option<&'static (String, u32)> {
    static ARMED: OnceLock<Option<(String, u32)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var(FAULT_ENV).ok()?;
            let (stage, n) = v.split_once(':')?;
            Some((stage.to_string(), n.parse().ok()?))
        })
        .as_ref()
}

/// Whether this is the N-th time `stage` is reached (counted per process).
fn fires(stage: &str) -> bool {
    static SEEN: AtomicU32 = AtomicU32::new(0);
    match armed() {
        Some((s, n)) if s == stage => SEEN.fetch_add(1, Ordering::AcqRel) + 1 == *n,
        _ => false,
    }
}

/// End the process here, as a kill would, when `stage` is armed for this visit.
pub fn kill_point(stage: &str) {
    if fires(stage) {
        eprintln!("fault injected: {FAULT_ENV} ended the process at {stage}");
        std::process::exit(137);
    }
}

/// Truncate `file` to half its length and end the process (a save cut off mid-write), when `stage` fires.
pub fn cut_file_point(stage: &str, file: &std::path::Path) {
    if fires(stage) {
        if let Ok(meta) = std::fs::metadata(file) {
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(file) {
                let _ = f.set_len(meta.len() / 2);
            }
        }
        eprintln!(
            "fault injected: {FAULT_ENV} cut {} and ended the process",
            file.display()
        );
        std::process::exit(137);
    }
}

/// Whether the GPU fault `stage` (`lose-device`, `gpu-error`) is armed for training step `step`.
pub fn gpu_fault_at(stage: &str, step: u32) -> bool {
    matches!(armed(), Some((s, n)) if s == stage && *n == step)
}
