//! Shared harness of the GPU kernel tests: one device for the whole test binary (uncaptured errors panic),
//! a seeded generator, upload / poison / run / read helpers, and the `atol + rtol·|ref|` comparison.

use std::sync::OnceLock;

use beitlab::gpu::{Dispatch, ErrorPolicy, GpuContext, GpuSlice, Requirements};

/// The device all GPU tests share. No adapter is a test failure, never a skip.
pub fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        GpuContext::new_headless_blocking(&Requirements::kernels(), ErrorPolicy::Panic)
            .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
    })
}

/// SplitMix64: small, seeded, the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [-scale, scale), as f32.
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.unit() * 2.0 - 1.0) as f32) * scale)
            .collect()
    }
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % n as u64) as u32
    }
}

pub fn up(data: &[f32]) -> GpuSlice {
    GpuSlice::from_slice(ctx(), "test input", data)
}

pub fn up_u32(data: &[u32]) -> GpuSlice {
    GpuSlice::from_slice(ctx(), "test input", data)
}

/// An output buffer filled with NaN, so any element the kernel fails to write fails the comparison.
pub fn poisoned(n: usize) -> GpuSlice {
    let s = GpuSlice::new(ctx(), "test output", n as u64);
    s.poison(ctx());
    s
}

/// An output buffer holding `data` (for accumulating kernels).
pub fn with(data: &[f32]) -> GpuSlice {
    up(data)
}

pub fn run(dispatches: Vec<Dispatch>) {
    Dispatch::submit(ctx(), "test", &dispatches).expect("submit");
    ctx().wait().expect("wait");
}

pub fn read(s: &GpuSlice) -> Vec<f32> {
    ctx().read_f32(s).expect("readback")
}

pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Every element finite and within `atol + rtol·|ref|`.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_close_each(what, got, want, &vec![atol; want.len()], rtol);
}

/// Every element finite and within `atol[i] + rtol·|ref|` (a per-element absolute tolerance).
#[track_caller]
pub fn assert_close_each(what: &str, got: &[f32], want: &[f64], atol: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite(),
            "{what}[{i}] = {g} (not written or not finite), expected {w}"
        );
        let err = (g as f64 - w).abs();
        let tol = atol[i] + rtol * w.abs();
        assert!(
            err <= tol,
            "{what}[{i}] = {g}, expected {w} (error {err:.3e} > tolerance {tol:.3e})"
        );
    }
}
