//! The arithmetic a training run asks for (`--precision f32|mixed`, the app's setting) and what it gets on an
//! adapter. Mixed precision: the linear layers' products read their operands rounded to f16 and accumulate in
//! f32, the weights and AdamW stay f32, and a dynamic loss scale keeps small gradients from vanishing in f16
//! (overflowed steps are skipped). The products run on f16 cooperative matrices (`ops::matmul_f16`) where the
//! device has them and the kernel passes its self-check against the CPU there; elsewhere a request for mixed
//! precision runs f32 and says why. `BEITLAB_MIXED=emulate` runs the mixed numerics on any adapter with the
//! products emulated by rounded copies and the f32 kernels (slower than f32: for checking the mode, not for
//! speed).

use crate::gpu::GpuContext;
use crate::ops::precision::ProductInputs;

/// What a run asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    F32,
    Mixed,
}

/// What a run gets on an adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The graph's `mixed` option: `None` for f32.
    pub mixed: Option<ProductInputs>,
    /// One sentence when the run differs from the request or emulates it.
    pub note: Option<String>,
}

impl Resolved {
    /// The arithmetic that runs.
    pub fn ran(&self) -> Precision {
        match self.mixed {
            Some(_) => Precision::Mixed,
            None => Precision::F32,
        }
    }
}

impl Precision {
    /// `f32` or `mixed`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Self::F32),
            "mixed" => Ok(Self::Mixed),
            other => Err(format!("unknown precision \"{other}\"; use f32 or mixed")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Mixed => "mixed",
        }
    }

    /// What this request runs as on `ctx` (`BEITLAB_MIXED=emulate` asks for emulated f16-input products).
    pub fn resolve(self, ctx: &GpuContext) -> Resolved {
        let emulate = std::env::var("BEITLAB_MIXED").is_ok_and(|v| v == "emulate");
        self.resolve_with(ctx, emulate)
    }

    /// [`Precision::resolve`] with the emulation choice given.
    pub fn resolve_with(self, ctx: &GpuContext, emulate: bool) -> Resolved {
        match self {
            Self::F32 => Resolved {
                mixed: None,
                note: None,
            },
            Self::Mixed if emulate => Resolved {
                mixed: Some(ProductInputs::F16Emulated),
                note: Some(
                    "mixed precision with its f16-input products emulated by f32 kernels (BEITLAB_MIXED=emulate): mixed precision's numbers, not its speed".into(),
                ),
            },
            Self::Mixed => match coop_check(ctx) {
                Ok(()) => Resolved {
                    mixed: Some(ProductInputs::F16Coop),
                    note: None,
                },
                Err(why) => Resolved {
                    mixed: None,
                    note: Some(format!(
                        "mixed precision requested but this run is f32: {why} (on {})",
                        ctx.adapter_info.name
                    )),
                },
            },
        }
    }
}

/// Whether the cooperative-matrix product can run on `ctx`, with the reason when not.
fn coop_check(ctx: &GpuContext) -> Result<(), String> {
    if !crate::ops::matmul_f16::available(ctx) {
        return Err(
            "it needs f16 cooperative matrices with 32-lane subgroups, which this adapter does not offer"
                .into(),
        );
    }
    #[cfg(not(target_arch = "wasm32"))]
    return crate::ops::matmul_f16::self_check(ctx)
        .map_err(|e| format!("the f16 cooperative-matrix product failed its self-check: {e}"));
    #[cfg(target_arch = "wasm32")]
    Err("cooperative matrices are native only".into())
}
