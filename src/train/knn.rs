//! The k-nearest-neighbour baseline on pixels: every evaluation image is given the majority label of its k
//! nearest training images (Euclidean distance between the normalised evaluation views, the model's input),
//! ties going to the class of the nearest. What any learned representation should beat.

use crate::data::augment::Augment;
use crate::data::dataset::Dataset;

/// Top-1 accuracy of k-NN on the evaluation views (side `size`, `channels` channels) of `train` and `eval`;
/// `None` when either set has no labels or is empty.
pub fn knn_top1(
    train: &Dataset,
    eval: &Dataset,
    size: u32,
    channels: u32,
    k: usize,
) -> Option<f64> {
    let (train_labels, eval_labels) = (train.labels.as_ref()?, eval.labels.as_ref()?);
    if train.is_empty() || eval.is_empty() {
        return None;
    }
    let view = Augment::beit(size, channels);
    let features = |d: &Dataset| -> Vec<f32> {
        let mut out = Vec::new();
        for img in &d.images {
            view.eval(img, &mut out);
        }
        out
    };
    let (xs, qs) = (features(train), features(eval));
    let dim = xs.len() / train.len();
    let k = k.clamp(1, train.len());
    let classes = train
        .class_names
        .len()
        .max(1 + *train_labels.iter().max()? as usize);
    let mut right = 0usize;
    // (distance, label) of the k nearest so far, nearest first.
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    for (qi, q) in qs.chunks_exact(dim).enumerate() {
        best.clear();
        for (ti, x) in xs.chunks_exact(dim).enumerate() {
            let dist: f32 = q.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum();
            if best.len() < k || dist < best[best.len() - 1].0 {
                let at = best.partition_point(|(d, _)| *d <= dist);
                best.insert(at, (dist, train_labels[ti]));
                best.truncate(k);
            }
        }
        let mut votes = vec![0usize; classes];
        for (_, l) in &best {
            votes[*l as usize] += 1;
        }
        let top = *votes.iter().max().unwrap_or(&0);
        // Ties: the class of the nearest neighbour among the tied ones.
        let pick = best
            .iter()
            .map(|(_, l)| *l)
            .find(|&l| votes[l as usize] == top)
            .unwrap_or(0);
        right += (pick == eval_labels[qi]) as usize;
    }
    Some(right as f64 / eval.len() as f64)
}

#[cfg(test)]
mod tests {
    use crate::data::dataset::{Dataset, Image};

    fn set(points: &[(u8, u32)]) -> Dataset {
        Dataset {
            images: points
                .iter()
                .map(|&(v, _)| Image {
                    width: 2,
                    height: 2,
                    channels: 1,
                    data: vec![v; 4],
                })
                .collect(),
            labels: Some(points.iter().map(|&(_, l)| l).collect()),
            class_names: vec!["dark".into(), "light".into()],
            ..Default::default()
        }
    }

    #[test]
    fn nearest_neighbours_vote() {
        let train = set(&[(0, 0), (10, 0), (20, 0), (230, 1), (240, 1), (250, 1)]);
        let eval = set(&[(5, 0), (245, 1), (200, 1), (30, 1)]);
        // k = 1 and k = 3 both get the first three right and the last (a light-labelled dark image) wrong.
        assert_eq!(super::knn_top1(&train, &eval, 2, 1, 1), Some(0.75));
        assert_eq!(super::knn_top1(&train, &eval, 2, 1, 3), Some(0.75));
    }
}
