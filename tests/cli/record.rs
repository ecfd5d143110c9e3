//! `beitlab pretrain --record FILE`: the MIM view over training as an animated GIF, one frame before training
//! and one every `--record-every` steps.

use image::AnimationDecoder;

use super::helpers::{fails, ok, path, tempdir};

#[test]
fn pretraining_records_the_mim_view_as_an_animated_gif() {
    let dir = tempdir("record");
    let gif = dir.join("mim.gif");
    let out = ok(
        &dir,
        &[
            "pretrain",
            "--steps",
            "6",
            "--tokenizer-steps",
            "2",
            "--batch",
            "8",
            "--record",
            path(&gif),
            "--record-every",
            "2",
            "--out",
            "run",
        ],
    );
    assert!(
        out.stdout.contains("recorded 4 frames of the MIM view"),
        "{}",
        out.stdout
    );
    let file = std::io::BufReader::new(std::fs::File::open(&gif).unwrap());
    let frames = image::codecs::gif::GifDecoder::new(file)
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    // Step 0 (untrained), 2, 4, 6: four columns of 28 x 3 pixels and six samples.
    assert_eq!(frames.len(), 4);
    let first = frames[0].buffer();
    assert_eq!(
        first.dimensions(),
        (4 * (84 + 4) + 4, 16 + 6 * (84 + 4) + 4)
    );
    // Masked patches are grey in the second column, and the pictures are not blank.
    let distinct: std::collections::BTreeSet<[u8; 4]> = first.pixels().map(|p| p.0).collect();
    assert!(distinct.len() > 50, "{} colours", distinct.len());
    assert!(first.pixels().any(|p| p.0 == [128, 128, 128, 255]));
    // Pixel regression has no tokens to show.
    let e = fails(
        &dir,
        &[
            "pretrain", "--steps", "2", "--target", "pixels", "--record", "x.gif", "--out", "px",
        ],
    );
    assert!(e.contains("--record shows visual tokens"), "{e}");
    assert!(!dir.join("px/run.json").exists(), "refused before writing");
    // A file that cannot be written is refused before training.
    std::fs::write(dir.join("a-file"), b"x").unwrap();
    let e = fails(
        &dir,
        &[
            "pretrain",
            "--steps",
            "2",
            "--tokenizer-steps",
            "2",
            "--record",
            "a-file/x.gif",
            "--out",
            "bad-path",
        ],
    );
    assert!(e.contains("a-file"), "{e}");
    assert!(!dir.join("bad-path/checkpoint").exists(), "nothing trained");
}
