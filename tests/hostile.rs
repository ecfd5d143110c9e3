//! Property tests (proptest, fixed seeds) of every reader that takes a user's file: the safetensors reader, the
//! config reader, the one-file bundle reader and the image-folder loader. On thousands of random and mutated
//! inputs none panics, every failure is a typed error with a message, and none allocates beyond what the input
//! itself holds: a counting allocator measures each call's peak (checkpoints and configs: a small multiple of
//! the file's size; images: their announced pixels, under the 64-megapixel limit). Also the memory bound of
//! loading a folder of large photos (downscaled on load). Tests here run one at a time so that each peak is
//! the call's own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use beitlab::app::bundle::{encode, parse_files, Entry};
use beitlab::data::dataset::{Dataset, Decode, FolderLoader, PendingFile, MAX_IMAGE_PIXELS};
use beitlab::model::checkpoint::{parse_config, tensors_from_flat};
use beitlab::model::{BeitConfig, ParamTable};
use beitlab::tensorfile;

/// Bytes allocated now, and the most since the last reset.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new > l.size() {
                let now = CURRENT.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test at a time: a peak is only meaningful while nothing else allocates.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `f`'s result and the most bytes it held at once beyond what was allocated before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

/// A runner with a fixed seed, so CI sees the same cases every time.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    )
}

/// Edits of a valid input: byte flips, a cut, an inserted run, a little-endian u64 written at the front.
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
    Length(u64),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let one = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        any::<usize>().prop_map(Edit::Cut),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, v)| Edit::Insert(i, v)),
        prop_oneof![any::<u64>(), 0u64..4096].prop_map(Edit::Length),
    ];
    proptest::collection::vec(one, 1..4)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match e {
            Edit::Flip(i, b) if !bytes.is_empty() => bytes[i % n] ^= b | 1,
            Edit::Cut(i) => bytes.truncate(i % n),
            Edit::Insert(i, v) => {
                let at = i % n.min(bytes.len() + 1);
                bytes.splice(at..at, v.iter().copied());
            }
            Edit::Length(l) if bytes.len() >= 8 => bytes[..8].copy_from_slice(&l.to_le_bytes()),
            _ => {}
        }
    }
    bytes
}

/// A micro model's config text and its safetensors bytes.
fn micro_checkpoint() -> (String, Vec<u8>) {
    let cfg = BeitConfig::preset("micro").unwrap();
    let table = ParamTable::new(&cfg, 4);
    let tensors = tensors_from_flat(&table, &table.init_values(3));
    (cfg.to_json(), tensorfile::serialize(&tensors).unwrap())
}

#[test]
fn the_safetensors_reader_survives_random_and_mutated_files() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_, good) = micro_checkpoint();
    let inputs = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        edits().prop_map(move |e| apply(good.clone(), &e)),
    ];
    runner(3000)
        .run(&inputs, |bytes| {
            let (result, peak) = peak_of(|| tensorfile::parse(Path::new("x.safetensors"), &bytes));
            if let Err(e) = &result {
                prop_assert!(!e.to_string().is_empty());
            }
            // f16 / bf16 data become f32 (twice the bytes); the header's map and names are bounded by the file.
            prop_assert!(
                peak <= 4 * bytes.len() + (64 << 10),
                "{peak} bytes held for a {}-byte file",
                bytes.len()
            );
            Ok(())
        })
        .unwrap();
}

/// A JSON value of any kind, for replacing a config field.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<u32>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-z_]{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        Just(serde_json::json!([1, 2, 3])),
        Just(serde_json::json!({"0": "x"})),
    ]
}

#[test]
fn the_config_reader_refuses_absurd_configs_without_allocating() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (text, _) = micro_checkpoint();
    let good: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<String> = good.as_object().unwrap().keys().cloned().collect();
    let changes = proptest::collection::vec(
        (
            proptest::sample::select(keys),
            proptest::option::of(json_value()),
        ),
        1..5,
    );
    let texts = prop_oneof![
        changes.prop_map(move |ch| {
            let mut j = good.clone();
            for (k, v) in ch {
                match v {
                    Some(v) => j[&k] = v,
                    None => {
                        j.as_object_mut().unwrap().remove(&k);
                    }
                }
            }
            j.to_string()
        }),
        edits().prop_map(
            move |e| String::from_utf8_lossy(&apply(text.clone().into_bytes(), &e)).into_owned()
        ),
    ];
    runner(3000)
        .run(&texts, |t| {
            let (result, peak) = peak_of(|| parse_config(&t, "config.json"));
            match result {
                Ok(cfg) => {
                    // Accepted configs are within the stated limits, so every size product fits.
                    prop_assert!(
                        cfg.parameter_estimate() <= beitlab::model::config::limits::PARAMETERS
                    );
                    prop_assert!(cfg.grid() <= beitlab::model::config::limits::GRID);
                    prop_assert!(cfg.num_channels == 1 || cfg.num_channels == 3);
                }
                Err(e) => prop_assert!(e.to_string().starts_with("config.json: ")),
            }
            prop_assert!(
                peak <= 16 * t.len() + (64 << 10),
                "{peak} bytes for {} bytes of JSON",
                t.len()
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_bundle_reader_survives_mutated_bundles_and_folder_files() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (text, st) = micro_checkpoint();
    let bundle = encode(vec![Entry {
        role: "pretrained",
        config_json: text.clone(),
        tensors: tensorfile::parse(Path::new("m"), &st).unwrap(),
    }])
    .unwrap();
    let names = [
        "config.json",
        "model.safetensors",
        "beitlab-checkpoint.safetensors",
        "tokenizer_config.json",
        "x.bin",
    ];
    let file = (
        proptest::sample::select(names.to_vec()),
        prop_oneof![
            edits().prop_map(move |e| apply(bundle.clone(), &e)),
            edits().prop_map(move |e| apply(st.clone(), &e)),
            edits().prop_map(move |e| apply(text.clone().into_bytes(), &e)),
            proptest::collection::vec(any::<u8>(), 0..256),
        ],
    );
    runner(600)
        .run(&proptest::collection::vec(file, 0..3), |files| {
            let files: Vec<(String, Vec<u8>)> =
                files.into_iter().map(|(n, b)| (n.to_string(), b)).collect();
            let total: usize = files.iter().map(|(_, b)| b.len()).sum();
            let (result, peak) = peak_of(|| parse_files(&files));
            if let Err(e) = &result {
                prop_assert!(!e.to_string().is_empty());
            }
            prop_assert!(
                peak <= 6 * total + (256 << 10),
                "{peak} bytes for {total} bytes of files"
            );
            Ok(())
        })
        .unwrap();
}

/// The pixels an image's header announces (0 when it cannot be read).
fn announced_pixels(bytes: &[u8]) -> usize {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()
        .and_then(|r| r.into_dimensions().ok())
        .map_or(0, |(w, h)| {
            (w as u64 * h as u64).min(MAX_IMAGE_PIXELS) as usize
        })
}

#[test]
fn the_image_folder_loader_survives_mutated_images() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images");
    let mut seeds: Vec<Vec<u8>> = [
        "cmyk.jpg",
        "palette.png",
        "gray16.png",
        "rgba.png",
        "animated.gif",
    ]
    .iter()
    .map(|n| std::fs::read(dir.join(n)).unwrap())
    .collect();
    for format in [
        image::ImageFormat::Bmp,
        image::ImageFormat::Tiff,
        image::ImageFormat::WebP,
    ] {
        let mut c = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(9, 7, image::Rgb([9, 80, 200])))
            .write_to(&mut c, format)
            .unwrap();
        seeds.push(c.into_inner());
    }
    let file = (0..seeds.len(), edits()).prop_map(move |(i, e)| apply(seeds[i].clone(), &e));
    runner(1500)
        .run(&proptest::collection::vec(file, 1..4), |files| {
            let bound: usize = files
                .iter()
                .map(|b| 8 * announced_pixels(b) + 4 * b.len())
                .max()
                .unwrap_or(0)
                + files.iter().map(Vec::len).sum::<usize>()
                + (1 << 20);
            let pending: Vec<PendingFile> = files
                .into_iter()
                .enumerate()
                .map(|(i, b)| PendingFile {
                    name: format!("{i}.img"),
                    label: Some((i % 2) as u32),
                    bytes: Some(b),
                })
                .collect();
            let n = pending.len();
            let (result, peak) = peak_of(|| {
                let mut loader = FolderLoader::from_files(
                    "mutated",
                    pending,
                    vec!["a".into(), "b".into()],
                    Decode::for_model(3, 28),
                );
                while !loader.is_done() {
                    loader.step(2);
                }
                loader.finish()
            });
            match result {
                Ok(d) => prop_assert_eq!(d.len() + d.skipped.len(), n),
                Err(e) => prop_assert!(e.to_string().contains("mutated")),
            }
            prop_assert!(peak <= bound, "{peak} bytes held, bound {bound}");
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_folder_of_large_photos_loads_in_a_fraction_of_its_decoded_size() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // 24 photos of 3000 x 2000: decoded whole they would take 24 x 18 MB = 432 MB.
    let dir = std::env::temp_dir().join(format!("beitlab-photos-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let photo = image::RgbImage::from_fn(3000, 2000, |x, y| {
        image::Rgb([(x / 12) as u8, (y / 8) as u8, ((x + y) / 20) as u8])
    });
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(photo)
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .unwrap();
    for class in ["beach", "forest"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..12 {
            std::fs::write(dir.join(class).join(format!("{i:02}.jpg")), jpeg.get_ref()).unwrap();
        }
    }
    let full = 24 * 3000 * 2000 * 3;
    let (data, peak) = peak_of(|| Dataset::folder(&dir, Decode::for_model(3, 224), false).unwrap());
    let kept: usize = data.images.iter().map(|i| i.data.len()).sum();
    assert_eq!(data.len(), 24);
    assert_eq!((data.images[0].width, data.images[0].height), (672, 448));
    // The kept copies (0.9 MB each) plus one photo at a time: its decode (18 MB) and the decoder's and the
    // resampler's working buffers, README's bound of three full decodes: 84 MB here, not 432 MB.
    let one = 3000 * 2000 * 3;
    assert!(
        peak < kept + 3 * one + (8 << 20),
        "peak {peak} bytes while loading (full decode: {full})"
    );
    assert!(kept < full / 10, "kept {kept} bytes");
    eprintln!(
        "24 photos of 3000 x 2000 for a 224-pixel model: {:.1} MB kept, {:.1} MB peak while loading, {:.0} MB decoded whole",
        kept as f64 / 1e6,
        peak as f64 / 1e6,
        full as f64 / 1e6
    );
    std::fs::remove_dir_all(dir).ok();
}
