//! The numbers the app plots: named series of (step, value) points, each in one panel (loss, accuracy, learning
//! rate, gradient norm, throughput).

use std::collections::BTreeMap;

/// Which plot a series belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Panel {
    Loss,
    Accuracy,
    LearningRate,
    GradNorm,
    Throughput,
}

impl Panel {
    pub const ALL: [Panel; 5] = [
        Self::Loss,
        Self::Accuracy,
        Self::LearningRate,
        Self::GradNorm,
        Self::Throughput,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Self::Loss => "loss",
            Self::Accuracy => "accuracy",
            Self::LearningRate => "learning rate",
            Self::GradNorm => "gradient norm",
            Self::Throughput => "images / s",
        }
    }
}

/// Every series, by panel and name.
#[derive(Default, Debug, Clone)]
pub struct Curves {
    pub series: BTreeMap<(Panel, String), Vec<[f64; 2]>>,
}

impl Curves {
    pub fn push(&mut self, panel: Panel, name: &str, x: f64, y: f64) {
        if y.is_finite() {
            self.series
                .entry((panel, name.to_string()))
                .or_default()
                .push([x, y]);
        }
    }

    /// The series of one panel, in name order.
    pub fn of(&self, panel: Panel) -> impl Iterator<Item = (&str, &[[f64; 2]])> {
        self.series
            .iter()
            .filter(move |((p, _), _)| *p == panel)
            .map(|((_, n), v)| (n.as_str(), v.as_slice()))
    }

    /// The last value of a series.
    pub fn last(&self, panel: Panel, name: &str) -> Option<f64> {
        self.series
            .get(&(panel, name.to_string()))
            .and_then(|v| v.last())
            .map(|p| p[1])
    }

    /// Forget every series whose name starts with `prefix` (a phase that starts over).
    pub fn clear_prefix(&mut self, prefix: &str) {
        self.series.retain(|(_, n), _| !n.starts_with(prefix));
    }
}
