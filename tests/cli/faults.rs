//! Faults and absurd options through the binary: settings that cannot train are refused before anything runs;
//! a run folder is held by one process and never written over without `--overwrite`; weights that are not
//! finite are never saved; a GPU error or a lost device ends training with a message and the last checkpoint
//! intact; a process ended at any point of a save (fault injection) resumes to the uninterrupted run's weights.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::helpers::{binary, command, fails, image_folder, ok, path, spawn, strings, tempdir};

/// Run `beitlab args` (with `env` set) to its end, failing the test if it runs longer than `limit`: a fault
/// must end a run, never hang it. Returns (exit code, stderr).
fn run_bounded(dir: &Path, args: &[&str], env: &[(&str, &str)], limit: Duration) -> (i32, String) {
    let mut c = command(dir, binary(), &strings(args));
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            eprintln!("$ beitlab {} ({env:?})\n{err}", args.join(" "));
            return (status.code().unwrap_or(-1), err);
        }
        if t0.elapsed() > limit {
            child.kill().ok();
            panic!("`beitlab {}` with {env:?} hung", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small labelled folder and the arguments of a short pretraining run into `out`.
fn pretrain_args(data: &Path, out: &Path, steps: u32, every: u32) -> Vec<String> {
    strings(&[
        "pretrain",
        "--data",
        path(data),
        "--steps",
        &steps.to_string(),
        "--batch",
        "8",
        "--checkpoint-every",
        &every.to_string(),
        "--tokenizer-steps",
        "2",
        "--out",
        path(out),
    ])
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn weights(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("checkpoint/model.safetensors")).unwrap()
}

fn saved_step(run: &Path) -> i64 {
    let st = beitlab::tensorfile::read(&run.join("checkpoint/training_state.safetensors")).unwrap();
    st["step"].to_i64().unwrap()[0]
}

#[test]
fn options_that_cannot_train_are_refused_before_anything_runs() {
    let dir = tempdir("bad-options");
    let cases: [(&[&str], &str); 9] = [
        (&["pretrain", "--batch", "0"], "--batch"),
        (&["pretrain", "--steps", "0"], "--steps"),
        (&["pretrain", "--lr", "NaN"], "--lr"),
        (&["pretrain", "--lr", "inf"], "--lr"),
        (&["finetune", "--scratch", "--lr=-1"], "--lr"),
        (&["pretrain", "--mask-ratio", "0"], "--mask-ratio"),
        (&["pretrain", "--mask-ratio", "1"], "--mask-ratio"),
        (&["tokenizer", "train", "--batch", "0"], "--batch"),
        (
            &["finetune", "--scratch", "--label-smoothing", "1.5"],
            "--label-smoothing",
        ),
    ];
    for (args, option) in cases {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--out", "run"]);
        let (code, err) = run_bounded(&dir, &all, &[], Duration::from_secs(60));
        assert_ne!(code, 0, "{all:?} was accepted");
        let first = err.lines().next().unwrap_or("");
        assert!(
            first.starts_with("error: ") && first.contains(option),
            "{all:?}: the error should name {option}: {err}"
        );
        assert!(!dir.join("run").exists(), "{all:?} wrote its run folder");
    }
    // A view name the app does not have lists the ones it has.
    let (code, err) = run_bounded(
        &dir,
        &["app", "--view", "visual"],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "the views are mim, tokens, codebook, attention, paint, segment, compare, curves, status, data"
        ),
        "{err}"
    );
    let (code, err) = run_bounded(
        &dir,
        &["app", "--lesson", "9"],
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the lesson has chapters 1 to 6"), "{err}");
    // Nothing to resume.
    let e = fails(&dir, &["pretrain", "--resume", "nowhere"]);
    assert!(
        e.contains("does not exist: there is no run to resume"),
        "{e}"
    );
    std::fs::create_dir_all(dir.join("never-saved")).unwrap();
    let e = fails(&dir, &["finetune", "--resume", "never-saved"]);
    assert!(e.contains("holds no complete checkpoint to resume"), "{e}");
    // The experiment checks its labels before it pretrains anything.
    let flat = dir.join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    image::GrayImage::from_pixel(28, 28, image::Luma([90]))
        .save(flat.join("a.png"))
        .unwrap();
    let e = fails(
        &dir,
        &[
            "experiment",
            "pretrain-vs-scratch",
            "--data",
            path(&flat),
            "--out",
            "ex",
        ],
    );
    assert!(e.contains("has no labels"), "{e}");
    assert!(
        !dir.join("ex/pretrain").exists(),
        "pretrained before checking labels"
    );
    // One class cannot be fine-tuned: refused before the run folder is touched.
    let one = dir.join("one-class");
    image_folder(&one, &["shirts"], 4, 0);
    let e = fails(
        &dir,
        &["finetune", "--scratch", "--data", path(&one), "--out", "ft"],
    );
    assert!(e.contains("has only one class (shirts)"), "{e}");
    assert!(!dir.join("ft/finetune.json").exists());
    // A checked image size: not a multiple of the patch size.
    let e = fails(
        &dir,
        &[
            "bench",
            "train",
            "--preset",
            "micro",
            "--image-size",
            "30",
            "--batch",
            "2",
            "--steps",
            "1",
        ],
    );
    assert!(
        e.contains("image_size 30 is not divisible by patch_size"),
        "{e}"
    );
    // A preset too large for the adapter: its limit named, no allocation tried.
    let e = fails(
        &dir,
        &[
            "pretrain", "--preset", "base", "--batch", "100000", "--out", "huge",
        ],
    );
    assert!(
        e.contains("max_storage_buffer_binding_size") || e.contains("max_buffer_size"),
        "{e}"
    );
    assert!(!dir.join("huge").join("checkpoint").exists());
}

#[test]
fn a_run_folder_is_held_by_one_process_and_replaced_only_with_overwrite() {
    let dir = tempdir("run-folder");
    let data = dir.join("images");
    image_folder(&data, &["a", "b"], 8, 0);
    let run = dir.join("run");
    ok(&dir, &refs(&pretrain_args(&data, &run, 2, 0)));
    let metrics = std::fs::read(run.join("metrics.jsonl")).unwrap();
    let before = weights(&run);

    // A new run into the folder: refused, nothing touched.
    let e = fails(&dir, &refs(&pretrain_args(&data, &run, 2, 0)));
    assert!(
        e.contains("already holds a run") && e.contains("--overwrite"),
        "{e}"
    );
    // With --overwrite but data that cannot load: refused before anything is removed.
    let mut bad = pretrain_args(&dir.join("no-such-folder"), &run, 2, 0);
    bad.push("--overwrite".into());
    let e = fails(&dir, &refs(&bad));
    assert!(e.contains("no-such-folder"), "{e}");
    assert_eq!(std::fs::read(run.join("metrics.jsonl")).unwrap(), metrics);
    assert_eq!(weights(&run), before);

    // A second process while the first is training: refused, for a new run and for a resume.
    let mut long = pretrain_args(&data, &run, 100000, 0);
    long.push("--overwrite".into());
    let mut first = spawn(&dir, &refs(&long));
    let t0 = Instant::now();
    while !std::fs::read_to_string(run.join(".beitlab.lock"))
        .unwrap_or_default()
        .contains(&first.id().to_string())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the first run never took the folder"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = fails(&dir, &refs(&long));
    assert!(
        e.contains("being written by another beitlab process"),
        "{e}"
    );
    let e = fails(&dir, &["pretrain", "--resume", path(&run)]);
    assert!(
        e.contains("being written by another beitlab process"),
        "{e}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // Once the holder is gone (killed, so it never cleaned up), the folder can be taken again.
    let mut again = pretrain_args(&data, &run, 2, 0);
    again.push("--overwrite".into());
    ok(&dir, &refs(&again));
    assert_eq!(
        weights(&run),
        before,
        "the same seed retrains to the same weights"
    );
}

#[test]
fn weights_that_are_not_finite_are_never_saved() {
    let dir = tempdir("not-finite");
    let data = dir.join("images");
    image_folder(&data, &["a", "b"], 8, 0);
    // The loss of step 1 is finite (it is computed before the update); the update makes the weights infinite.
    let mut args = pretrain_args(&data, &dir.join("run"), 1, 0);
    args.extend(strings(&["--lr", "3.4e38"]));
    let e = fails(&dir, &refs(&args));
    assert!(e.contains("are not finite") && e.contains("beit."), "{e}");
    assert!(
        !dir.join("run/checkpoint").exists(),
        "infinite weights were saved"
    );
}

#[test]
fn gpu_errors_and_device_loss_end_training_with_the_checkpoint_intact() {
    let dir = tempdir("gpu-faults");
    let data = dir.join("images");
    image_folder(&data, &["a", "b"], 8, 0);
    let whole = dir.join("whole");
    ok(&dir, &refs(&pretrain_args(&data, &whole, 10, 2)));
    for fault in ["gpu-error:6", "lose-device:6"] {
        let run = dir.join(fault.replace(':', "-"));
        let args = pretrain_args(&data, &run, 10, 2);
        let (code, err) = run_bounded(
            &dir,
            &refs(&args),
            &[("BEITLAB_FAULT", fault)],
            Duration::from_secs(120),
        );
        assert_eq!(code, 1, "{fault}: {err}");
        let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or("");
        assert!(
            line.contains("the last checkpoint is kept")
                && (line.contains("Validation") || line.contains("lost")),
            "{fault}: {err}"
        );
        assert_eq!(
            saved_step(&run),
            4,
            "{fault}: the last checkpoint before the fault"
        );
        ok(&dir, &["pretrain", "--resume", path(&run), "--steps", "10"]);
        assert!(
            weights(&run) == weights(&whole),
            "{fault}: resumed weights differ"
        );
    }
}

#[test]
fn a_run_ended_inside_a_checkpoint_save_resumes_to_the_uninterrupted_weights() {
    let dir = tempdir("kill-in-save");
    let data = dir.join("images");
    image_folder(&data, &["a", "b"], 8, 0);
    let whole = dir.join("whole");
    ok(&dir, &refs(&pretrain_args(&data, &whole, 12, 3)));
    // model:2 the model file half written in the 2nd save; state:2 before its training state; swap:1 the
    // first save between its renames (no previous checkpoint); swap:3 the 3rd save between its renames.
    for (fault, resumes_from) in [("model:2", 3), ("state:2", 3), ("swap:1", 3), ("swap:3", 9)] {
        let run = dir.join(fault.replace(':', "-"));
        let (code, err) = run_bounded(
            &dir,
            &refs(&pretrain_args(&data, &run, 12, 3)),
            &[("BEITLAB_FAULT", fault)],
            Duration::from_secs(120),
        );
        assert_eq!(code, 137, "{fault} should end the process: {err}");
        // What --resume will find: the last complete checkpoint (a cut-off swap finished or undone).
        beitlab::train::checkpoint::recover(&run.join("checkpoint")).unwrap();
        assert_eq!(
            saved_step(&run),
            resumes_from,
            "{fault}: the last complete checkpoint"
        );
        let resumed = ok(&dir, &["pretrain", "--resume", path(&run), "--steps", "12"]);
        assert!(
            resumed.stdout.contains("pretrained 12 steps"),
            "{}",
            resumed.stdout
        );
        assert_eq!(saved_step(&run), 12);
        assert!(
            weights(&run) == weights(&whole),
            "{fault}: the resumed run's weights differ from the uninterrupted run's"
        );
        assert!(
            !run.join(".checkpoint.saving").exists() && !run.join(".checkpoint.previous").exists()
        );
    }
}

#[test]
fn a_long_run_stays_flat_in_memory() {
    let dir = tempdir("soak");
    let out = ok(
        &dir,
        &[
            "bench", "soak", "--steps", "400", "--warmup", "50", "--json",
        ],
    );
    let r: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(r["grew"], serde_json::json!([]), "{r}");
    let samples = r["samples"].as_array().unwrap();
    assert!(samples.len() >= 15, "{r}");
    for key in [
        "gpu_buffer_bytes",
        "wgpu_bind_groups",
        "wgpu_command_encoders",
    ] {
        let first = &samples[0][key];
        assert!(
            samples.iter().all(|s| s[key].as_i64() <= first.as_i64()),
            "{key} grew: {r}"
        );
    }
    assert!(r["final_loss"].as_f64().unwrap().is_finite());
}

#[test]
fn a_run_killed_again_and_again_ends_with_the_uninterrupted_weights() {
    let dir = tempdir("kill-again");
    let data = dir.join("images");
    image_folder(&data, &["a", "b"], 8, 0);
    let whole = dir.join("whole");
    ok(&dir, &refs(&pretrain_args(&data, &whole, 40, 2)));
    let run = dir.join("run");
    // Each round starts the run (or resumes it), waits until it has saved a newer checkpoint than the last
    // round saw, then SIGKILLs it a few milliseconds later: in a step, between steps or inside the next save.
    let step_now = |run: &Path| -> i64 {
        let _ = beitlab::train::checkpoint::recover(&run.join("checkpoint"));
        if run.join("checkpoint/training_state.safetensors").is_file() {
            saved_step(run)
        } else {
            0
        }
    };
    let mut killed_after = Vec::new();
    for delay_ms in [0u64, 7, 3, 19, 11, 29] {
        let before = step_now(&run);
        let args = if before > 0 {
            strings(&["pretrain", "--resume", path(&run), "--steps", "40"])
        } else {
            let mut a = pretrain_args(&data, &run, 40, 2);
            a.push("--overwrite".into());
            a
        };
        let mut child = spawn(&dir, &refs(&args));
        let t0 = Instant::now();
        let state = run.join("checkpoint/training_state.safetensors");
        loop {
            assert!(t0.elapsed() < Duration::from_secs(120), "no new checkpoint");
            if child.try_wait().unwrap().is_some() {
                break; // finished before it could be killed
            }
            let newer = std::fs::read(&state)
                .ok()
                .and_then(|b| beitlab::tensorfile::parse(&state, &b).ok())
                .map(|t| t["step"].to_i64().unwrap()[0])
                .is_some_and(|s| s > before);
            if newer {
                std::thread::sleep(Duration::from_millis(delay_ms));
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        killed_after.push(step_now(&run));
    }
    eprintln!("the last complete checkpoint after each kill: {killed_after:?}");
    assert!(
        killed_after.iter().filter(|&&s| s < 40).count() >= 4,
        "{killed_after:?}"
    );
    ok(&dir, &["pretrain", "--resume", path(&run), "--steps", "40"]);
    assert_eq!(saved_step(&run), 40);
    assert!(
        weights(&run) == weights(&whole),
        "killed six times (last complete checkpoint after each kill: {killed_after:?}), the weights differ"
    );
}
