//! Startup micro-tuning: where several kernels compute the same result (a product's kernel and its split along k,
//! the attention core fused or keeping its probabilities, a mixed-precision product on tensor cores or in f32),
//! each candidate is timed on this device once per shape and the fastest is kept. The table lives in a JSON file
//! per adapter, driver and kernel build, so later runs on the same card reuse it without timing again.
//!
//! `BEITLAB_TUNE`: unset, native GPUs tune and software adapters follow the rules (measured on llvmpipe and an
//! H200) instead; `off` follows the rules everywhere; `on` tunes on every adapter; `fresh` tunes on every
//! adapter and ignores the file (rewriting it). The browser never tunes (it cannot wait on the GPU).
//! `BEITLAB_TUNE_DIR` sets where the tables live (default `$XDG_CACHE_HOME/beitlab`, else `~/.cache/beitlab`).

use super::{Dispatch, GpuContext, GpuError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the tuner does on a context (see the module's notes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TuneMode {
    Off,
    On,
    Fresh,
}

impl TuneMode {
    /// The mode `BEITLAB_TUNE` asks for on an adapter.
    pub fn from_env(info: &wgpu::AdapterInfo) -> Self {
        if cfg!(target_arch = "wasm32") {
            return Self::Off;
        }
        match std::env::var("BEITLAB_TUNE").as_deref() {
            Ok("off") | Ok("0") => Self::Off,
            Ok("on") | Ok("1") => Self::On,
            Ok("fresh") => Self::Fresh,
            _ if super::is_software_adapter(info) => Self::Off,
            _ => Self::On,
        }
    }
}

/// One tuned choice: the winner and every candidate's time.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tuned {
    pub choice: String,
    /// Microseconds per run of each candidate.
    pub micros: BTreeMap<String, f64>,
}

/// The table file: which adapter and kernel build it was measured with, and the choices.
#[derive(serde::Serialize, serde::Deserialize)]
struct TuneFile {
    adapter: String,
    kernels: String,
    entries: BTreeMap<String, Tuned>,
}

/// A context's tuning state: its mode and table directory, the table, and counts for the summary.
pub struct TuneState {
    mode: TuneMode,
    dir: Option<PathBuf>,
    loaded: bool,
    entries: BTreeMap<String, Tuned>,
    timed: u32,
    reused: u32,
    seconds: f64,
    /// Why the file could not be read or written, if it could not (reported once in the summary).
    trouble: Option<String>,
}

/// What the tuner did on a context so far.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneSummary {
    pub mode: TuneMode,
    /// Shapes timed in this process, and the seconds spent timing them.
    pub timed: u32,
    pub seconds: f64,
    /// Choices taken from the table (the file, or a shape timed earlier in this process).
    pub reused: u32,
    pub file: Option<PathBuf>,
    pub trouble: Option<String>,
}

impl TuneState {
    pub(super) fn new(info: &wgpu::AdapterInfo) -> Self {
        let dir = std::env::var_os("BEITLAB_TUNE_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("beitlab"))
            })
            .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/beitlab")));
        Self::with(TuneMode::from_env(info), dir)
    }

    pub(super) fn with(mode: TuneMode, dir: Option<PathBuf>) -> Self {
        Self {
            mode,
            dir,
            loaded: false,
            entries: BTreeMap::new(),
            timed: 0,
            reused: 0,
            seconds: 0.0,
            trouble: None,
        }
    }
}

/// A short, stable hash of every kernel's source and the crate version: a table measured with other kernels is
/// not reused (FNV-1a, 64 bits).
fn kernels_hash() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let parts = super::shaders::SHADERS
        .iter()
        .flat_map(|(name, src)| [name.as_bytes(), src.as_bytes()])
        .chain([env!("CARGO_PKG_VERSION").as_bytes()]);
    for part in parts {
        for &byte in part {
            h ^= byte as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The adapter as the table names it: name, backend, driver and its version.
fn adapter_id(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} {:?} {} {}",
        info.name, info.backend, info.driver, info.driver_info
    )
}

/// The table's file name for an adapter: its id with anything but letters and digits made `-`, and the kernels'
/// hash.
fn file_name(info: &wgpu::AdapterInfo) -> String {
    let slug: String = adapter_id(info)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let slug: Vec<&str> = slug.split('-').filter(|s| !s.is_empty()).collect();
    format!("tune-{}-{}.json", slug.join("-"), kernels_hash())
}

fn read_table(path: &Path) -> Result<BTreeMap<String, Tuned>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let file: TuneFile = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a tuning table ({e}); timing again",
            path.display()
        )
    })?;
    if file.kernels != kernels_hash() {
        return Ok(BTreeMap::new());
    }
    Ok(file.entries)
}

fn write_table(
    path: &Path,
    info: &wgpu::AdapterInfo,
    entries: &BTreeMap<String, Tuned>,
) -> Result<(), String> {
    let file = TuneFile {
        adapter: adapter_id(info),
        kernels: kernels_hash(),
        entries: entries.clone(),
    };
    let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // Written whole, then renamed, so a reader never sees half a table.
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

impl GpuContext {
    fn tune_state(&self) -> std::sync::MutexGuard<'_, TuneState> {
        match self.tuning.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// This context with another tuning mode and table directory (tests, benchmarks); the table starts empty.
    pub fn with_tuning(self, mode: TuneMode, dir: Option<PathBuf>) -> Self {
        *self.tune_state() = TuneState::with(mode, dir);
        self
    }

    /// Whether choices on this context are tuned (else the rules decide).
    pub fn tunes(&self) -> bool {
        self.tune_state().mode != TuneMode::Off
    }

    /// The table file of this context, where it has a directory.
    fn tune_file(&self, state: &TuneState) -> Option<PathBuf> {
        state
            .dir
            .as_ref()
            .map(|d| d.join(file_name(&self.adapter_info)))
    }

    /// What the tuner did so far.
    pub fn tune_summary(&self) -> TuneSummary {
        let state = self.tune_state();
        TuneSummary {
            mode: state.mode,
            timed: state.timed,
            seconds: state.seconds,
            reused: state.reused,
            file: self.tune_file(&state),
            trouble: state.trouble.clone(),
        }
    }

    /// Every tuned choice so far, by key.
    pub fn tuned_table(&self) -> BTreeMap<String, Tuned> {
        self.tune_state().entries.clone()
    }

    /// The fastest of `candidates` for `key`, or `None` when this context does not tune. From the table where it
    /// has the key (and the candidate is still offered), else each candidate's launches (from `build`, on
    /// temporaries of the caller's) are timed, the fastest stored and the file rewritten. `prefer`: a candidate
    /// that wins unless another is faster by more than the given fraction (the fused attention, for its memory).
    /// A candidate whose launches cannot be built is left out; with none left, `None`.
    pub fn tuned_choice(
        &self,
        key: &str,
        candidates: &[String],
        mut build: impl FnMut(&str) -> Result<Vec<Dispatch>, GpuError>,
        prefer: Option<(&str, f64)>,
    ) -> Result<Option<String>, GpuError> {
        if cfg!(target_arch = "wasm32") {
            return Ok(None);
        }
        // The lock is not held while candidates are built and timed: building one may tune its own parts.
        let file = {
            let mut state = self.tune_state();
            if state.mode == TuneMode::Off || candidates.is_empty() {
                return Ok(None);
            }
            let file = self.tune_file(&state);
            if !state.loaded {
                state.loaded = true;
                if let (Some(path), TuneMode::On) = (&file, state.mode) {
                    match read_table(path) {
                        Ok(entries) => state.entries = entries,
                        Err(e) => state.trouble = Some(e),
                    }
                }
            }
            let known = state.entries.get(key).map(|t| t.choice.clone());
            if let Some(choice) = known.filter(|c| candidates.contains(c)) {
                state.reused += 1;
                return Ok(Some(choice));
            }
            file
        };
        // Seconds spent timing (not building: a candidate's build may time its own parts, counted there).
        let mut seconds = 0.0;
        let mut micros = BTreeMap::new();
        for name in candidates {
            let Ok(work) = build(name) else { continue };
            let started = std::time::Instant::now();
            micros.insert(name.clone(), self.time_micros(&work)?);
            seconds += started.elapsed().as_secs_f64();
        }
        let Some((fastest, &best)) = micros.iter().min_by(|a, b| a.1.total_cmp(b.1)) else {
            return Ok(None);
        };
        let choice = match prefer {
            Some((p, margin)) if micros.get(p).is_some_and(|&t| t <= best * (1.0 + margin)) => {
                p.to_string()
            }
            _ => fastest.clone(),
        };
        let mut state = self.tune_state();
        state.entries.insert(
            key.to_string(),
            Tuned {
                choice: choice.clone(),
                micros,
            },
        );
        state.timed += 1;
        state.seconds += seconds;
        if let Some(path) = &file {
            if let Err(e) = write_table(path, &self.adapter_info, &state.entries) {
                state.trouble = Some(e);
            }
        }
        Ok(Some(choice))
    }

    /// Microseconds one run of `work` takes: a warm-up, then the best of three rounds of as many runs in one
    /// submit as fill about 2 ms.
    #[cfg(not(target_arch = "wasm32"))]
    fn time_micros(&self, work: &[Dispatch]) -> Result<f64, GpuError> {
        use std::time::Instant;
        Dispatch::submit(self, "tune warm-up", work)?;
        self.wait()?;
        let t0 = Instant::now();
        Dispatch::submit(self, "tune", work)?;
        self.wait()?;
        let once = t0.elapsed().as_secs_f64();
        let reps = ((2e-3 / once.max(1e-7)) as usize).clamp(1, 64);
        let batch: Vec<Dispatch> = work
            .iter()
            .cloned()
            .cycle()
            .take(work.len() * reps)
            .collect();
        let mut best = once;
        for _ in 0..3 {
            let t0 = Instant::now();
            Dispatch::submit(self, "tune", &batch)?;
            self.wait()?;
            best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
        }
        Ok((best * 1e7).round() / 10.0)
    }

    /// The browser does not tune (its mode is always off): it cannot wait on the GPU.
    #[cfg(target_arch = "wasm32")]
    fn time_micros(&self, _work: &[Dispatch]) -> Result<f64, GpuError> {
        Err(GpuError::Device(
            "kernels cannot be timed in the browser".into(),
        ))
    }
}
