//! The DALL-E tokenizer through the binary: `tokenizer import-dalle` on the fixture weights (and refusals),
//! `tokenizer encode` of a folder against the library's own pass, and pretraining with the two views, interrupted
//! by a GPU fault and resumed to the uninterrupted run's weights, then continued with `--init`.

use std::path::Path;

use super::helpers::{binary, command, fails, image_folder, ok, path, repo, strings, tempdir};
use beitlab::data::augment::Augment;
use beitlab::data::dataset::{Dataset, Decode};
use beitlab::gpu::{Dispatch, ErrorPolicy, GpuContext, Requirements};
use beitlab::tokenizer::dalle::{DalleGraph, DalleTokenizer, PixelOut};
use beitlab::tokenizer::VisualTokenizer;

fn fixture(file: &str) -> String {
    repo()
        .join("tests/fixtures/dalle/rgb")
        .join(file)
        .display()
        .to_string()
}

fn import(dir: &Path, out: &Path) {
    let r = ok(
        dir,
        &[
            "tokenizer",
            "import-dalle",
            "--encoder",
            &fixture("encoder.safetensors"),
            "--decoder",
            &fixture("decoder.safetensors"),
            "--out",
            path(out),
            "--grid",
            "7",
        ],
    );
    assert!(
        r.stdout
            .contains("40 codes, a 7x7 token grid reads 56x56-pixel views"),
        "{}",
        r.stdout
    );
}

#[test]
fn import_dalle_infers_the_architecture_and_refuses_what_is_not_an_encoder() {
    let dir = tempdir("dalle-import");
    let tk = dir.join("tok");
    import(&dir, &tk);
    for f in [
        "dalle_config.json",
        "dalle_encoder.safetensors",
        "dalle_decoder.safetensors",
    ] {
        assert!(tk.join(f).is_file(), "{f} missing");
    }
    let cfg = std::fs::read_to_string(tk.join("dalle_config.json")).unwrap();
    assert!(
        cfg.contains("\"kind\": \"dalle\"") && cfg.contains("\"vocab_size\": 40"),
        "{cfg}"
    );
    // Again into the same folder: refused without --overwrite.
    let e = fails(
        &dir,
        &[
            "tokenizer",
            "import-dalle",
            "--encoder",
            &fixture("encoder.safetensors"),
            "--out",
            path(&tk),
        ],
    );
    assert!(e.contains("--overwrite"), "{e}");
    // The decoder's file as the encoder, and a BEiT model file: one sentence naming what is wrong.
    let e = fails(
        &dir,
        &[
            "tokenizer",
            "import-dalle",
            "--encoder",
            &fixture("decoder.safetensors"),
            "--out",
            "bad",
        ],
    );
    assert!(
        e.contains("these are the kernels of a DALL-E decoder"),
        "{e}"
    );
    let beit = repo().join("tests/fixtures/mim_shared/model/model.safetensors");
    let e = fails(
        &dir,
        &[
            "tokenizer",
            "import-dalle",
            "--encoder",
            path(&beit),
            "--out",
            "bad",
        ],
    );
    assert!(
        e.contains("no tensor blocks.input.w, so it is not a DALL-E encoder"),
        "{e}"
    );
    assert!(!dir.join("bad/dalle_config.json").exists());
}

#[test]
fn encode_writes_the_tokens_of_every_image_in_file_name_order() {
    let dir = tempdir("dalle-encode");
    let tk_dir = dir.join("tok");
    import(&dir, &tk_dir);
    let data = dir.join("images");
    image_folder(&data, &["a", "b"], 3, 0);
    let out = dir.join("tokens.safetensors");
    ok(
        &dir,
        &[
            "tokenizer",
            "encode",
            "--tokenizer",
            path(&tk_dir),
            "--data",
            path(&data),
            "--image-size",
            "24",
            "--output",
            path(&out),
        ],
    );
    let t = beitlab::tensorfile::read(&out).unwrap();
    assert_eq!(t["tokens"].shape, vec![6, 3, 3]);
    // A view size the encoder cannot divide into tokens: one sentence, nothing written.
    let bad = dir.join("bad.safetensors");
    let e = fails(
        &dir,
        &[
            "tokenizer",
            "encode",
            "--tokenizer",
            path(&tk_dir),
            "--data",
            path(&data),
            "--image-size",
            "30",
            "--output",
            path(&bad),
        ],
    );
    assert!(e.contains("--image-size 30 is not a multiple of 8"), "{e}");
    assert!(!bad.exists());
    assert_eq!(t["labels"].to_i64().unwrap(), vec![0, 0, 0, 1, 1, 1]);
    // The same images through the library: RGB evaluation views at 24 pixels, mapped as 0.8x + 0.1.
    let ctx =
        GpuContext::new_headless_blocking(&Requirements::kernels(), ErrorPolicy::Panic).unwrap();
    let tk = DalleTokenizer::load(&ctx, &tk_dir).unwrap();
    let ds = Dataset::open(path(&data), Decode::for_model(3, 24)).unwrap();
    let view = VisualTokenizer::Dalle(tk.clone()).view(3);
    let g = DalleGraph::new(&ctx, &tk, 6, 3, PixelOut::UNIT).unwrap();
    g.pixels.write(
        &ctx,
        &view
            .augment(&Augment::beit(24, 3))
            .eval_batch(&ds.images, 6),
    );
    Dispatch::submit(&ctx, "encode", &g.encode).unwrap();
    let want: Vec<i64> = ctx
        .read_u32(&g.tokens)
        .unwrap()
        .iter()
        .map(|&v| v as i64)
        .collect();
    assert_eq!(t["tokens"].to_i64().unwrap(), want);
    assert!(want.iter().all(|&v| (0..40).contains(&v)));
}

#[test]
fn pretraining_with_dalle_tokens_resumes_exactly_and_continues_from_init() {
    let dir = tempdir("dalle-pretrain");
    let tk = dir.join("tok");
    import(&dir, &tk);
    let data = dir.join("images");
    image_folder(&data, &["a", "b"], 8, 0);
    let args = |out: &Path| {
        strings(&[
            "pretrain",
            "--preset",
            "micro",
            "--data",
            path(&data),
            "--tokenizer",
            path(&tk),
            "--steps",
            "8",
            "--batch",
            "4",
            "--checkpoint-every",
            "2",
            "--out",
            path(out),
        ])
    };
    let whole = dir.join("whole");
    let r = super::helpers::ok_program(&dir, binary(), &args(&whole));
    assert!(r.stdout.contains("MIM accuracy"), "{}", r.stdout);
    let cfg = std::fs::read_to_string(whole.join("checkpoint/config.json")).unwrap();
    assert!(
        cfg.contains("\"vocab_size\": 40") && cfg.contains("\"num_channels\": 3"),
        "{cfg}"
    );
    assert!(whole.join("tokenizer/dalle_encoder.safetensors").is_file());
    // A GPU error in step 5: the run stops with the step-4 checkpoint; --resume ends with the same weights.
    let cut = dir.join("cut");
    let status = command(&dir, binary(), &args(&cut))
        .env("BEITLAB_FAULT", "gpu-error:5")
        .output()
        .unwrap();
    assert!(!status.status.success());
    ok(&dir, &["pretrain", "--resume", path(&cut), "--steps", "8"]);
    let weights = |run: &Path| std::fs::read(run.join("checkpoint/model.safetensors")).unwrap();
    assert!(
        weights(&cut) == weights(&whole),
        "the resumed DALL-E run's weights differ"
    );
    // A masked-image-modeling model continued with --init (it needs the tokenizer it predicts).
    let e = fails(
        &dir,
        &[
            "pretrain",
            "--init",
            path(&whole.join("checkpoint")),
            "--data",
            path(&data),
            "--out",
            "more",
        ],
    );
    assert!(e.contains("--init needs --tokenizer"), "{e}");
    // An image classifier cannot continue masked image modeling.
    let cls = repo().join("tests/fixtures/cls_interp/model");
    let e = fails(
        &dir,
        &[
            "pretrain",
            "--init",
            path(&cls),
            "--tokenizer",
            path(&tk),
            "--data",
            path(&data),
            "--out",
            "cls",
        ],
    );
    assert!(
        e.contains(
            "is an image classifier; continuing pretraining needs a masked-image-modeling model"
        ),
        "{e}"
    );
    // A HuggingFace BEiT MIM folder (transformers 4.x names) whose vocabulary is smaller than the tokenizer's.
    let hf = repo().join("tests/fixtures/mim_shared/model");
    let e = fails(
        &dir,
        &[
            "pretrain",
            "--init",
            path(&hf),
            "--tokenizer",
            path(&tk),
            "--data",
            path(&data),
            "--out",
            "hf",
        ],
    );
    assert!(
        e.contains("the tokenizer has 40 codes but the model's vocabulary is 37"),
        "{e}"
    );
    let more = dir.join("more");
    ok(
        &dir,
        &[
            "pretrain",
            "--init",
            path(&whole.join("checkpoint")),
            "--tokenizer",
            path(&tk),
            "--data",
            path(&data),
            "--steps",
            "2",
            "--batch",
            "4",
            "--out",
            path(&more),
        ],
    );
    assert!(weights(&more) != weights(&whole));
}

#[test]
fn bench_dalle_times_both_halves_of_a_tokenizer_folder() {
    let dir = tempdir("dalle-bench");
    let tk = dir.join("dalle");
    import(&dir, &tk);
    let r = ok(
        &dir,
        &[
            "bench",
            "dalle",
            "--tokenizer",
            path(&tk),
            "--image-size",
            "56",
            "--batch",
            "2",
            "--steps",
            "1",
            "--decoder",
            "--json",
        ],
    );
    let rows: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON row per line"))
        .collect();
    let passes: Vec<&str> = rows.iter().filter_map(|v| v["pass"].as_str()).collect();
    assert_eq!(passes, ["encode", "decode"], "{}", r.stdout);
    for v in &rows {
        assert_eq!(v["image_size"], 56, "{v}");
        assert_eq!(v["batch"], 2, "{v}");
        let speed = v["images_per_s"].as_f64().unwrap_or(0.0);
        assert!(speed.is_finite() && speed > 0.0, "{v}");
        assert!(v["gflops"].as_f64().is_some_and(|g| g > 0.0), "{v}");
    }
}
