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
        if x.is_finite() && y.is_finite() {
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

/// The points of `points` worth drawing on `columns` pixel columns spanning x in `[lo, hi]`: each column keeps its
/// first and last point in x and its lowest and highest in y, in x order, so a line through them covers the same
/// pixels as one through every point, and the nearest point on each side outside the range is kept so the line
/// enters and leaves the plot. A series of at most four points a column is returned whole. A series runs forward
/// in x (a run's steps); the points of one that does not come back in x order, and points whose x is not finite
/// are left out. One pass over `points`; at most `4 * columns + 2` points come back.
pub fn decimate(points: &[[f64; 2]], lo: f64, hi: f64, columns: usize) -> Vec<[f64; 2]> {
    let columns = columns.max(1);
    if points.len() <= 4 * columns || hi <= lo || !(hi - lo).is_finite() {
        return points.to_vec();
    }
    let column_of = |x: f64| (((x - lo) * (columns as f64 / (hi - lo))) as usize).min(columns - 1);
    if points.is_sorted_by(|a, b| a[0] <= b[0]) {
        decimate_sorted(points, lo, hi, columns, column_of)
    } else {
        decimate_any(points, lo, hi, columns, column_of)
    }
}

/// [`decimate`] for points in x order (a training run's series): one streaming pass, column by column.
fn decimate_sorted(
    points: &[[f64; 2]],
    lo: f64,
    hi: f64,
    columns: usize,
    column_of: impl Fn(f64) -> usize,
) -> Vec<[f64; 2]> {
    let start = points.partition_point(|p| p[0] < lo);
    let end = points.partition_point(|p| p[0] <= hi);
    let mut kept = Vec::with_capacity(4 * columns + 2);
    if start > 0 {
        kept.push(points[start - 1]);
    }
    let mut i = start;
    while i < end {
        // One column's run: its first point, then the lowest and highest until the column changes.
        let column = column_of(points[i][0]);
        let first = i;
        let (mut low, mut high) = (i, i);
        let (mut low_y, mut high_y) = (points[i][1], points[i][1]);
        i += 1;
        while i < end && column_of(points[i][0]) == column {
            let y = points[i][1];
            if y < low_y {
                (low, low_y) = (i, y);
            }
            if y > high_y {
                (high, high_y) = (i, y);
            }
            i += 1;
        }
        push_column(&mut kept, points, [first, i - 1, low, high]);
    }
    if end < points.len() {
        kept.push(points[end]);
    }
    kept
}

/// [`decimate`] for points in any order: one pass keeping each column's four points by index.
fn decimate_any(
    points: &[[f64; 2]],
    lo: f64,
    hi: f64,
    columns: usize,
    column_of: impl Fn(f64) -> usize,
) -> Vec<[f64; 2]> {
    // Per column, indices into `points`: [first in x, last in x, lowest y, highest y].
    let mut kept_of: Vec<Option<[usize; 4]>> = vec![None; columns];
    let mut before: Option<usize> = None;
    let mut after: Option<usize> = None;
    let x = |i: usize| points[i][0];
    let y = |i: usize| points[i][1];
    for (i, &[xi, yi]) in points.iter().enumerate() {
        if !xi.is_finite() {
            continue;
        }
        if xi < lo {
            if before.is_none_or(|b| x(b) < xi) {
                before = Some(i);
            }
        } else if xi > hi {
            if after.is_none_or(|a| x(a) > xi) {
                after = Some(i);
            }
        } else {
            let column = column_of(xi);
            kept_of[column] = Some(match kept_of[column] {
                None => [i; 4],
                Some([first, last, low, high]) => [
                    if xi < x(first) { i } else { first },
                    if xi >= x(last) { i } else { last },
                    if yi < y(low) { i } else { low },
                    if yi > y(high) { i } else { high },
                ],
            });
        }
    }
    let mut kept = Vec::with_capacity(4 * columns + 2);
    kept.extend(before.map(|b| points[b]));
    for four in kept_of.into_iter().flatten() {
        push_column(&mut kept, points, four);
    }
    kept.extend(after.map(|a| points[a]));
    kept
}

/// Append one column's kept points (indices into `points`, possibly repeated) in x order, each once.
fn push_column(kept: &mut Vec<[f64; 2]>, points: &[[f64; 2]], mut four: [usize; 4]) {
    four.sort_by(|&a, &b| points[a][0].total_cmp(&points[b][0]).then(a.cmp(&b)));
    let mut previous = None;
    for i in four {
        if previous != Some(i) {
            kept.push(points[i]);
        }
        previous = Some(i);
    }
}

#[cfg(test)]
mod tests {
    use super::{decimate, decimate_any};

    /// A zigzag of `n` points with a spike: the case where dropping points changes the picture.
    fn zigzag(n: usize) -> Vec<[f64; 2]> {
        (0..n)
            .map(|i| {
                let y = if i == n / 3 { 50.0 } else { (i % 7) as f64 };
                [i as f64, y]
            })
            .collect()
    }

    #[test]
    fn short_series_are_drawn_whole() {
        let points = zigzag(40);
        assert_eq!(decimate(&points, 0.0, 39.0, 10), points);
    }

    #[test]
    fn each_column_keeps_its_first_last_lowest_and_highest_points() {
        let points = zigzag(100_003);
        let columns = 300;
        let kept = decimate(&points, 0.0, 100_002.0, columns);
        assert!(kept.len() <= 4 * columns + 2, "{} points kept", kept.len());
        assert!(
            kept.windows(2).all(|w| w[0][0] < w[1][0]),
            "kept points out of x order"
        );
        assert_eq!(kept.first(), points.first());
        assert_eq!(kept.last(), points.last());
        assert!(kept.iter().any(|p| p[1] == 50.0), "the spike was dropped");
        // Every column's range of y is the same as the full series' there.
        let width = 100_002.0 / columns as f64;
        for c in 0..columns {
            let range = |pts: &[[f64; 2]]| {
                pts.iter()
                    .filter(|p| ((p[0] / width) as usize).min(columns - 1) == c)
                    .fold((f64::MAX, f64::MIN), |(lo, hi), p| {
                        (lo.min(p[1]), hi.max(p[1]))
                    })
            };
            assert_eq!(range(&kept), range(&points), "column {c}");
        }
    }

    #[test]
    fn a_zoomed_range_keeps_one_point_on_each_side_outside_it() {
        let points = zigzag(10_000);
        let kept = decimate(&points, 2_000.5, 2_100.5, 5);
        assert_eq!(kept.first(), Some(&points[2_000]));
        assert_eq!(kept.last(), Some(&points[2_101]));
        assert!(kept[1..kept.len() - 1]
            .iter()
            .all(|p| (2_000.5..=2_100.5).contains(&p[0])));
    }

    #[test]
    fn sorted_and_unsorted_paths_agree() {
        let points = zigzag(54_321);
        for (lo, hi, columns) in [
            (0.0, 54_320.0, 97),
            (1_000.25, 30_000.75, 64),
            (-5.0, 9.0e5, 3),
        ] {
            let column_of =
                |x: f64| (((x - lo) * (columns as f64 / (hi - lo))) as usize).min(columns - 1);
            assert_eq!(
                decimate(&points, lo, hi, columns),
                decimate_any(&points, lo, hi, columns, column_of),
                "lo {lo} hi {hi} columns {columns}"
            );
        }
    }

    #[test]
    fn points_without_a_finite_x_are_left_out() {
        let mut points = zigzag(1_000);
        points[0][0] = f64::NAN;
        points[500][0] = f64::INFINITY;
        let kept = decimate(&points, 1.0, 999.0, 10);
        assert!(kept.iter().all(|p| p[0].is_finite()));
        assert!(kept.windows(2).all(|w| w[0][0] < w[1][0]));
        assert_eq!(kept.first(), Some(&points[1]));
        assert_eq!(kept.last(), Some(&points[999]));
    }

    #[test]
    fn unsorted_points_come_back_in_x_order() {
        let mut points = zigzag(1_000);
        points.reverse();
        let kept = decimate(&points, 0.0, 999.0, 10);
        assert!(kept.windows(2).all(|w| w[0][0] < w[1][0]));
        assert_eq!(kept.first(), Some(&[0.0, 0.0]));
        assert_eq!(kept.last(), Some(&points[0]));
    }
}
