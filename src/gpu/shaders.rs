//! The shader registry: every WGSL file of `shaders/`, embedded in the binary (the browser build has no files).

/// (name, source) of every kernel family. Functions several families share live in `shaders/common/`, appended
/// to the source of each family that uses them (WGSL has no includes; module-scope order does not matter).
pub const SHADERS: &[(&str, &str)] = &[
    (
        "matmul",
        concat!(
            include_str!("../../shaders/matmul.wgsl"),
            include_str!("../../shaders/common/gelu.wgsl")
        ),
    ),
    (
        "matmul_lanes",
        concat!(
            include_str!("../../shaders/matmul_lanes.wgsl"),
            include_str!("../../shaders/common/gelu.wgsl")
        ),
    ),
    ("layernorm", include_str!("../../shaders/layernorm.wgsl")),
    (
        "gelu",
        concat!(
            include_str!("../../shaders/gelu.wgsl"),
            include_str!("../../shaders/common/gelu.wgsl")
        ),
    ),
    ("attention", include_str!("../../shaders/attention.wgsl")),
    (
        "attention_lanes",
        include_str!("../../shaders/attention_lanes.wgsl"),
    ),
    (
        "attention_fused",
        include_str!("../../shaders/attention_fused.wgsl"),
    ),
    (
        "elementwise",
        include_str!("../../shaders/elementwise.wgsl"),
    ),
    ("patches", include_str!("../../shaders/patches.wgsl")),
    ("tokens", include_str!("../../shaders/tokens.wgsl")),
    (
        "crossentropy",
        include_str!("../../shaders/crossentropy.wgsl"),
    ),
    ("reduce", include_str!("../../shaders/reduce.wgsl")),
    ("adamw", include_str!("../../shaders/adamw.wgsl")),
    ("droppath", include_str!("../../shaders/droppath.wgsl")),
    ("vq", include_str!("../../shaders/vq.wgsl")),
    ("conv", include_str!("../../shaders/conv.wgsl")),
    (
        "conv_columns",
        include_str!("../../shaders/conv_columns.wgsl"),
    ),
    ("spatial", include_str!("../../shaders/spatial.wgsl")),
    ("groupnorm", include_str!("../../shaders/groupnorm.wgsl")),
    ("pixel_loss", include_str!("../../shaders/pixel_loss.wgsl")),
    ("precision", include_str!("../../shaders/precision.wgsl")),
    ("probe", include_str!("../../shaders/probe.wgsl")),
    (
        "matmul_coop",
        include_str!("../../shaders/matmul_coop.wgsl"),
    ),
];

/// (name, source) of the render shaders the app draws with (not compute kernels).
pub const RENDER_SHADERS: &[(&str, &str)] = &[("paint", include_str!("../../shaders/paint.wgsl"))];

/// The shaders that use subgroup operations: they validate and compile only on a device with
/// `wgpu::Features::SUBGROUP`, and their launchers check for it before choosing them.
pub const SUBGROUP_SHADERS: &[&str] = &["matmul_lanes", "attention_lanes"];

/// Whether a shader uses subgroup operations (see [`SUBGROUP_SHADERS`]).
pub fn needs_subgroups(name: &str) -> bool {
    SUBGROUP_SHADERS.contains(&name)
}

/// The shaders that use f16 cooperative matrices: they validate and compile only on a device with
/// `wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX` and `SHADER_F16`, and run only after
/// `ops::matmul_f16::self_check` passed there.
pub const COOP_SHADERS: &[&str] = &["matmul_coop"];

/// Whether a shader uses cooperative matrices (see [`COOP_SHADERS`]).
pub fn needs_coop(name: &str) -> bool {
    COOP_SHADERS.contains(&name)
}

/// The source of a shader by name.
pub fn source(name: &str) -> Option<&'static str> {
    SHADERS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
