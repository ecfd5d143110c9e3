//! CPU references ("twins") of every GPU kernel: same names and argument order as the launchers in
//! [`crate::ops`], plain loops, readable rather than fast. Generic over [`Real`] so that the same code runs in
//! f32 (compared with the GPU) and in f64 (checked against finite differences).

pub mod adamw;
pub mod attention;
pub mod conv;
pub mod conv_columns;
pub mod crossentropy;
pub mod droppath;
pub mod elementwise;
pub mod gelu;
pub mod groupnorm;
pub mod interpolate;
pub mod layernorm;
pub mod matmul;
pub mod paint;
pub mod patches;
pub mod pixel_loss;
pub mod precision;
pub mod probe;
pub mod reduce;
pub mod spatial;
pub mod tokens;
pub mod vq;

use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// The float types the references run in.
pub trait Real:
    Copy
    + PartialOrd
    + Default
    + std::fmt::Debug
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    fn of(v: f64) -> Self;
    fn f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn zero() -> Self {
        Self::of(0.0)
    }
    fn one() -> Self {
        Self::of(1.0)
    }
}

impl Real for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn abs(self) -> Self {
        f32::abs(self)
    }
}

impl Real for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn f64(self) -> f64 {
        self
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn abs(self) -> Self {
        f64::abs(self)
    }
}

/// Either overwrite or add into a destination element.
pub(crate) fn put<T: Real>(dst: &mut T, v: T, accumulate: bool) {
    if accumulate {
        *dst += v;
    } else {
        *dst = v;
    }
}
