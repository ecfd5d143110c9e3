//! patches.wgsl: patchify / unpatchify are permutations, compared exactly; unpatchify ∘ patchify = identity.

use super::common::*;
use beitlab::cpu;
use beitlab::ops::patches::{self, PatchShape};

fn case(s: PatchShape, seed: u64) {
    let n = s.elements() as usize;
    let img = Rng::new(seed).vec(n, 1.0);
    let pat = poisoned(n);
    let ig = up(&img);
    run(patches::patchify(ctx(), &pat, &ig, s).unwrap());
    let mut want = vec![0.0; n];
    cpu::patches::patchify(&mut want, &f64s(&img), s);
    assert_close("patchify", &read(&pat), &want, 0.0, 0.0);
    if (5 * n * 4) as u64 <= ctx().limits.max_storage_buffer_binding_size {
        let ctxt = poisoned(5 * n);
        run(patches::patch_context(ctx(), &ctxt, &pat, s).unwrap());
        let mut wc = vec![0.0; 5 * n];
        cpu::patches::patch_context(&mut wc, &want, s);
        assert_close("patch_context", &read(&ctxt), &wc, 0.0, 0.0);
    }
    let back = poisoned(n);
    run(patches::unpatchify(ctx(), &back, &pat, s).unwrap());
    assert_close("unpatchify", &read(&back), &f64s(&img), 0.0, 0.0);
}

#[test]
fn patches_tiny() {
    case(
        PatchShape {
            batch: 1,
            channels: 1,
            height: 1,
            width: 1,
            patch: 1,
        },
        1,
    );
    case(
        PatchShape {
            batch: 2,
            channels: 3,
            height: 4,
            width: 6,
            patch: 2,
        },
        2,
    );
}

#[test]
fn patches_odd() {
    case(
        PatchShape {
            batch: 3,
            channels: 3,
            height: 35,
            width: 21,
            patch: 7,
        },
        3,
    );
}

#[test]
fn patches_conv_weight_order() {
    // One 2x2 patch of a 2-channel 2x4 image: the first patch is (c0: a b / e f, c1: ...).
    let s = PatchShape {
        batch: 1,
        channels: 2,
        height: 2,
        width: 4,
        patch: 2,
    };
    let img: Vec<f64> = (0..16).map(|v| v as f64).collect();
    let mut p = vec![0.0; 16];
    cpu::patches::patchify(&mut p, &img, s);
    assert_eq!(&p[..8], &[0.0, 1.0, 4.0, 5.0, 8.0, 9.0, 12.0, 13.0]);
}

#[test]
fn patches_past_65535_workgroups() {
    case(
        PatchShape {
            batch: 1,
            channels: 1,
            height: 4100,
            width: 4100,
            patch: 4,
        },
        4,
    );
}

#[test]
fn patches_reject_indivisible_image() {
    let a = up(&[0.0; 30]);
    let err = patches::patchify(
        ctx(),
        &a,
        &a,
        PatchShape {
            batch: 1,
            channels: 1,
            height: 5,
            width: 6,
            patch: 2,
        },
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("not divisible"), "{err}");
}
