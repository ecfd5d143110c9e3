//! `--precision mixed` as a user types it: where the adapter cannot run mixed precision's kernels the run is
//! f32 and says so (lavapipe has no f16 cooperative matrices); `BEITLAB_MIXED=emulate` runs the mixed numerics
//! with emulated f16-input products, reports the loss scale per step, and a resumed run keeps the precision it
//! was started with; an unknown precision is refused with the choices.

use super::helpers::{binary, command, image_folder, ok, path, strings, tempdir};

fn emulated(dir: &std::path::Path, args: &[&str]) -> String {
    let out = command(dir, binary(), &strings(args))
        .env("BEITLAB_MIXED", "emulate")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "$ BEITLAB_MIXED=emulate beitlab {}\n{stdout}{stderr}",
        args.join(" ")
    );
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
fn mixed_precision_falls_back_to_f32_with_a_note_and_runs_emulated_when_asked() {
    let dir = tempdir("precision");
    let bench = [
        "bench",
        "train",
        "--preset",
        "micro",
        "--batch",
        "2",
        "--steps",
        "1",
        "--precision",
        "mixed",
        "--json",
    ];
    let ran = ok(&dir, &bench);
    let r: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap();
    assert_eq!(r["precision"], "f32", "{r}");
    assert!(
        ran.stderr
            .contains("mixed precision requested but this run is f32"),
        "{}",
        ran.stderr
    );
    let r: serde_json::Value = serde_json::from_str(emulated(&dir, &bench).trim()).unwrap();
    assert_eq!(r["precision"], "mixed", "{r}");

    // Pretraining on a labelled folder of one's own images in emulated mixed precision: every step carries its
    // loss scale; a resume stays mixed; fine-tuning on the same folder runs mixed too.
    let data = dir.join("images");
    image_folder(&data, &["t-shirt", "trouser"], 12, 0);
    let run = dir.join("run");
    let pretrain = [
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
        "--precision",
        "mixed",
        "--json",
        "--out",
        path(&run),
    ];
    let lines = json_lines(&emulated(&dir, &pretrain));
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert_eq!(l["loss_scale"], 65536.0, "{l}");
        assert_eq!(l["skipped"], false, "{l}");
    }
    let settings = std::fs::read_to_string(run.join("run.json")).unwrap();
    assert!(settings.contains("\"precision\": \"mixed\""), "{settings}");
    let resumed = emulated(
        &dir,
        &["pretrain", "--resume", path(&run), "--steps", "5", "--json"],
    );
    assert!(resumed.contains(", mixed, on "), "{resumed}");
    let later = json_lines(&resumed);
    assert_eq!(later.len(), 2);
    assert!(later.iter().all(|l| l["loss_scale"] == 65536.0));
    let ft = dir.join("ft");
    let fine = emulated(
        &dir,
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
            "--precision",
            "mixed",
            "--json",
            "--out",
            path(&ft),
        ],
    );
    // Step lines (the evaluation's line follows them).
    let steps: Vec<_> = json_lines(&fine)
        .into_iter()
        .filter(|l| l.get("step").is_some())
        .collect();
    assert_eq!(steps.len(), 3, "{fine}");
    for l in &steps {
        assert_eq!(l["loss_scale"], 65536.0, "{l}");
        assert_eq!(l["skipped"], false, "{l}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_unknown_precision_is_refused_with_the_choices() {
    let dir = tempdir("precision-bad");
    for cmd in [&["bench", "train"][..], &["pretrain"], &["finetune"]] {
        let mut args = strings(cmd);
        args.extend(strings(&["--precision", "f16"]));
        let out = command(&dir, binary(), &args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A usage error: clap's exit status 2, one line naming the value and the choices; nothing written.
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("unknown precision \"f16\"; use f32 or mixed"),
            "{stderr}"
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }
    std::fs::remove_dir_all(&dir).ok();
}
