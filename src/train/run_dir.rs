//! A run folder held by one process: an advisory lock on `OUT/.beitlab.lock` (released by the operating system
//! when the process ends, however it ends), so a second process writing the same folder refuses at once; and
//! the rule that a new run never writes over a folder that already holds one unless asked to (`--overwrite`),
//! and then only after every setting, the data and the device have been checked (`clear_for_new_run`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Entries beitlab writes into a run folder; `--overwrite` removes these and nothing else.
const RUN_ENTRIES: [&str; 20] = [
    "checkpoint",
    ".checkpoint.saving",
    ".checkpoint.previous",
    "tokenizer",
    "metrics.jsonl",
    "run.json",
    "finetune.json",
    "curves.png",
    "tokenizer_config.json",
    "tokenizer.safetensors",
    "dalle_config.json",
    "dalle_encoder.safetensors",
    "dalle_decoder.safetensors",
    "results.md",
    "config.json",
    "model.safetensors",
    "pretrain",
    "finetune",
    "scratch",
    "results.png",
];

/// The lock file's name inside a run folder.
pub const LOCK_FILE: &str = ".beitlab.lock";

/// How a command means to use its run folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// A new run: refused where a run exists unless `overwrite`.
    New { overwrite: bool },
    /// Continue the run that is there.
    Resume,
}

impl RunMode {
    /// A command's mode from its options: continuing a run, or a new one (replacing any with `overwrite`).
    pub fn of(resume: bool, overwrite: bool) -> Self {
        if resume {
            Self::Resume
        } else {
            Self::New { overwrite }
        }
    }
}

/// A run folder this process holds until the value is dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    mode: RunMode,
    _lock: File,
}

/// What a folder holds of a run, for the refusal message ("checkpoint/, metrics.jsonl").
fn run_entries(dir: &Path) -> Vec<&'static str> {
    RUN_ENTRIES
        .iter()
        .copied()
        .filter(|e| dir.join(e).symlink_metadata().is_ok())
        .collect()
}

impl RunDir {
    /// Take `dir` for a run (creating it): refused while another process holds it, and for a new run where a
    /// run already exists unless overwriting (nothing is removed yet: see [`RunDir::clear_for_new_run`]).
    pub fn acquire(dir: &Path, mode: RunMode) -> Result<Self, String> {
        if dir.exists() && !dir.is_dir() {
            return Err(format!(
                "{} is a file, not a folder; choose another --out",
                dir.display()
            ));
        }
        if mode == RunMode::Resume && !dir.is_dir() {
            return Err(format!(
                "{} does not exist: there is no run to resume",
                dir.display()
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                let holder = holder.trim();
                return Err(format!(
                    "{} is being written by another beitlab process{}; wait for it to finish or choose another --out",
                    dir.display(),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" ({holder})")
                    }
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("{}: cannot be locked: {e}", lock_path.display()))
            }
        }
        // Who holds it, for the message another process prints.
        lock.set_len(0).ok();
        let _ = write!(
            lock,
            "process {}: {}",
            std::process::id(),
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        if let RunMode::New { overwrite: false } = mode {
            let found = run_entries(dir);
            if !found.is_empty() {
                return Err(format!(
                    "{} already holds a run ({}); --resume {} continues it, --overwrite replaces it, or choose another --out",
                    dir.display(),
                    found.join(", "),
                    dir.display()
                ));
            }
        }
        // A save cut off between its two renames is finished (or undone) before anything reads the run.
        super::checkpoint::recover(&dir.join("checkpoint")).map_err(|e| e.to_string())?;
        if mode == RunMode::Resume && !dir.join("checkpoint").is_dir() {
            return Err(format!(
                "{} holds no complete checkpoint to resume (the run stopped before its first save); start it again with --overwrite",
                dir.display()
            ));
        }
        Ok(Self {
            path: dir.to_path_buf(),
            mode,
            _lock: lock,
        })
    }

    /// For a new run with `--overwrite`, remove the previous run's entries (only those beitlab writes). Call it
    /// once every setting, the data and the device are known good, just before the first write.
    pub fn clear_for_new_run(&self) -> Result<(), String> {
        if self.mode != (RunMode::New { overwrite: true }) {
            return Ok(());
        }
        for e in run_entries(&self.path) {
            let p = self.path.join(e);
            let removed = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed.map_err(|err| format!("{}: cannot be removed: {err}", p.display()))?;
        }
        Ok(())
    }
}
