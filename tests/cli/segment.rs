//! Semantic segmentation from the command line: `beitlab segment` from scratch at another image and patch size
//! (the issue's `--scratch --preset micro --image-size 56 --patch-size 4`), a resume that equals the
//! uninterrupted run, `beitlab eval` of the result (`--json`: pixel_accuracy, miou, iou), one's own ADE20K-layout
//! folder with a bad pair and the pyramid head, and refusals with one clear sentence.

use std::path::Path;

use super::helpers::{binary, command, fails, ok, path, strings, tempdir};

fn segment_args<'a>(out: &'a str, steps: &'a str) -> Vec<&'a str> {
    vec![
        "segment",
        "--scratch",
        "--preset",
        "micro",
        "--image-size",
        "56",
        "--patch-size",
        "4",
        "--steps",
        steps,
        "--batch",
        "2",
        "--out",
        out,
    ]
}

#[test]
fn segment_from_scratch_resumes_exactly_and_evaluates() {
    let dir = tempdir("segment");
    let (whole, cut) = (dir.join("whole"), dir.join("cut"));
    let mut args = segment_args(path(&whole), "4");
    args.extend(["--checkpoint-every", "2", "--json"]);
    let ran = ok(&dir, &args);
    assert!(ran.stdout.contains("\"miou\""), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("with the linear head"),
        "{}",
        ran.stdout
    );
    assert!(whole.join("checkpoint/model.safetensors").is_file());
    assert!(whole.join("metrics.jsonl").is_file());

    // Killed while saving its final checkpoint (the one of step 2 kept), then resumed: the same weights as the
    // run that never stopped.
    let mut args = segment_args(path(&cut), "4");
    args.extend(["--checkpoint-every", "2"]);
    let killed = command(&dir, binary(), &strings(&args))
        .env("BEITLAB_FAULT", "state:2")
        .output()
        .unwrap();
    assert_eq!(
        killed.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    ok(&dir, &["segment", "--resume", path(&cut), "--steps", "4"]);
    let read = |p: &Path| std::fs::read(p.join("checkpoint/model.safetensors")).unwrap();
    assert!(
        read(&whole) == read(&cut),
        "the resumed run's weights differ from the uninterrupted run's"
    );

    let eval = ok(&dir, &["eval", "--model", path(&whole), "--json"]);
    let v: serde_json::Value = serde_json::from_str(eval.stdout.trim()).unwrap();
    let acc = v["pixel_accuracy"].as_f64().unwrap();
    let miou = v["miou"].as_f64().unwrap();
    assert!(
        (0.0..=1.0).contains(&acc) && (0.0..=1.0).contains(&miou),
        "{v}"
    );
    assert_eq!(v["iou"].as_object().unwrap().len(), 11, "{v}");
    assert!(v["iou"].get("background").is_some(), "{v}");
    let text = ok(&dir, &["eval", "--model", path(&whole)]);
    assert!(
        text.stdout.contains("mIoU") && text.stdout.contains("Ankle boot"),
        "{}",
        text.stdout
    );
}

/// An ADE20K-layout folder: two classes ("dark", "bright") plus 0 = other, one pair with a missing mask.
fn ade_folder(root: &Path) {
    for (part, n) in [("training", 6), ("validation", 2)] {
        std::fs::create_dir_all(root.join("images").join(part)).unwrap();
        std::fs::create_dir_all(root.join("annotations").join(part)).unwrap();
        for i in 0..n {
            let img = image::GrayImage::from_fn(40, 40, |x, y| {
                image::Luma([if (x + i) % 20 < 10 {
                    30
                } else {
                    220 + (y % 3) as u8
                }])
            });
            let mask = image::GrayImage::from_fn(40, 40, |x, y| {
                image::Luma([if y < 2 {
                    0
                } else if (x + i) % 20 < 10 {
                    1
                } else {
                    2
                }])
            });
            img.save(root.join("images").join(part).join(format!("{i}.png")))
                .unwrap();
            mask.save(root.join("annotations").join(part).join(format!("{i}.png")))
                .unwrap();
        }
    }
    // An image without its mask: skipped and counted.
    image::GrayImage::new(40, 40)
        .save(root.join("images/training/lonely.png"))
        .unwrap();
    std::fs::write(root.join("classes.txt"), "dark\nbright\n").unwrap();
}

#[test]
fn own_ade20k_folder_with_the_pyramid_head() {
    let dir = tempdir("segment-ade");
    let data = dir.join("my scenes");
    ade_folder(&data);
    let out = dir.join("run");
    let ran = ok(
        &dir,
        &[
            "segment",
            "--scratch",
            "--preset",
            "micro",
            "--image-size",
            "32",
            "--patch-size",
            "4",
            "--head",
            "pyramid",
            "--data",
            path(&data),
            "--steps",
            "3",
            "--batch",
            "2",
            "--out",
            path(&out),
        ],
    );
    assert!(
        ran.stdout.contains("with the pyramid head"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("6 training and 2 validation images"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stderr.contains("lonely.png") || ran.stderr.contains("skipped"),
        "{}",
        ran.stderr
    );
    let config = std::fs::read_to_string(out.join("checkpoint/config.json")).unwrap();
    assert!(
        config.contains("\"segmentation_head\": \"pyramid\"")
            && config.contains("BeitForSemanticSegmentation"),
        "{config}"
    );
    let eval = ok(
        &dir,
        &[
            "eval",
            "--model",
            path(&out),
            "--data",
            path(&data),
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(eval.stdout.trim()).unwrap();
    let iou = v["iou"].as_object().unwrap();
    assert!(
        iou.contains_key("dark") && iou.contains_key("bright") && iou.len() == 2,
        "{v}"
    );
}

#[test]
fn segment_refusals_name_the_problem() {
    let dir = tempdir("segment-refusals");
    let out = dir.join("run");
    let mut args = segment_args(path(&out), "2");
    args.extend(["--head", "upernet"]);
    assert!(fails(&dir, &args).contains("--head \"upernet\" is not a segmentation head"));
    let err = fails(
        &dir,
        &[
            "segment",
            "--preset",
            "micro",
            "--out",
            path(&out),
            "--overwrite",
        ],
    );
    assert!(
        err.contains("--init DIR") && err.contains("--scratch"),
        "{err}"
    );
    let err = fails(
        &dir,
        &[
            "segment",
            "--scratch",
            "--data",
            path(&dir.join("nowhere")),
            "--out",
            path(&out),
            "--overwrite",
        ],
    );
    assert!(err.contains("nowhere"), "{err}");
    let mut args = segment_args(path(&out), "2");
    args.extend(["--head", "pyramid", "--overwrite"]);
    args[5] = "12"; // --image-size 12 with --patch-size 4: a 3x3 grid
    let err = fails(&dir, &args);
    assert!(err.contains("needs a grid of at least 4x4"), "{err}");
    // A pretrained model keeps its patches.
    let init = dir.join("init");
    ok(&dir, &["init", "--preset", "micro", "--out", path(&init)]);
    let err = fails(
        &dir,
        &[
            "segment",
            "--init",
            path(&init),
            "--patch-size",
            "4",
            "--steps",
            "1",
            "--out",
            path(&out),
            "--overwrite",
        ],
    );
    assert!(
        err.contains("--patch-size 4 differs from the pretrained model's 7"),
        "{err}"
    );
}
