//! The GPU defaults as a user meets them, forced on the software driver: pretraining and fine-tuning on a
//! labelled folder of one's own images with the fused attention (`BEITLAB_ATTENTION=fused`) and every product's
//! kernel chosen by timing (`BEITLAB_TUNE=on`); the tuning table is written and a later run takes its choices
//! from it; a table folder that cannot be made is reported and the run goes on.

use super::helpers::{binary, command, image_folder, path, strings, tempdir};
use std::path::Path;

/// `beitlab args` with `env`; it must succeed. Returns stdout.
fn run_with(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = command(dir, binary(), &strings(args))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("$ {env:?} beitlab {}\n{stdout}{stderr}", args.join(" "));
    assert!(out.status.success(), "failed:\n{stderr}");
    stdout
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn own_images_train_with_the_fused_attention_and_tuned_kernels() {
    let dir = tempdir("fused-tuned");
    let data = dir.join("images");
    image_folder(&data, &["t-shirt", "trouser"], 12, 0);
    let table = dir.join("tuning");
    let env = [
        ("BEITLAB_ATTENTION", "fused"),
        ("BEITLAB_TUNE", "on"),
        ("BEITLAB_TUNE_DIR", path(&table)),
    ];
    let run = dir.join("run");
    let pre = run_with(
        &dir,
        &env,
        &[
            "pretrain",
            "--data",
            path(&data),
            "--preset",
            "micro",
            "--steps",
            "3",
            "--tokenizer-steps",
            "3",
            "--batch",
            "8",
            "--json",
            "--out",
            path(&run),
        ],
    );
    let lines = json_lines(&pre);
    assert_eq!(lines.len(), 3, "{pre}");
    assert!(
        lines
            .iter()
            .all(|l| l["loss"].as_f64().is_some_and(f64::is_finite)),
        "{pre}"
    );
    let tables: Vec<_> = std::fs::read_dir(&table).unwrap().flatten().collect();
    assert_eq!(tables.len(), 1, "one tuning table");
    let text = std::fs::read_to_string(tables[0].path()).unwrap();
    assert!(text.contains("\"gemm "), "{text}");

    let ft = dir.join("ft");
    let fine = run_with(
        &dir,
        &env,
        &[
            "finetune",
            "--init",
            path(&run),
            "--data",
            path(&data),
            "--steps",
            "3",
            "--batch",
            "8",
            "--json",
            "--out",
            path(&ft),
        ],
    );
    let steps: Vec<_> = json_lines(&fine)
        .into_iter()
        .filter(|l| l.get("step").is_some())
        .collect();
    assert_eq!(steps.len(), 3, "{fine}");
    assert!(steps
        .iter()
        .all(|l| l["loss"].as_f64().is_some_and(f64::is_finite)));

    // A benchmark of the same model: the fused core ran, and shapes the training timed come from the table.
    let bench = run_with(
        &dir,
        &env,
        &[
            "bench", "train", "--preset", "micro", "--batch", "8", "--steps", "1", "--json",
        ],
    );
    let r: serde_json::Value = serde_json::from_str(bench.trim()).unwrap();
    assert_eq!(r["attention"], "fused", "{r}");
    assert!(r["tuned_from_table"].as_u64().is_some_and(|n| n > 0), "{r}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_tuning_folder_that_cannot_be_made_is_reported_and_the_run_goes_on() {
    let dir = tempdir("tune-bad-dir");
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let inside = blocker.join("tables");
    let env = [("BEITLAB_TUNE", "on"), ("BEITLAB_TUNE_DIR", path(&inside))];
    let out = run_with(
        &dir,
        &env,
        &[
            "bench", "train", "--preset", "micro", "--batch", "2", "--steps", "1",
        ],
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("tuning table: "))
        .unwrap_or_else(|| panic!("no tuning-table line in:\n{out}"));
    assert!(line.contains(path(&blocker)), "{line}");
    assert!(out.contains("kernel choice: tuned"), "{out}");
    std::fs::remove_dir_all(&dir).ok();
}
