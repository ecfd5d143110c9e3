//! One's own labelled image folder (and IDX files) from the command line: pretrain, fine-tune, evaluate with
//! per-class accuracy by name, an explicit validation folder, a linear probe, a resume after SIGKILL that
//! equals the uninterrupted run, and the result loaded in the app (headless).

use std::path::Path;
use std::time::{Duration, Instant};

use super::helpers::{fails, image_folder, ok, path, spawn, tempdir};

const CLASSES: [&str; 3] = ["t-shirt", "trouser", "ankle boot"];

#[test]
fn own_labelled_folder_pretrain_finetune_eval_and_app() {
    let dir = tempdir("own-data");
    let data = dir.join("my photos");
    image_folder(&data, &CLASSES, 20, 0);
    let (run, ft) = (dir.join("run"), dir.join("ft"));

    let pre = ok(
        &dir,
        &[
            "pretrain",
            "--data",
            path(&data),
            "--preset",
            "micro",
            "--steps",
            "4",
            "--tokenizer-steps",
            "5",
            "--batch",
            "8",
            "--out",
            path(&run),
        ],
    );
    assert!(
        pre.stdout.contains("training one first (5 steps)"),
        "{}",
        pre.stdout
    );
    assert!(
        pre.stdout.contains("tokenizer: about"),
        "no time estimate:\n{}",
        pre.stdout
    );
    assert!(
        pre.stdout.contains("--tokenizer-steps N"),
        "no hint to shorten it"
    );
    // 20 images per class: the 10th and 20th of each are held out.
    assert!(
        pre.stdout.contains("54 training images from")
            && pre.stdout.contains("6 validation images"),
        "{}",
        pre.stdout
    );
    assert!(run.join("checkpoint/model.safetensors").is_file());

    let fine = ok(
        &dir,
        &[
            "finetune",
            "--init",
            path(&run),
            "--data",
            path(&data),
            "--steps",
            "6",
            "--batch",
            "8",
            "--out",
            path(&ft),
        ],
    );
    assert!(
        fine.stdout
            .contains("(3 classes: ankle boot, t-shirt, trouser)"),
        "class names from the folders:\n{}",
        fine.stdout
    );
    assert!(
        fine.stdout.contains("every 10th image of each class"),
        "{}",
        fine.stdout
    );
    assert!(fine.stdout.contains("top-1 accuracy on"), "{}", fine.stdout);

    // Evaluation on a folder holding two of the classes, in another order: matched by name.
    let test = dir.join("test");
    image_folder(&test, &CLASSES[..2], 7, 30);
    let eval = ok(&dir, &["eval", "--model", path(&ft), "--data", path(&test)]);
    for name in ["t-shirt", "trouser"] {
        assert!(
            eval.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(name) && l.contains("of 7)")),
            "per-class accuracy of {name}:\n{}",
            eval.stdout
        );
    }
    let json = ok(
        &dir,
        &[
            "eval",
            "--model",
            path(&ft),
            "--data",
            path(&test),
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    let per_class = v["per_class_accuracy"].as_object().unwrap();
    assert_eq!(
        per_class.keys().collect::<Vec<_>>(),
        ["t-shirt", "trouser"],
        "{v}"
    );
    assert_eq!(v["images"], 14);

    // A folder with a class the model never saw is refused, naming it.
    let other = dir.join("other");
    image_folder(&other, &["t-shirt", "pullover"], 3, 0);
    let err = fails(
        &dir,
        &["eval", "--model", path(&ft), "--data", path(&other)],
    );
    assert!(err.contains("\"pullover\""), "{err}");

    // An explicit validation folder; a linear probe on the folder.
    let val = ok(
        &dir,
        &[
            "finetune",
            "--scratch",
            "--data",
            path(&data),
            "--val-data",
            path(&test),
            "--steps",
            "2",
            "--batch",
            "8",
            "--out",
            path(&dir.join("ft-val")),
        ],
    );
    assert!(
        val.stdout
            .contains(&format!("60 training images from {}", data.display()))
            && val
                .stdout
                .contains(&format!("14 validation images from {}", test.display())),
        "{}",
        val.stdout
    );
    let probe = ok(
        &dir,
        &[
            "linprobe",
            "--init",
            path(&run),
            "--data",
            path(&data),
            "--epochs",
            "3",
        ],
    );
    assert!(
        probe.stdout.contains("validation top-1"),
        "{}",
        probe.stdout
    );

    // An unlabelled folder cannot be fine-tuned on, and the message says what a labelled one looks like.
    let flat = dir.join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    for f in std::fs::read_dir(data.join("trouser")).unwrap().take(4) {
        let f = f.unwrap().path();
        std::fs::copy(&f, flat.join(f.file_name().unwrap())).unwrap();
    }
    let err = fails(
        &dir,
        &[
            "finetune",
            "--scratch",
            "--data",
            path(&flat),
            "--out",
            path(&dir.join("x")),
        ],
    );
    assert!(
        err.contains("has no labels") && err.contains("one sub-folder per class"),
        "{err}"
    );

    app_loads(&run, &ft);
}

/// The app (headless) loads both run folders through its Data & checkpoints view.
fn app_loads(run: &Path, ft: &Path) {
    use beitlab::app::settings::Settings;
    use beitlab::app::{BeitApp, View};
    use beitlab::gpu::{ErrorPolicy, GpuContext, Requirements};
    use egui_kittest::kittest::Queryable;
    let ctx = GpuContext::new_headless_blocking(
        &Requirements::kernels().with_buffer_bytes(64 << 20),
        ErrorPolicy::Panic,
    )
    .unwrap();
    let settings = Settings {
        batch: 4,
        ..Settings::for_adapter(true)
    };
    let app = BeitApp::with_settings(ctx, settings, false);
    let mut h = egui_kittest::Harness::builder()
        .with_size(egui::vec2(1280.0, 900.0))
        .build_ui_state(|ui, app: &mut BeitApp| app.frame(ui), app);
    h.get_by_label(View::Files.title()).click();
    h.step();
    h.step();
    for (folder, expect) in [
        (run, "loaded tokenizer, pretrained BEiT from"),
        (ft, "loaded fine-tuned classifier from"),
    ] {
        h.state_mut().views.checkpoint_path = folder.display().to_string();
        h.step();
        h.get_by_label("Load checkpoint").click();
        h.step();
        h.step();
        let notice = h.state().notice.clone().unwrap_or_default();
        let error = h.state().session.as_ref().and_then(|s| s.error.clone());
        assert!(notice.starts_with(expect), "{notice} / {error:?}");
    }
    let classes = &h
        .state()
        .session
        .as_ref()
        .unwrap()
        .finetuned
        .as_ref()
        .unwrap()
        .cfg
        .id2label;
    assert_eq!(
        classes.values().cloned().collect::<Vec<_>>(),
        ["ankle boot", "t-shirt", "trouser"]
    );
}

#[test]
fn idx_files_with_labels_fine_tune() {
    use beitlab::data::dataset::{Dataset, Split};
    let dir = tempdir("idx");
    let data = Dataset::builtin(Split::Val, 1).unwrap();
    let n = 60usize;
    let mut images = vec![0, 0, 8, 3];
    for v in [n as u32, 28, 28] {
        images.extend(v.to_be_bytes());
    }
    let mut labels = vec![0, 0, 8, 1];
    labels.extend((n as u32).to_be_bytes());
    for i in 0..n {
        images.extend(&data.images[i].data);
        labels.push(data.labels.as_ref().unwrap()[i] as u8);
    }
    let file = dir.join("mine-images-idx3-ubyte");
    std::fs::write(&file, images).unwrap();
    std::fs::write(dir.join("mine-labels-idx1-ubyte"), labels).unwrap();
    let out = ok(
        &dir,
        &[
            "finetune",
            "--scratch",
            "--data",
            path(&file),
            "--steps",
            "2",
            "--batch",
            "8",
            "--out",
            path(&dir.join("ft")),
        ],
    );
    assert!(out.stdout.contains("top-1 accuracy on"), "{}", out.stdout);
    let eval = ok(
        &dir,
        &[
            "eval",
            "--model",
            path(&dir.join("ft")),
            "--data",
            path(&file),
        ],
    );
    assert!(eval.stdout.contains("per class:"), "{}", eval.stdout);
}

#[test]
fn pretraining_killed_part_way_resumes_to_the_uninterrupted_result() {
    let dir = tempdir("sigkill");
    let data = dir.join("images");
    image_folder(&data, &CLASSES, 16, 0);
    let whole = dir.join("whole");
    let common = |out: &Path| -> Vec<String> {
        [
            "pretrain",
            "--data",
            path(&data),
            "--preset",
            "micro",
            "--steps",
            "60",
            "--batch",
            "8",
            "--checkpoint-every",
            "4",
            "--tokenizer-steps",
            "3",
            "--out",
            path(out),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let args = common(&whole);
    ok(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>());

    let killed = dir.join("killed");
    let args = common(&killed);
    let mut child = spawn(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let state = killed.join("checkpoint/training_state.safetensors");
    let t0 = Instant::now();
    while !state.is_file() {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run finished before it could be killed part-way"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let logged = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap();
    assert!(logged.lines().count() < 60, "killed part-way");

    let resumed = ok(
        &dir,
        &["pretrain", "--resume", path(&killed), "--steps", "60"],
    );
    assert!(
        resumed.stdout.contains("pretrained 60 steps"),
        "{}",
        resumed.stdout
    );
    let weights = |d: &Path| std::fs::read(d.join("checkpoint/model.safetensors")).unwrap();
    assert!(
        weights(&killed) == weights(&whole),
        "the resumed run's weights differ from the uninterrupted run's"
    );
}
