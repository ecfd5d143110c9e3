//! Segmentation data: the built-in set (reproducible, labels agree with the pixels), ADE20K-layout folders
//! (reduce-zero-label, classes.txt, bad pairs skipped and counted) and the joint augmentation (image and labels
//! cropped and flipped together).

use std::path::{Path, PathBuf};

use beitlab::data::augment::Augment;
use beitlab::data::dataset::{Decode, Split};
use beitlab::data::segmentation::{augment_pair, eval_pair, LabelMap, SegDataset, IGNORE};
use beitlab::rng::Rng;

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("beitlab-seg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_builtin_set_is_reproducible_and_its_labels_follow_the_pixels() {
    let a = SegDataset::builtin(Split::Val, 1, 56).unwrap();
    let b = SegDataset::builtin(Split::Val, 1, 56).unwrap();
    assert_eq!(a.images, b.images);
    assert_eq!(a.masks, b.masks);
    assert_eq!(a.len(), 2000usize.div_ceil(3));
    assert_eq!(a.classes(), 11);
    assert_eq!(a.class_names[0], "background");
    for (img, mask) in a.images.iter().zip(&a.masks) {
        assert_eq!(
            (img.width, img.height, mask.width, mask.height),
            (56, 56, 56, 56)
        );
        for (&v, &l) in img.data.iter().zip(&mask.labels) {
            assert!(l <= 10);
            assert_eq!(
                v >= 32,
                l > 0,
                "an item pixel is labelled with its class, the rest background"
            );
        }
        assert!(mask.labels.iter().any(|&l| l > 0));
    }
    let rgb = SegDataset::builtin(Split::Val, 3, 64).unwrap();
    assert_eq!(rgb.images[0].data.len(), 64 * 64 * 3);
    assert!(SegDataset::builtin(Split::Val, 1, 20)
        .unwrap_err()
        .to_string()
        .contains("at least 28"));
}

fn save_gray(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u8) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]))
        .save(path)
        .unwrap();
}

#[test]
fn ade20k_folders_load_with_bad_pairs_skipped_and_counted() {
    let root = tempdir("ade");
    let (imgs, anns) = (
        root.join("images/training"),
        root.join("annotations/training"),
    );
    std::fs::create_dir_all(&imgs).unwrap();
    std::fs::create_dir_all(&anns).unwrap();
    std::fs::write(root.join("classes.txt"), "wall\nfloor\nsky\n").unwrap();
    // a: good (values 0..=3: 0 ignored, v -> class v - 1); b: no mask; c: mask of another size; d: class 9.
    for n in ["a", "b", "c", "d"] {
        save_gray(&imgs.join(format!("{n}.png")), 8, 6, |x, y| {
            (x * 30 + y) as u8
        });
    }
    save_gray(&anns.join("a.png"), 8, 6, |x, _| (x % 4) as u8);
    save_gray(&anns.join("c.png"), 7, 6, |_, _| 1);
    save_gray(&anns.join("d.png"), 8, 6, |x, _| if x == 3 { 9 } else { 1 });
    let ds = SegDataset::folder(&root, Split::Train, Decode::from(3)).unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds.class_names, ["wall", "floor", "sky"]);
    let want: Vec<u32> = (0..6)
        .flat_map(|_| (0..8).map(|x| if x % 4 == 0 { IGNORE } else { x % 4 - 1 }))
        .collect();
    assert_eq!(ds.masks[0].labels, want);
    assert_eq!(ds.skipped.len(), 3);
    let why: Vec<&str> = ds.skipped.iter().map(|(_, w)| w.as_str()).collect();
    assert!(why[0].starts_with("no label map"), "{why:?}");
    assert!(
        why[1].contains("the label map is 7 x 6 but the image 8 x 6"),
        "{why:?}"
    );
    assert!(why[2].contains("class 9 is past the 3 classes"), "{why:?}");
    assert!(ds
        .skipped_summary()
        .unwrap()
        .starts_with("skipped 3 image/label pairs"));
    // Without classes.txt the classes are counted from the labels; no validation part is explained.
    std::fs::remove_file(root.join("classes.txt")).unwrap();
    let ds = SegDataset::folder(&root, Split::Train, Decode::from(1)).unwrap();
    assert_eq!(
        ds.classes(),
        9,
        "class 9 (stored 9 -> index 8) now counts: d loads too"
    );
    let e = SegDataset::folder(&root, Split::Val, Decode::from(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no images/validation folder"), "{e}");
}

#[test]
fn joint_augmentation_keeps_pixels_and_labels_together() {
    // Left half class 0 at gray 40, right half class 1 at gray 200, over 64 x 48.
    let (w, h) = (64u32, 48u32);
    let img = beitlab::data::dataset::Image {
        width: w,
        height: h,
        channels: 1,
        data: (0..w * h)
            .map(|i| if i % w < w / 2 { 40 } else { 200 })
            .collect(),
    };
    let mask = LabelMap {
        width: w,
        height: h,
        labels: (0..w * h).map(|i| u32::from(i % w >= w / 2)).collect(),
    };
    let aug = Augment {
        mean: vec![0.0],
        std: vec![1.0],
        ..Augment::beit(32, 1)
    };
    let mut rng = Rng::new(7);
    let (mut agree, mut total) = (0, 0);
    for _ in 0..50 {
        let (mut px, mut lab) = (Vec::new(), Vec::new());
        augment_pair(&aug, &img, &mask, &mut rng, &mut px, &mut lab);
        assert_eq!((px.len(), lab.len()), (32 * 32, 32 * 32));
        for (&p, &l) in px.iter().zip(&lab) {
            // Away from the boundary's blend, the gray level says the class.
            if (p - 40.0 / 255.0).abs() < 1e-6 || (p - 200.0 / 255.0).abs() < 1e-6 {
                total += 1;
                agree += usize::from((p > 0.5) == (l == 1));
            }
        }
    }
    assert!(
        total > 10_000 && agree == total,
        "{agree} of {total} pixels agree with their labels"
    );
    let (mut px, mut lab) = (Vec::new(), Vec::new());
    eval_pair(&aug, &img, &mask, &mut px, &mut lab);
    assert_eq!(lab.iter().filter(|&&l| l == 1).count(), 32 * 16);
}
