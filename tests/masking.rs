//! BEiT blockwise masking statistics over 10,000 masks, against what the official generator gives
//! (measured there: 14 x 14 / 75 / 16 -> mean 74.48 masked, 67% exactly 75, corners ~4%, centre ~71%;
//! 8 x 8 / 26 / 4 -> mean 25.96, 96% exactly 26), plus random masking.

use beitlab::data::masking::{random_mask, BlockMasking};
use beitlab::rng::Rng;

struct Stats {
    mean: f64,
    exact: f64,
    max: u32,
    freq: Vec<f64>,
    min_block_area: u32,
    mean_block_area: f64,
}

fn stats(gen: &BlockMasking, count: usize, seed: u64) -> Stats {
    let mut rng = Rng::new(seed);
    let n = (gen.grid_h * gen.grid_w) as usize;
    let (mut total, mut exact, mut max) = (0u64, 0usize, 0u32);
    let mut freq = vec![0.0; n];
    let (mut min_area, mut areas, mut blocks) = (u32::MAX, 0u64, 0u64);
    for _ in 0..count {
        let (mask, bl) = gen.generate_with_blocks(&mut rng);
        let c = mask.iter().map(|&v| v as u32).sum::<u32>();
        assert_eq!(
            c,
            bl.iter().map(|b| b.added).sum::<u32>(),
            "blocks account for every masked patch"
        );
        total += c as u64;
        exact += (c == gen.num_masking_patches) as usize;
        max = max.max(c);
        for (f, &m) in freq.iter_mut().zip(&mask) {
            *f += m as f64;
        }
        let mut remaining = gen.num_masking_patches;
        for b in &bl {
            assert!(
                b.added > 0
                    && b.added <= remaining
                    && b.top + b.height <= gen.grid_h
                    && b.left + b.width <= gen.grid_w
            );
            // While the remaining budget allows a full block, the target area is at least min_num_patches;
            // at the end of a mask the target is drawn from [remaining, min] and blocks get small, as officially.
            if remaining >= gen.min_num_patches {
                min_area = min_area.min(b.height * b.width);
                areas += (b.height * b.width) as u64;
                blocks += 1;
            }
            remaining -= b.added;
        }
    }
    freq.iter_mut().for_each(|f| *f /= count as f64);
    Stats {
        mean: total as f64 / count as f64,
        exact: exact as f64 / count as f64,
        max,
        freq,
        min_block_area: min_area,
        mean_block_area: areas as f64 / blocks as f64,
    }
}

#[test]
fn blockwise_masking_at_224_matches_the_official_statistics() {
    let gen = BlockMasking::beit_224();
    let s = stats(&gen, 10_000, 1);
    eprintln!(
        "14x14/75/16: mean {:.3}, exactly 75 {:.1}%, corner {:.1}%, centre {:.1}%, min block {}, mean block {:.1}",
        s.mean,
        100.0 * s.exact,
        100.0 * s.freq[0],
        100.0 * s.freq[7 * 14 + 7],
        s.min_block_area,
        s.mean_block_area
    );
    assert!(s.max <= 75, "a mask never exceeds its budget");
    assert!((74.3..74.7).contains(&s.mean), "mean {}", s.mean);
    assert!((0.62..0.72).contains(&s.exact), "exactly 75 in {}", s.exact);
    let corners = [0, 13, 13 * 14, 14 * 14 - 1]
        .iter()
        .map(|&i| s.freq[i])
        .sum::<f64>()
        / 4.0;
    let centre = [6 * 14 + 6, 6 * 14 + 7, 7 * 14 + 6, 7 * 14 + 7]
        .iter()
        .map(|&i| s.freq[i])
        .sum::<f64>()
        / 4.0;
    assert!(
        corners < 0.08 && centre > 0.62,
        "corners {corners}, centre {centre}: blockwise masking is centre-biased"
    );
    // Target areas are at least 16; rounding h and w can shrink a rectangle to 2 x 6 = 12, never less.
    assert!(
        s.min_block_area >= 12,
        "smallest block {}",
        s.min_block_area
    );
    assert!(
        s.mean_block_area >= 16.0,
        "mean block area {}",
        s.mean_block_area
    );
}

#[test]
fn blockwise_masking_on_a_small_grid() {
    let gen = BlockMasking::new(8, 8, 26, 4, 0.3, None);
    let s = stats(&gen, 10_000, 2);
    assert!(s.max <= 26);
    assert!((25.85..26.0).contains(&s.mean), "mean {}", s.mean);
    assert!(s.exact > 0.93, "exactly 26 in {}", s.exact);
}

#[test]
fn scaled_defaults_and_validation() {
    let g = BlockMasking::scaled(4);
    assert_eq!((g.num_masking_patches, g.min_num_patches), (6, 1));
    assert!(g.validate().is_ok());
    let bad = BlockMasking::new(4, 4, 17, 2, 0.3, None);
    assert_eq!(
        bad.validate().unwrap_err(),
        "cannot mask 17 patches of a 4 x 4 grid"
    );
    assert!(BlockMasking::new(4, 4, 5, 0, 0.3, None).validate().is_err());
}

#[test]
fn random_masking_masks_exactly_the_count_uniformly() {
    let mut rng = Rng::new(3);
    let mut freq = vec![0u32; 196];
    for _ in 0..5000 {
        let m = random_mask(196, 75, &mut rng);
        assert_eq!(m.iter().map(|&v| v as u32).sum::<u32>(), 75);
        for (f, v) in freq.iter_mut().zip(m) {
            *f += v as u32;
        }
    }
    let (lo, hi) = (*freq.iter().min().unwrap(), *freq.iter().max().unwrap());
    // Each patch is masked with probability 75/196 = 0.383: 1913 of 5000 expected, ±~5 sd.
    assert!(lo > 1750 && hi < 2080, "{lo}..{hi}");
}

#[test]
fn same_seed_same_masks() {
    let g = BlockMasking::beit_224();
    let a: Vec<Vec<u8>> = (0..5)
        .scan(Rng::new(9), |r, _| Some(g.generate(r)))
        .collect();
    let b: Vec<Vec<u8>> = (0..5)
        .scan(Rng::new(9), |r, _| Some(g.generate(r)))
        .collect();
    assert_eq!(a, b);
}
