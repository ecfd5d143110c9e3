//! GPU kernels against their CPU twins on seeded random inputs: a tiny size, an odd size that is no multiple
//! of any tile or workgroup, and (where a launch can need it) more than 65535 workgroups in one dimension.
//! Outputs are poisoned with NaN before each dispatch. References run in f64; tolerances are `atol + rtol·|ref|`
//! with the reason next to each.

mod common;

mod adamw;
mod attention;
mod attention_fused;
mod conv;
mod conv_columns;
mod crossentropy;
mod droppath;
mod elementwise;
mod gelu;
mod groupnorm;
mod layernorm;
mod matmul;
mod matmul_f16;
mod paint;
mod patches;
mod pixel_loss;
mod precision;
mod probe;
mod readback;
mod reduce;
mod spatial;
mod tokens;
mod tune;
mod vq;
