//! `beitlab experiment paper` end to end on a small labelled folder: every encoder pretrained, fine-tuned and
//! probed for each seed, the results table with mean ± std per arm, each comparison with its verdict against the
//! seed spread, the k-NN baseline and the plot.

use super::helpers::{image_folder, ok, path, tempdir};

#[test]
fn experiment_paper_scores_every_arm_over_seeds_with_verdicts() {
    let dir = tempdir("experiment-paper");
    let data = dir.join("shop");
    image_folder(&data, &["t-shirt", "trouser", "ankle boot"], 20, 0);
    let out = dir.join("paper");
    let ran = ok(
        &dir,
        &[
            "experiment",
            "paper",
            "--data",
            path(&data),
            "--preset",
            "mini",
            "--tokenizer-steps",
            "2",
            "--pretrain-steps",
            "3",
            "--finetune-steps",
            "3",
            "--batch",
            "8",
            "--probe-images",
            "30",
            "--seeds",
            "2",
            "--out",
            path(&out),
        ],
    );
    let encoders = [
        "BEiT (visual tokens, blockwise masks)",
        "pixel regression (blockwise masks)",
        "random masks (visual tokens)",
        "no pretraining (random init)",
    ];
    for e in encoders {
        assert!(
            ran.stdout.contains(&format!("{e}: linear probe top-1")),
            "{e} was not probed:\n{}",
            ran.stdout
        );
    }
    for seed in ["seed-0", "seed-1"] {
        for arm in ["beit", "pixels", "random-masks"] {
            assert!(
                out.join(seed)
                    .join(arm)
                    .join("checkpoint/model.safetensors")
                    .is_file(),
                "{seed}/{arm} was not pretrained"
            );
        }
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    // One row per encoder with a mean ± std and both seeds' scores, for fine-tuning and for the probe.
    for e in encoders {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {e} |")))
            .unwrap_or_else(|| panic!("no row for {e}:\n{md}"));
        assert_eq!(row.matches('±').count(), 2, "{row}");
        assert_eq!(row.split('|').count(), 7, "{row}");
    }
    assert!(
        md.contains("| 5-nearest-neighbour on pixels (no training) |"),
        "{md}"
    );
    for comparison in [
        "BEiT pretraining vs none",
        "visual tokens vs pixel regression",
        "blockwise vs random masking",
    ] {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {comparison} |")))
            .unwrap_or_else(|| panic!("no row for {comparison}:\n{md}"));
        assert_eq!(row.matches("the seed spread").count(), 2, "{row}");
    }
    assert!(md.contains("--probe-images 30 --seed 0 --seeds 2"), "{md}");
    let plot = image::open(out.join("results.png")).unwrap();
    assert!(plot.height() > 3 * 240, "three panels with their legends");
    std::fs::remove_dir_all(dir).ok();
}
