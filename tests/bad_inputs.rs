//! Every bad input of README's "Bad input" table that the library meets: hostile checkpoints (safetensors and
//! config.json), unusual and broken image files, awkward folders and IDX files. Each is either read correctly
//! or refused with one sentence naming the file, tensor, field or limit; nothing panics.

use std::path::{Path, PathBuf};

use beitlab::data::dataset::{decode_bytes, decode_file, Dataset, Decode, MAX_IMAGE_PIXELS};
use beitlab::model::checkpoint::{flat_from_tensors, read_folder, write_folder};
use beitlab::model::{BeitConfig, ParamTable};
use beitlab::tensorfile;
use beitlab::tokenizer::TokenizerConfig;

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("beitlab-bad-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&p).ok();
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/images")
        .join(name)
}

/// A micro model folder with all-finite weights.
fn model_folder(name: &str) -> (PathBuf, BeitConfig) {
    let dir = tmp(name);
    let cfg = BeitConfig::preset("micro").unwrap();
    let table = ParamTable::new(&cfg, 4);
    write_folder(&dir, &cfg, &table, &table.init_values(1)).unwrap();
    (dir, cfg)
}

/// safetensors bytes from a header (JSON text) and a data section.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header.as_bytes());
    b.extend(data);
    b
}

fn parse_error(bytes: &[u8]) -> String {
    tensorfile::parse(Path::new("model.safetensors"), bytes)
        .unwrap_err()
        .to_string()
}

#[test]
fn hostile_safetensors_files_are_refused_with_the_file_named() {
    let (dir, _) = model_folder("st");
    let file = dir.join("model.safetensors");
    let good = std::fs::read(&file).unwrap();

    // Truncated: the data ends early.
    std::fs::write(&file, &good[..good.len() - 10]).unwrap();
    let e = read_folder(&dir).err().unwrap().to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("not a valid safetensors"),
        "{e}"
    );
    // Cut inside the 8-byte length.
    std::fs::write(&file, &good[..5]).unwrap();
    assert!(read_folder(&dir).is_err());
    // Header length past the end of the file, and an absurd one.
    for len in [good.len() as u64 + 1, u64::MAX] {
        let mut b = good.clone();
        b[..8].copy_from_slice(&len.to_le_bytes());
        let e = parse_error(&b);
        assert!(e.contains("not a valid safetensors"), "{e}");
    }
    // Overlapping and out-of-range offsets.
    let e = parse_error(&safetensors(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
        &[0; 12],
    ));
    assert!(e.contains("not a valid safetensors"), "{e}");
    let e = parse_error(&safetensors(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4000]}}"#,
        &[0; 8],
    ));
    assert!(e.contains("not a valid safetensors"), "{e}");
    // Unknown dtype, and a dtype that exists but is not read.
    let e = parse_error(&safetensors(
        r#"{"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ));
    assert!(e.contains("not a valid safetensors"), "{e}");
    let e = parse_error(&safetensors(
        r#"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ));
    assert!(e.contains("tensor a") && e.contains("does not read"), "{e}");
    // A shape whose byte count differs from its offsets, and one whose product overflows.
    let e = parse_error(&safetensors(
        r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ));
    assert!(e.contains("not a valid safetensors"), "{e}");
    let e = parse_error(&safetensors(
        r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#,
        &[0; 8],
    ));
    assert!(e.contains("not a valid safetensors"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_weight_that_is_not_finite_is_refused_with_the_tensor_named() {
    let (dir, cfg) = model_folder("nan");
    let table = ParamTable::new(&cfg, 4);
    let mut flat = table.init_values(1);
    let victim = &table.specs[3];
    let at = table.layout.entries[3].offset as usize;
    for (i, bad) in [f32::NAN, f32::INFINITY].into_iter().enumerate() {
        flat[at + i] = bad;
    }
    write_folder(&dir, &cfg, &table, &flat).unwrap();
    let ck = read_folder(&dir).unwrap();
    let e = flat_from_tensors(&cfg, &table, &ck.tensors, cfg.image_size)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&victim.name) && e.contains("2 values that are not finite"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn config_json_with_missing_keys_wrong_types_or_absurd_sizes_is_refused_before_any_allocation() {
    let (dir, cfg) = model_folder("cfg");
    let good: serde_json::Value = serde_json::from_str(&cfg.to_json()).unwrap();
    let with = |key: &str, v: serde_json::Value| {
        let mut j = good.clone();
        j[key] = v;
        j.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        ("{ not json".into(), "not a valid BeitConfig"),
        (with("hidden_size", "wide".into()), "not a valid BeitConfig"),
        (
            with("hidden_size", 1_000_000_000.into()),
            "hidden_size 1000000000 is above",
        ),
        (
            with("hidden_size", 1_000_000_000_000u64.into()),
            "not a valid BeitConfig",
        ),
        (
            with("image_size", 1_048_576.into()),
            "image_size 1048576 is above",
        ),
        (with("patch_size", 0.into()), "patch_size must be positive"),
        (with("num_channels", 2.into()), "num_channels is 2"),
        (
            with("num_hidden_layers", 100_000.into()),
            "num_hidden_layers 100000 is above",
        ),
        (
            with("vocab_size", 4_000_000_000u64.into()),
            "vocab_size 4000000000 is above",
        ),
        (with("model_type", "vit".into()), "model_type"),
        (with("drop_path_rate", 3.into()), "drop_path_rate"),
    ];
    for (text, want) in cases {
        std::fs::write(dir.join("config.json"), &text).unwrap();
        let e = read_folder(&dir).err().unwrap().to_string();
        assert!(e.contains("config.json") && e.contains(want), "{want}: {e}");
    }
    // Products of allowed sizes stay bounded: 4096-pixel images in 1-pixel patches is refused by its grid.
    let mut j = good.clone();
    j["image_size"] = 4096.into();
    j["patch_size"] = 1.into();
    std::fs::write(dir.join("config.json"), j.to_string()).unwrap();
    let e = read_folder(&dir).err().unwrap().to_string();
    assert!(e.contains("grid side"), "{e}");
    // Wide and deep within each limit, but too many parameters in all.
    let mut j = good.clone();
    j["hidden_size"] = 16384.into();
    j["intermediate_size"] = 65536.into();
    j["num_hidden_layers"] = 256.into();
    std::fs::write(dir.join("config.json"), j.to_string()).unwrap();
    let e = read_folder(&dir).err().unwrap().to_string();
    assert!(e.contains("parameters, above beitlab's limit"), "{e}");
    // Missing keys take transformers' defaults (BEiT-base), as transformers does.
    std::fs::write(dir.join("config.json"), r#"{"model_type":"beit"}"#).unwrap();
    let ck = read_folder(&dir).unwrap();
    assert_eq!(ck.config.hidden_size, 768);
    let table = ParamTable::new(&ck.config, 4);
    let e = flat_from_tensors(&ck.config, &table, &ck.tensors, ck.config.image_size)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("shape"),
        "base defaults do not fit micro weights: {e}"
    );
    // The tokenizer's config too.
    let tk = TokenizerConfig::preset("micro").unwrap();
    for (field, v) in [
        ("num_channels", 2u64),
        ("codebook_size", 1 << 40),
        ("hidden_size", 1 << 30),
    ] {
        let mut j: serde_json::Value = serde_json::to_value(&tk).unwrap();
        j[field] = v.into();
        let parsed: Result<TokenizerConfig, _> = serde_json::from_value(j);
        if let Ok(c) = parsed {
            assert!(c.validate().is_err(), "{field} {v} accepted");
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

/// A PNG whose header announces `w x h` pixels over one pixel of data (its CRC fixed up).
fn png_announcing(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = std::fs::read(fixture("one_pixel.png")).unwrap();
    // Signature (8), IHDR length (4), "IHDR" (4), width, height.
    bytes[16..20].copy_from_slice(&w.to_be_bytes());
    bytes[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn unusual_image_files_decode_and_broken_ones_are_refused_with_a_reason() {
    // Kinds that must decode: CMYK JPEG, palette, 16-bit, alpha, an animated GIF (its first frame), 1 x 1.
    for (name, size) in [
        ("cmyk.jpg", (12, 9)),
        ("palette.png", (12, 9)),
        ("gray16.png", (12, 9)),
        ("rgba.png", (12, 9)),
        ("animated.gif", (12, 9)),
        ("one_pixel.png", (1, 1)),
    ] {
        for channels in [1, 3] {
            let img = decode_file(&fixture(name), channels)
                .unwrap_or_else(|e| panic!("{name} should decode: {e}"));
            assert_eq!(
                (img.width, img.height, img.channels),
                (size.0, size.1, channels)
            );
            assert_eq!(img.data.len(), (size.0 * size.1 * channels) as usize);
        }
    }
    let gradient = decode_file(&fixture("cmyk.jpg"), 3).unwrap();
    assert!(
        gradient.data.iter().any(|&v| v > 60),
        "CMYK decoded to black"
    );

    // Broken: empty, truncated PNG and JPEG, not an image at all, a decompression bomb's header.
    assert_eq!(decode_bytes(&[], 3).unwrap_err(), "empty file");
    let png = std::fs::read(fixture("palette.png")).unwrap();
    assert!(decode_bytes(&png[..png.len() / 2], 3).is_err());
    let jpg = std::fs::read(fixture("cmyk.jpg")).unwrap();
    // A truncated JPEG either fails or decodes to its announced size (decoders fill what is missing).
    if let Ok(img) = decode_bytes(&jpg[..jpg.len() / 2], 3) {
        assert_eq!((img.width, img.height), (12, 9));
    }
    assert!(decode_bytes(b"GIF89a but not really", 3).is_err());
    assert!(decode_bytes(b"just some text in a file named photo.png", 3).is_err());
    let bomb = png_announcing(30_000, 30_000);
    let e = decode_bytes(&bomb, 3).unwrap_err();
    assert!(
        e.contains("30000 x 30000")
            && e.contains(&format!("limit of {} megapixels", MAX_IMAGE_PIXELS >> 20)),
        "{e}"
    );
    // At the limit's edge the header passes and the (missing) data fails, without a huge allocation.
    assert!(decode_bytes(&png_announcing(8000, 8000), 3).is_err());
}

#[test]
fn large_images_are_downscaled_on_load_to_twice_the_model_size() {
    let big = image::RgbImage::from_fn(1200, 800, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 9])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(big)
        .write_to(&mut bytes, image::ImageFormat::Png)
        .unwrap();
    let img = decode_bytes(bytes.get_ref(), Decode::for_model(3, 28)).unwrap();
    assert_eq!(
        (img.width, img.height),
        (84, 56),
        "shorter side 2 x 28, aspect kept"
    );
    // A bare channel count keeps up to 512 pixels on the shorter side.
    let img = decode_bytes(bytes.get_ref(), 1).unwrap();
    assert_eq!((img.width, img.height), (768, 512));
}

fn save_png(path: &Path, v: u8) {
    image::GrayImage::from_pixel(6, 6, image::Luma([v]))
        .save(path)
        .unwrap();
}

#[test]
fn awkward_folders_load_or_say_what_is_wrong() {
    // Empty.
    let empty = tmp("empty");
    let e = Dataset::folder(&empty, 1, false).unwrap_err().to_string();
    assert!(e.contains("holds no readable images"), "{e}");
    // One class only: loads (pretraining needs no labels); fine-tuning refuses it (tests/cli).
    let one = tmp("one-class");
    std::fs::create_dir_all(one.join("only")).unwrap();
    save_png(&one.join("only/a.png"), 10);
    let d = Dataset::folder(&one, 1, false).unwrap();
    assert_eq!(d.class_names, vec!["only"]);
    // A class folder with no images names it.
    std::fs::create_dir_all(one.join("nothing here")).unwrap();
    let e = Dataset::folder(&one, 1, false).unwrap_err().to_string();
    assert!(e.contains("nothing here holds no readable images"), "{e}");

    // Names with spaces and non-ASCII letters; unreadable entries and link loops skipped with reasons.
    let dir = tmp("awkward");
    for class in ["ankle boot", "größe ünd 鞋"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        save_png(&dir.join(class).join("ein bild.png"), 50);
        save_png(&dir.join(class).join("zwei.png"), 90);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        let c = dir.join("ankle boot");
        symlink(c.join("missing.png"), c.join("dangling.png")).unwrap();
        symlink(c.join("loop.png"), c.join("loop.png")).unwrap();
        symlink(&dir, dir.join("back to the top")).unwrap();
        std::process::Command::new("mkfifo")
            .arg(c.join("pipe.png"))
            .status()
            .unwrap();
        // A folder where an image should be.
        std::fs::create_dir_all(c.join("folder.png")).unwrap();
    }
    let d = Dataset::folder(&dir, 3, false).unwrap();
    assert_eq!(d.class_names, vec!["ankle boot", "größe ünd 鞋"]);
    assert_eq!(d.len(), 4);
    #[cfg(unix)]
    {
        let skipped: Vec<&str> = d.skipped.iter().map(|(p, _)| p.as_str()).collect();
        for name in ["dangling.png", "loop.png", "pipe.png", "back to the top"] {
            assert!(
                skipped.iter().any(|p| p.ends_with(name)),
                "{name} not reported: {skipped:?}"
            );
        }
        let reason = |n: &str| &d.skipped.iter().find(|(p, _)| p.ends_with(n)).unwrap().1;
        assert_eq!(reason("pipe.png"), "not a regular file");
        assert!(reason("back to the top").contains("loop"));
    }
    for p in [empty, one, dir] {
        std::fs::remove_dir_all(p).ok();
    }
}

fn idx_bytes(n: u32, h: u32, w: u32, data: usize) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for v in [n, h, w] {
        b.extend(v.to_be_bytes());
    }
    b.extend(std::iter::repeat_n(7u8, data));
    b
}

#[test]
fn idx_files_with_absurd_headers_are_refused() {
    let dir = tmp("idx");
    let p = dir.join("x-images-idx3-ubyte");
    for (n, h, w, data, want) in [
        (3, 0, 28, 0, "0 x 28"),
        (3, 28, 0, 0, "28 x 0"),
        (u32::MAX, 65536, 65536, 64, "truncated"),
        (u32::MAX, u32::MAX, u32::MAX, 64, "truncated"),
        (2, 4, 4, 31, "truncated"),
    ] {
        std::fs::write(&p, idx_bytes(n, h, w, data)).unwrap();
        let e = Dataset::idx(&p, 1).unwrap_err().to_string();
        assert!(e.contains(want), "{want}: {e}");
    }
    // gzip: decompressed only as far as the header announces (a stream of 1 MiB behind a header announcing one
    // 4 x 4 image costs 32 bytes), and an announcement past the limit is refused before decompressing.
    let gz = |bytes: Vec<u8>| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, &bytes).unwrap();
        e.finish().unwrap()
    };
    std::fs::write(&p, gz(idx_bytes(1, 4, 4, 1 << 20))).unwrap();
    let d = Dataset::idx(&p, 1).unwrap();
    assert_eq!((d.len(), d.images[0].data.len()), (1, 16));
    std::fs::write(&p, gz(idx_bytes(1 << 20, 4096, 4096, 64))).unwrap();
    let e = Dataset::idx(&p, 1).unwrap_err().to_string();
    assert!(e.contains("above beitlab's limit"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn one_file_bundles_with_bad_parts_are_refused() {
    use beitlab::app::bundle::parse_files;
    let (dir, _) = model_folder("bundle");
    let cfg = std::fs::read(dir.join("config.json")).unwrap();
    let st = std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(parse_files(&[
        ("config.json".into(), cfg.clone()),
        ("model.safetensors".into(), st.clone())
    ])
    .is_ok());
    for (files, want) in [
        (
            vec![("notes.txt".to_string(), b"hi".to_vec())],
            "notes.txt is not part of a checkpoint",
        ),
        (
            vec![("model.safetensors".to_string(), st[..100].to_vec())],
            "model.safetensors",
        ),
        (
            vec![("config.json".to_string(), vec![0xff, 0xfe])],
            "config.json is not a text file",
        ),
        (vec![], "no checkpoint files"),
    ] {
        let e = parse_files(&files)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(want), "{want}: {e}");
    }
    std::fs::remove_dir_all(dir).ok();
}
