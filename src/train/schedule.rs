//! Learning-rate schedule: linear warm-up from 0, then cosine decay to a floor.

/// The learning rate at `step` (1-based) of `total`.
pub fn warmup_cosine(step: u32, total: u32, warmup: u32, peak: f32, floor: f32) -> f32 {
    if warmup > 0 && step <= warmup {
        return peak * step as f32 / warmup as f32;
    }
    let span = total.saturating_sub(warmup).max(1) as f32;
    let t = (step.saturating_sub(warmup) as f32 / span).min(1.0);
    floor + 0.5 * (peak - floor) * (1.0 + (std::f32::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        assert_eq!(warmup_cosine(5, 100, 10, 1.0, 0.0), 0.5);
        assert_eq!(warmup_cosine(10, 100, 10, 1.0, 0.0), 1.0);
        assert!((warmup_cosine(55, 100, 10, 1.0, 0.0) - 0.5).abs() < 1e-6);
        assert!((warmup_cosine(100, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-6);
    }
}
