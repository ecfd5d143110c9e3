//! Checks of training settings that cannot train (a batch of 0 images, a NaN or negative learning rate, a mask
//! ratio of 0 or 1, ...), shared by the command line (as clap value parsers, so nothing runs before the check),
//! the library's option structs (`validate`, called first by every training loop) and the app's settings. Each
//! failure is one sentence naming the setting and what it must be.

use crate::model::ModelError;

/// A count that must be at least 1 (steps, batch size).
pub fn count(name: &str, v: u32) -> Result<(), String> {
    if v == 0 {
        return Err(format!("{name} must be at least 1, not 0"));
    }
    Ok(())
}

/// A learning rate: finite and above zero.
pub fn learning_rate(name: &str, v: f32) -> Result<(), String> {
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("{name} must be a positive finite number, not {v}"));
    }
    Ok(())
}

/// A finite number at least zero (weight decay, a floor learning rate).
pub fn non_negative(name: &str, v: f32) -> Result<(), String> {
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{name} must be a finite number >= 0, not {v}"));
    }
    Ok(())
}

/// A fraction strictly between 0 and 1 (mask ratio).
pub fn open_fraction(name: &str, v: f64) -> Result<(), String> {
    if !(v > 0.0 && v < 1.0) {
        return Err(format!("{name} must lie strictly between 0 and 1, not {v}"));
    }
    Ok(())
}

/// A fraction in [lo, hi] (label smoothing, layer decay, crop scale).
pub fn fraction_in(name: &str, v: f64, lo: f64, hi: f64) -> Result<(), String> {
    if !(v >= lo && v <= hi) {
        return Err(format!("{name} must lie in [{lo}, {hi}], not {v}"));
    }
    Ok(())
}

/// Masked patches per image out of `n`: at least one and fewer than all of them.
pub fn masked_patches(name: &str, k: u32, n: u32) -> Result<(), String> {
    if k == 0 || k >= n {
        return Err(format!(
            "{name} masks {k} of {n} patches per image; it must mask at least 1 and fewer than {n}"
        ));
    }
    Ok(())
}

/// Run several checks, the first failure as a configuration error of the model layer.
pub fn all(checks: &[Result<(), String>]) -> Result<(), ModelError> {
    match checks.iter().find_map(|c| c.as_ref().err()) {
        Some(m) => Err(ModelError::Config(m.clone())),
        None => Ok(()),
    }
}

/// clap value parsers: the same checks before anything runs.
#[cfg(not(target_arch = "wasm32"))]
pub mod parse {
    fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
        s.trim()
            .parse()
            .map_err(|_| format!("\"{s}\" is not a number"))
    }

    /// At least 1.
    pub fn count(s: &str) -> Result<u32, String> {
        let v = number(s)?;
        super::count("the value", v).map(|_| v)
    }

    /// Finite and above zero.
    pub fn learning_rate(s: &str) -> Result<f32, String> {
        let v = number(s)?;
        super::learning_rate("a learning rate", v).map(|_| v)
    }

    /// Strictly between 0 and 1.
    pub fn open_fraction(s: &str) -> Result<f64, String> {
        let v = number(s)?;
        super::open_fraction("the value", v).map(|_| v)
    }

    /// In [0, 1].
    pub fn unit_fraction(s: &str) -> Result<f64, String> {
        let v = number(s)?;
        super::fraction_in("the value", v, 0.0, 1.0).map(|_| v)
    }

    /// In [0, 1], as f32.
    pub fn unit_fraction_f32(s: &str) -> Result<f32, String> {
        unit_fraction(s).map(|v| v as f32)
    }

    /// A positive number of epochs.
    pub fn epochs(s: &str) -> Result<f64, String> {
        let v: f64 = number(s)?;
        if !v.is_finite() || v <= 0.0 {
            return Err(format!("epochs must be a positive finite number, not {v}"));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn refuses_what_cannot_train() {
        assert!(super::parse::count("0").is_err());
        assert!(super::parse::count("3").is_ok());
        for bad in ["NaN", "inf", "-1", "0", "x"] {
            assert!(super::parse::learning_rate(bad).is_err(), "{bad}");
        }
        assert!(super::parse::learning_rate("1e-3").is_ok());
        for bad in ["0", "1", "-0.2", "1.5", "NaN"] {
            assert!(super::parse::open_fraction(bad).is_err(), "{bad}");
        }
        assert!(super::masked_patches("m", 0, 16).is_err());
        assert!(super::masked_patches("m", 16, 16).is_err());
        assert!(super::masked_patches("m", 6, 16).is_ok());
    }
}
