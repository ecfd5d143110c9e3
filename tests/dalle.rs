//! The DALL-E tokenizer against the `dall-e` package itself: fixtures from
//! `tests/fixtures/dalle/make_dalle_fixtures.py` (small random-weight encoders and decoders built with the
//! package's classes, residual branches boosted, references in float64). Logits within 1e-4 of their scale, tokens
//! equal except where the reference's top-1/top-2 margin is within the error, decoder statistics and pixels within
//! 1e-4. Also: chunked passes equal whole ones, and files that are not DALL-E halves are refused by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use beitlab::gpu::{Dispatch, ErrorPolicy, GpuContext, Requirements};
use beitlab::tensorfile::{self, HostTensor};
use beitlab::tokenizer::dalle::{DalleGraph, DalleNet, DalleTokenizer, Half, NetShape, PixelOut};

fn ctx() -> &'static GpuContext {
    static CTX: std::sync::OnceLock<GpuContext> = std::sync::OnceLock::new();
    CTX.get_or_init(|| {
        GpuContext::new_headless_blocking(&Requirements::kernels(), ErrorPolicy::Panic)
            .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
    })
}

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dalle")
        .join(case)
}

fn tokenizer(case: &str) -> DalleTokenizer {
    let d = case_dir(case);
    let enc = DalleNet::load(ctx(), &d.join("encoder.safetensors"), Half::Encoder).unwrap();
    let dec = DalleNet::load(ctx(), &d.join("decoder.safetensors"), Half::Decoder).unwrap();
    DalleTokenizer::new(enc, Some(dec)).unwrap()
}

fn run(d: &[Dispatch]) {
    Dispatch::submit(ctx(), "dalle test", d).unwrap();
    ctx().wait().unwrap();
}

struct Reference {
    t: BTreeMap<String, HostTensor>,
}

impl Reference {
    fn load(case: &str) -> Self {
        Self {
            t: tensorfile::read(&case_dir(case).join("reference.safetensors")).unwrap(),
        }
    }
    fn f32(&self, name: &str) -> Vec<f32> {
        self.t[name].to_f32()
    }
    fn shape(&self, name: &str) -> Vec<usize> {
        self.t[name].shape.clone()
    }
}

#[track_caller]
fn assert_within(what: &str, got: &[f32], want: &[f32], tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs();
        assert!(
            g.is_finite() && err <= tol,
            "{what}[{i}] = {g}, expected {w} (error {err:.3e} > {tol:.3e})"
        );
        worst = worst.max(err);
    }
    worst
}

fn check_case(case: &str) {
    let tk = tokenizer(case);
    let r = Reference::load(case);
    let s = r.shape("input");
    let (batch, grid) = (s[0] as u32, r.shape("tokens")[1] as u32);
    let g = DalleGraph::new(ctx(), &tk, batch, grid, PixelOut::UNIT).unwrap();
    assert_eq!((g.side as usize, g.chunk), (s[2], batch));
    g.pixels.write(ctx(), &r.f32("input"));
    g.logits.poison(ctx());
    run(&g.encode);

    // Logits: 1e-4 relative to their largest magnitude (sums of thousands of f32 products).
    let want = r.f32("logits");
    let scale = want.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
    let err = assert_within(
        "logits",
        &ctx().read_f32(&g.logits).unwrap(),
        &want,
        1e-4 * scale,
    );

    // Tokens: equal wherever the reference's top-1/top-2 margin is larger than twice the logit error.
    let got = ctx().read_u32(&g.tokens).unwrap();
    let want: Vec<i64> = r.t["tokens"].to_i64().unwrap();
    let margin = r.f32("margin");
    let mut compared = 0;
    for i in 0..want.len() {
        if margin[i] as f64 > 2.0 * err {
            assert_eq!(got[i] as i64, want[i], "token {i} (margin {})", margin[i]);
            compared += 1;
        }
    }
    assert!(
        compared * 10 >= want.len() * 9,
        "only {compared} of {} tokens had a clear margin",
        want.len()
    );

    // Decoder, from the reference's tokens: statistics and pixels within 1e-4 (of the statistics' scale).
    let toks: Vec<u32> = want.iter().map(|&v| v as u32).collect();
    g.tokens.write(ctx(), &toks);
    let (stats, px) = (g.stats.as_ref().unwrap(), g.recon_pixels.as_ref().unwrap());
    stats.poison(ctx());
    px.poison(ctx());
    run(&g.decode);
    let want = r.f32("decoder_stats");
    let scale = want.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
    assert_within(
        "decoder statistics",
        &ctx().read_f32(stats).unwrap(),
        &want,
        1e-4 * scale.max(1.0),
    );
    assert_within(
        "decoder pixels",
        &ctx().read_f32(px).unwrap(),
        &r.f32("decoder_pixels"),
        1e-4,
    );
}

#[test]
fn rgb_encoder_and_decoder_match_the_dall_e_package() {
    check_case("rgb");
}

#[test]
fn gray_odd_grid_matches_the_dall_e_package() {
    check_case("gray_odd");
}

#[test]
fn architecture_is_inferred_from_the_tensors() {
    let d = case_dir("rgb");
    let t = tensorfile::read(&d.join("encoder.safetensors")).unwrap();
    let e = NetShape::infer(&t, Half::Encoder, "rgb encoder").unwrap();
    assert_eq!(
        (
            e.image_channels,
            e.vocab_size,
            e.input_kernel,
            e.input_width
        ),
        (3, 40, 7, 16)
    );
    assert_eq!(e.groups.len(), 4);
    assert!(e.groups.iter().all(|g| g.len() == 2));
    let widths: Vec<u32> = e.groups.iter().map(|g| g[1].n_out).collect();
    assert_eq!(widths, [16, 32, 64, 128]);
    assert_eq!((e.downsampling(), e.post_gain()), (8, 1.0 / 64.0));
    let t = tensorfile::read(&case_dir("gray_odd").join("decoder.safetensors")).unwrap();
    let dcd = NetShape::infer(&t, Half::Decoder, "gray decoder").unwrap();
    assert_eq!(
        (dcd.image_channels, dcd.vocab_size, dcd.input_width),
        (1, 37, 12)
    );
    let widths: Vec<u32> = dcd.groups.iter().map(|g| g[0].n_out).collect();
    assert_eq!(widths, [64, 32, 16, 8]);
}

#[test]
fn chunked_passes_equal_one_pass() {
    let tk = tokenizer("gray_odd");
    let r = Reference::load("gray_odd");
    let whole = DalleGraph::new(ctx(), &tk, 3, 5, PixelOut::UNIT).unwrap();
    let chunked =
        DalleGraph::with_chunk_limit(ctx(), &tk, 3, 5, PixelOut::normalised(0.5, 0.5), 1).unwrap();
    assert_eq!((whole.chunk, chunked.chunk), (3, 1));
    for g in [&whole, &chunked] {
        g.pixels.write(ctx(), &r.f32("input"));
        g.tokens.poison(ctx());
        let mut all = g.encode.clone();
        all.extend(g.decode.iter().cloned());
        run(&all);
    }
    assert_eq!(
        ctx().read_u32(&whole.tokens).unwrap(),
        ctx().read_u32(&chunked.tokens).unwrap()
    );
    let a = ctx()
        .read_f32(whole.recon_pixels.as_ref().unwrap())
        .unwrap();
    let b = ctx()
        .read_f32(chunked.recon_pixels.as_ref().unwrap())
        .unwrap();
    // Normalised as (p − 0.5) / 0.5.
    let want: Vec<f32> = a.iter().map(|p| 2.0 * p - 1.0).collect();
    assert_within("chunked, normalised pixels", &b, &want, 1e-6);
}

#[test]
fn files_that_are_not_dall_e_halves_are_refused_by_name() {
    let d = case_dir("rgb");
    let enc = tensorfile::read(&d.join("encoder.safetensors")).unwrap();
    let dec = tensorfile::read(&d.join("decoder.safetensors")).unwrap();
    let err = |t: &BTreeMap<String, HostTensor>, half| {
        NetShape::infer(t, half, "f").unwrap_err().to_string()
    };
    let e = err(&dec, Half::Encoder);
    assert!(
        e.contains("these are the kernels of a DALL-E decoder"),
        "{e}"
    );
    let e = err(&enc, Half::Decoder);
    assert!(
        e.contains("these are the kernels of a DALL-E encoder"),
        "{e}"
    );
    let mut t = enc.clone();
    t.remove("blocks.group_2.block_1.id_path.w");
    assert!(err(&t, Half::Encoder).contains("has no blocks.group_2.block_1.id_path.w"));
    let mut t = enc.clone();
    let w = t["blocks.group_1.block_1.res_path.conv_2.w"].clone();
    t.insert(
        "blocks.group_1.block_1.res_path.conv_2.w".into(),
        HostTensor::f32(vec![4, 4, 1, 1], w.to_f32()[..16].to_vec()),
    );
    assert!(
        err(&t, Half::Encoder).contains("conv_2.w has a 1x1 kernel"),
        "{}",
        err(&t, Half::Encoder)
    );
    let mut t = enc.clone();
    t.insert("head.weight".into(), HostTensor::f32(vec![1], vec![0.0]));
    assert!(err(&t, Half::Encoder).contains("head.weight is not part of a DALL-E encoder"));
    let beit: BTreeMap<String, HostTensor> = [(
        "beit.embeddings.cls_token".to_string(),
        HostTensor::f32(vec![1, 1, 4], vec![0.0; 4]),
    )]
    .into();
    let e = err(&beit, Half::Encoder);
    assert!(
        e.contains("no tensor blocks.input.w") && e.contains("beit.embeddings.cls_token"),
        "{e}"
    );
    let mut t = enc;
    t.insert(
        "blocks.input.b".into(),
        HostTensor::f32(vec![16], vec![f32::NAN; 16]),
    );
    let e = DalleNet::from_tensors(ctx(), &t, Half::Encoder, "f")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("blocks.input.b holds values that are not finite"),
        "{e}"
    );
}

#[test]
fn the_published_architecture_matches_the_package_defaults() {
    use beitlab::tokenizer::dalle::bench::{flops_per_image, public_shape};
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dalle/public_shapes.json"),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (half, key) in [(Half::Encoder, "encoder"), (Half::Decoder, "decoder")] {
        let want: BTreeMap<String, Vec<usize>> = serde_json::from_value(json[key].clone()).unwrap();
        let got: BTreeMap<String, Vec<usize>> =
            public_shape(half).tensor_specs().into_iter().collect();
        assert_eq!(got, want, "{key}");
    }
    let e = public_shape(Half::Encoder);
    assert_eq!((e.parameters() / 100_000, e.downsampling()), (537, 8));
    // About 40 GFLOP per 112 x 112 image for the encoder (multiply-adds x 2).
    let f = flops_per_image(&e, 14) / 1e9;
    assert!((30.0..60.0).contains(&f), "{f}");
}

/// A device whose buffers are smaller than the tokenizer's weights refuses it with one sentence naming the half
/// and both sizes, instead of failing inside wgpu.
#[test]
fn weights_larger_than_the_device_allows_are_refused_by_name() {
    let small = Requirements {
        max_buffer_size: 256 << 10,
        max_storage_buffer_binding_size: 256 << 10,
        ..Requirements::kernels()
    };
    let ctx = GpuContext::new_headless_blocking(&small, ErrorPolicy::Panic).unwrap();
    assert_eq!(ctx.limits.max_buffer_size, 256 << 10);
    let file = case_dir("rgb").join("encoder.safetensors");
    let e = match DalleNet::load(&ctx, &file, Half::Encoder) {
        Ok(_) => panic!("a 600 KB encoder loaded into 256 KiB buffers"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("the DALL-E encoder needs "), "{e}");
    assert!(
        e.contains("KiB of weights in one buffer but this device allows 256 KiB"),
        "{e}"
    );
    assert_eq!(e.matches(". ").count(), 0, "one sentence: {e}");
}
