//! Datasets (built-in, IDX, image folders in every supported format, broken files) and augmentation.

use std::io::Write;
use std::path::{Path, PathBuf};

use beitlab::data::augment::Augment;
use beitlab::data::dataset::{Dataset, Image, Split};
use beitlab::rng::Rng;

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("beitlab-data-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&p).ok();
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[test]
fn builtin_dataset_is_the_balanced_fashion_mnist_subset() {
    let train = Dataset::builtin(Split::Train, 1).unwrap();
    let val = Dataset::builtin(Split::Val, 3).unwrap();
    assert_eq!((train.len(), val.len()), (10_000, 2_000));
    let labels = train.labels.as_ref().unwrap();
    for c in 0..10 {
        assert_eq!(labels.iter().filter(|&&l| l == c).count(), 1000);
    }
    assert_eq!(train.class_names[9], "Ankle boot");
    assert_eq!(
        (
            train.images[0].width,
            train.images[0].height,
            train.images[0].channels
        ),
        (28, 28, 1)
    );
    assert_eq!(val.images[0].channels, 3);
    assert!(train.images[0].data.iter().any(|&v| v > 0));
}

fn write_idx(dir: &Path, prefix: &str, n: u32, gz: bool, truncate: bool) -> PathBuf {
    let mut img = vec![0, 0, 8, 3];
    for v in [n, 3, 2] {
        img.extend(v.to_be_bytes());
    }
    img.extend((0..n * 6).map(|i| (i * 7 % 256) as u8));
    if truncate {
        img.truncate(img.len() - 4);
    }
    let mut lab = vec![0, 0, 8, 1];
    lab.extend(n.to_be_bytes());
    lab.extend((0..n).map(|i| (i % 4) as u8));
    let (ipath, lpath) = (
        dir.join(format!("{prefix}-images-idx3-ubyte")),
        dir.join(format!("{prefix}-labels-idx1-ubyte")),
    );
    let write = |p: &Path, bytes: &[u8]| {
        if gz {
            let f = std::fs::File::create(p.with_extension("gz")).unwrap();
            let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::default());
            e.write_all(bytes).unwrap();
            e.finish().unwrap();
        } else {
            std::fs::write(p, bytes).unwrap();
        }
    };
    write(&ipath, &img);
    write(&lpath, &lab);
    if gz {
        ipath.with_extension("gz")
    } else {
        ipath
    }
}

#[test]
fn idx_files_raw_and_gzip_with_labels() {
    let dir = tmp("idx");
    let raw = write_idx(&dir, "train", 5, false, false);
    let ds = Dataset::idx(&raw, 1).unwrap();
    assert_eq!(ds.len(), 5);
    assert_eq!((ds.images[1].width, ds.images[1].height), (2, 3));
    assert_eq!(ds.images[1].data, vec![42, 49, 56, 63, 70, 77]);
    assert_eq!(ds.labels.unwrap(), vec![0, 1, 2, 3, 0]);
    // A folder holding IDX files reads its train split; gzip works too.
    let gzdir = tmp("idxgz");
    write_idx(&gzdir, "train", 4, true, false);
    write_idx(&gzdir, "t10k", 2, true, false);
    assert_eq!(Dataset::folder(&gzdir, 3, false).unwrap().len(), 4);
    assert_eq!(Dataset::folder(&gzdir, 3, true).unwrap().len(), 2);
    let trunc = tmp("idxtrunc");
    let p = write_idx(&trunc, "train", 5, false, true);
    let e = Dataset::idx(&p, 1).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
    std::fs::write(trunc.join("junk"), b"hello").unwrap();
    assert!(Dataset::idx(&trunc.join("junk"), 1)
        .unwrap_err()
        .to_string()
        .contains("not an IDX image file"));
    for d in [dir, gzdir, trunc] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn system_fashion_mnist_when_installed() {
    // The Debian package's layout works as is (checked only where it is installed).
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if dir.exists() {
        let ds = Dataset::folder(dir, 1, true).unwrap();
        assert_eq!(ds.len(), 10_000);
    }
}

fn save(img: image::DynamicImage, path: &Path) {
    img.save(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn image_folder_every_format_and_broken_files() {
    let dir = tmp("folder");
    let (a, b) = (dir.join("cats"), dir.join("bees"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let rgb = image::RgbImage::from_fn(6, 4, |x, y| {
        image::Rgb([(x * 40) as u8, (y * 60) as u8, 200])
    });
    let rgba = image::RgbaImage::from_fn(5, 5, |x, _| image::Rgba([255, (x * 50) as u8, 0, 128]));
    let gray16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(4, 4, |x, y| {
        image::Luma([((x + y) * 8000) as u16])
    });
    let gray = image::GrayImage::from_fn(7, 3, |x, _| image::Luma([(x * 30) as u8]));
    save(
        image::DynamicImage::ImageRgb8(rgb.clone()),
        &a.join("1.png"),
    );
    save(
        image::DynamicImage::ImageRgb8(rgb.clone()),
        &a.join("2.jpg"),
    );
    save(
        image::DynamicImage::ImageRgb8(rgb.clone()),
        &a.join("3.bmp"),
    );
    save(image::DynamicImage::ImageRgba8(rgba), &a.join("4.png"));
    save(image::DynamicImage::ImageLuma16(gray16), &b.join("5.png"));
    save(
        image::DynamicImage::ImageRgb8(rgb.clone()),
        &b.join("6.gif"),
    );
    save(
        image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            3,
            3,
            image::Rgba([1, 2, 3, 255]),
        )),
        &b.join("7.webp"),
    );
    save(image::DynamicImage::ImageLuma8(gray), &b.join("8.tiff"));
    // Broken: random bytes named .png, a truncated PNG, an empty file, a text file.
    std::fs::write(b.join("9.png"), [7u8; 100]).unwrap();
    let png = std::fs::read(a.join("1.png")).unwrap();
    std::fs::write(b.join("10.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(b.join("11.jpg"), []).unwrap();
    std::fs::write(b.join("notes.txt"), "not an image").unwrap();
    let ds = Dataset::folder(&dir, 3, false).unwrap();
    assert_eq!(
        ds.class_names,
        vec!["bees", "cats"],
        "labels from sorted folder names"
    );
    assert_eq!(ds.len(), 8);
    assert_eq!(ds.skipped.len(), 4);
    let summary = ds.skipped_summary().unwrap();
    assert!(
        summary.starts_with("skipped 4 unreadable files: "),
        "{summary}"
    );
    let labels = ds.labels.as_ref().unwrap();
    assert_eq!(labels.iter().filter(|&&l| l == 0).count(), 4);
    assert!(ds
        .images
        .iter()
        .all(|i| i.channels == 3 && i.data.len() == (i.width * i.height * 3) as usize));
    // Grayscale conversion of the same folder.
    let g = Dataset::folder(&dir, 1, false).unwrap();
    assert!(g.images.iter().all(|i| i.channels == 1));
    // A class folder with nothing readable is an error, and so is an empty dataset.
    let bad = dir.join("empty_class");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("x.png"), b"nope").unwrap();
    let e = Dataset::folder(&dir, 3, false).unwrap_err().to_string();
    assert!(e.contains("empty_class holds no readable images"), "{e}");
    let none = tmp("none");
    let e = Dataset::folder(&none, 3, false).unwrap_err().to_string();
    assert!(e.contains("holds no readable images"), "{e}");
    // A flat folder of images: no labels.
    let flat = tmp("flat");
    save(image::DynamicImage::ImageRgb8(rgb), &flat.join("a.png"));
    let f = Dataset::folder(&flat, 3, false).unwrap();
    assert!(f.labels.is_none() && f.len() == 1);
    assert!(Dataset::open("/no/such/place", 3)
        .unwrap_err()
        .to_string()
        .contains("no such file or folder"));
    for d in [dir, none, flat] {
        std::fs::remove_dir_all(d).ok();
    }
}

fn gradient_image() -> Image {
    Image {
        width: 28,
        height: 28,
        channels: 1,
        data: (0..28 * 28).map(|i| (i % 256) as u8).collect(),
    }
}

#[test]
fn eval_view_at_native_size_is_just_normalisation() {
    let img = gradient_image();
    let aug = Augment::beit(28, 1);
    let mut out = Vec::new();
    aug.eval(&img, &mut out);
    assert_eq!(out.len(), 28 * 28);
    for (o, &p) in out.iter().zip(&img.data) {
        assert!((o - (p as f32 / 255.0 - 0.5) / 0.5).abs() < 1e-6);
    }
}

#[test]
fn random_resized_crop_is_seeded_and_in_range() {
    let img = gradient_image();
    let aug = Augment::beit(16, 1);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut r1, mut r2) = (Rng::new(5), Rng::new(5));
    for _ in 0..20 {
        aug.apply(&img, &mut r1, &mut a);
        aug.apply(&img, &mut r2, &mut b);
    }
    assert_eq!(a, b, "same seed, same views");
    assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
    let mut rng = Rng::new(1);
    for _ in 0..1000 {
        let (x, y, w, h) = aug.crop_box(28, 28, &mut rng);
        assert!(x >= 0.0 && y >= 0.0 && x + w <= 28.0 && y + h <= 28.0 && w >= 1.0 && h >= 1.0);
        let area = w * h / (28.0 * 28.0);
        assert!((0.05..=1.0).contains(&area), "area {area}");
    }
    // Flip: a flipped full-image view mirrors the unflipped one.
    let mut plain = Vec::new();
    let mut flipped = Vec::new();
    beitlab::data::augment::resample(
        &img,
        (0.0, 0.0, 28.0, 28.0),
        28,
        false,
        &[0.5],
        &[0.5],
        &mut plain,
    );
    beitlab::data::augment::resample(
        &img,
        (0.0, 0.0, 28.0, 28.0),
        28,
        true,
        &[0.5],
        &[0.5],
        &mut flipped,
    );
    assert_eq!(plain[3], flipped[27 - 3]);
}

/// The bytes of a 4x4 grey PNG.
fn grey_png(value: u8) -> Vec<u8> {
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(4, 4, image::Luma([value])))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

#[test]
fn folder_loader_decodes_in_bounded_chunks_and_from_bytes() {
    use beitlab::data::dataset::{FolderLoader, PendingFile};
    let png = grey_png(9);
    let files: Vec<PendingFile> = (0..10)
        .map(|i| PendingFile {
            name: format!("f{i}.png"),
            label: Some(i % 2),
            bytes: Some(if i == 3 {
                b"broken".to_vec()
            } else {
                png.clone()
            }),
        })
        .collect();
    let mut loader =
        FolderLoader::from_files("dropped files", files, vec!["a".into(), "b".into()], 1);
    let mut steps = 0;
    while !loader.is_done() {
        assert!(loader.step(3) <= 3);
        steps += 1;
    }
    assert_eq!(steps, 4);
    assert_eq!(loader.progress(), (10, 10));
    let ds = loader.finish().unwrap();
    assert_eq!((ds.len(), ds.skipped.len()), (9, 1));
    assert_eq!(ds.labels.unwrap().len(), 9);
    assert!(ds.skipped[0].0 == "f3.png");
}

#[test]
fn a_folder_chosen_in_a_browser_is_labelled_by_its_sub_folders() {
    use beitlab::data::dataset::FolderLoader;
    let png = grey_png(200);
    let file = |p: &str| (p.to_string(), png.clone());
    // One sub-folder per class: labelled, classes sorted, hidden files left out.
    let files = vec![
        file("shoes/sandal/2.png"),
        file("shoes/boot/1.png"),
        file("shoes/sandal/1.png"),
        file("shoes/boot/.DS_Store"),
    ];
    let mut loader = FolderLoader::from_relative_paths("shoes", files, 1);
    loader.step(100);
    let ds = loader.finish().unwrap();
    assert_eq!(ds.class_names, vec!["boot", "sandal"]);
    assert_eq!(ds.labels, Some(vec![0, 1, 1]));
    assert!(ds.skipped.is_empty());
    // Files at mixed depths: no labels.
    let files = vec![file("shoes/1.png"), file("shoes/boot/1.png")];
    let mut loader = FolderLoader::from_relative_paths("shoes", files, 1);
    loader.step(100);
    let ds = loader.finish().unwrap();
    assert_eq!((ds.len(), ds.labels.is_none()), (2, true));
    // A class whose only file is not an image is named.
    let files = vec![
        file("shoes/boot/1.png"),
        ("shoes/sandal/a.txt".to_string(), b"text".to_vec()),
    ];
    let mut loader = FolderLoader::from_relative_paths("shoes", files, 1);
    loader.step(100);
    let err = loader.finish().unwrap_err().to_string();
    assert!(err.contains("sandal holds no readable images"), "{err}");
}

#[test]
fn loading_in_the_background() {
    let rx = beitlab::data::dataset::load_in_background("builtin:val".into(), 1);
    let ds = rx.recv().unwrap().unwrap();
    assert_eq!(ds.len(), 2000);
}

/// A labelled set of `per_class` 2 x 2 images for each of `classes` class names, image value = its index.
fn labelled(classes: &[&str], per_class: usize) -> Dataset {
    let mut d = Dataset {
        labels: Some(Vec::new()),
        class_names: classes.iter().map(|s| s.to_string()).collect(),
        source: "set".into(),
        ..Default::default()
    };
    for c in 0..classes.len() {
        for _ in 0..per_class {
            let v = d.images.len() as u8;
            d.images.push(Image {
                width: 2,
                height: 2,
                channels: 1,
                data: vec![v; 4],
            });
            d.labels.as_mut().unwrap().push(c as u32);
        }
    }
    d
}

#[test]
fn split_holds_out_every_tenth_image_of_each_class_keeping_labels_and_names() {
    let d = labelled(&["a", "b", "c"], 25);
    let mut d = d;
    d.skipped.push(("bad.png".into(), "empty file".into()));
    let (train, val) = d.split(10);
    assert_eq!(
        (train.len(), val.len()),
        (69, 6),
        "2 of each 25-image class held out"
    );
    for part in [&train, &val] {
        assert_eq!(part.class_names, ["a", "b", "c"]);
        assert_eq!(part.labels.as_ref().unwrap().len(), part.len());
    }
    assert_eq!(val.labels.as_ref().unwrap(), &[0, 0, 1, 1, 2, 2]);
    // Each held-out image keeps its own label: image values 9, 19 (class a), 34, 44 (b), 59, 69 (c).
    let held: Vec<u8> = val.images.iter().map(|i| i.data[0]).collect();
    assert_eq!(held, [9, 19, 34, 44, 59, 69]);
    assert!(
        val.source.contains("every 10th image of each class"),
        "{}",
        val.source
    );
    assert_eq!(
        train.skipped.len(),
        1,
        "the skipped-file list stays with the training part"
    );

    // Too small to hold anything out: both parts are the whole set, and the source says so.
    let (t, v) = labelled(&["a"], 5).split(10);
    assert_eq!((t.len(), v.len()), (5, 5));
    assert!(v.source.contains("too few images"), "{}", v.source);

    // Unlabelled: every 10th image.
    let mut flat = labelled(&["a"], 30);
    flat.labels = None;
    flat.class_names.clear();
    let (t, v) = flat.split(10);
    assert_eq!((t.len(), v.len(), v.labels.is_none()), (27, 3, true));
}

#[test]
fn a_validation_set_is_matched_to_the_training_classes_by_name() {
    let val = labelled(&["c", "a"], 2);
    let train_names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let m = val.with_classes_of(&train_names).unwrap();
    assert_eq!(m.labels.unwrap(), [2, 2, 0, 0], "c -> 2, a -> 0");
    assert_eq!(m.class_names, train_names);
    let err = labelled(&["a", "z"], 1)
        .with_classes_of(&train_names)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"z\"") && err.contains("a, b, c"), "{err}");
}
