//! tokens.wgsl: token assembly (mask token, CLS, positions) and its gradients; row gather / scatter.
//! Assembly is a copy plus at most one add (atol 1e-7); gradients are sums over the batch (atol 1e-6·√(B·N)).

use super::common::*;
use beitlab::cpu;
use beitlab::ops::tokens::{self, TokenShape};

fn case(batch: u32, patches: u32, dim: u32, seed: u64) {
    let mut rng = Rng::new(seed);
    let s = TokenShape {
        batch,
        patches,
        dim,
    };
    let (b, n, c) = (batch as usize, patches as usize, dim as usize);
    let t = n + 1;
    let emb = rng.vec(b * n * c, 1.0);
    let mask: Vec<u32> = (0..b * n).map(|_| (rng.unit() < 0.4) as u32).collect();
    let (mt, cls, pos) = (rng.vec(c, 1.0), rng.vec(c, 1.0), rng.vec(t * c, 1.0));
    let (mg, mtg) = (up_u32(&mask), up(&mt));
    let x = poisoned(b * t * c);
    run(tokens::assemble(
        ctx(),
        &x,
        &up(&emb),
        Some((&mg, &mtg)),
        &up(&cls),
        Some(&up(&pos)),
        s,
    )
    .unwrap());
    let mut want = vec![0.0; b * t * c];
    let (fmt, fcls, fpos) = (f64s(&mt), f64s(&cls), f64s(&pos));
    cpu::tokens::assemble(
        &mut want,
        &f64s(&emb),
        Some((&mask[..], &fmt[..])),
        &fcls,
        Some(&fpos[..]),
        s,
    );
    assert_close("assemble", &read(&x), &want, 1e-7, 1e-7);

    let dx = rng.vec(b * t * c, 1.0);
    let (m0, c0, p0) = (rng.vec(c, 1.0), rng.vec(c, 1.0), rng.vec(t * c, 1.0));
    let (demb, dmt, dcls, dpos) = (poisoned(b * n * c), with(&m0), with(&c0), with(&p0));
    run(tokens::assemble_backward(
        ctx(),
        Some(&demb),
        Some(&dmt),
        Some(&dcls),
        Some(&dpos),
        &up(&dx),
        Some(&mg),
        s,
        false,
    )
    .unwrap());
    let (mut wemb, mut wmt, mut wcls, mut wpos) =
        (vec![0.0; b * n * c], f64s(&m0), f64s(&c0), f64s(&p0));
    cpu::tokens::assemble_backward(
        Some(&mut wemb),
        Some(&mut wmt),
        Some(&mut wcls),
        Some(&mut wpos),
        &f64s(&dx),
        Some(&mask),
        s,
        false,
    );
    let tol = 1e-6 * ((b * n) as f64).sqrt() + 1e-7;
    assert_close("assemble demb", &read(&demb), &wemb, 0.0, 0.0);
    assert_close("assemble dmask_token", &read(&dmt), &wmt, tol, 1e-6);
    assert_close("assemble dcls", &read(&dcls), &wcls, tol, 1e-6);
    assert_close("assemble dpos", &read(&dpos), &wpos, tol, 1e-6);

    // Mean pooling over patch tokens and its gradient (accumulated onto existing values).
    let pooled = poisoned(b * c);
    let xin = rng.vec(b * t * c, 1.0);
    run(tokens::mean_patches(ctx(), &pooled, &up(&xin), s).unwrap());
    let mut wp = vec![0.0; b * c];
    cpu::tokens::mean_patches(&mut wp, &f64s(&xin), s);
    assert_close("mean_patches", &read(&pooled), &wp, 1e-6, 1e-5);
    let dpool = rng.vec(b * c, 1.0);
    let base_dx = rng.vec(b * t * c, 1.0);
    let mdx = with(&base_dx);
    run(tokens::mean_patches_backward(ctx(), &mdx, &up(&dpool), s, true).unwrap());
    let mut wdx = f64s(&base_dx);
    cpu::tokens::mean_patches_backward(&mut wdx, &f64s(&dpool), s, true);
    assert_close("mean_patches_backward", &read(&mdx), &wdx, 1e-7, 1e-6);

    // The patch tokens as a feature map (B, C, N), and back (written over poison, then accumulated).
    let map = poisoned(b * c * n);
    run(tokens::patch_map(ctx(), &map, &up(&xin), s).unwrap());
    let mut wmap = vec![0.0; b * c * n];
    cpu::tokens::patch_map(&mut wmap, &f64s(&xin), s);
    assert_close("patch_map", &read(&map), &wmap, 0.0, 0.0);
    let dmap = rng.vec(b * c * n, 1.0);
    let pdx = poisoned(b * t * c);
    run(tokens::patch_map_backward(ctx(), &pdx, &up(&dmap), s, false).unwrap());
    let mut wpdx = vec![0.0; b * t * c];
    cpu::tokens::patch_map_backward(&mut wpdx, &f64s(&dmap), s, false);
    assert_close("patch_map_backward", &read(&pdx), &wpdx, 0.0, 0.0);
    let adx = with(&base_dx);
    run(tokens::patch_map_backward(ctx(), &adx, &up(&dmap), s, true).unwrap());
    let mut wadx = f64s(&base_dx);
    cpu::tokens::patch_map_backward(&mut wadx, &f64s(&dmap), s, true);
    assert_close(
        "patch_map_backward accumulate",
        &read(&adx),
        &wadx,
        1e-7,
        1e-6,
    );

    // Gather the masked rows of emb, scatter them back into a fresh buffer.
    let idx: Vec<u32> = (0..(b * n) as u32)
        .filter(|&i| mask[i as usize] != 0)
        .collect();
    if idx.is_empty() {
        return;
    }
    let m = idx.len();
    let (ig, eg) = (up_u32(&idx), up(&emb));
    let g = poisoned(m * c);
    run(tokens::gather_rows(ctx(), &g, &eg, &ig, m as u32, dim, false).unwrap());
    let mut wg = vec![0.0; m * c];
    cpu::tokens::gather_rows(&mut wg, &f64s(&emb), &idx, m, c, false);
    assert_close("gather_rows", &read(&g), &wg, 0.0, 0.0);
    let base = rng.vec(b * n * c, 1.0);
    let sc = with(&base);
    run(tokens::scatter_rows(ctx(), &sc, &g, &ig, m as u32, dim, true).unwrap());
    let mut ws = f64s(&base);
    cpu::tokens::scatter_rows(&mut ws, &wg, &idx, m, c, true);
    assert_close("scatter_rows", &read(&sc), &ws, 1e-7, 1e-7);
}

#[test]
fn tokens_tiny() {
    case(1, 1, 1, 1);
    case(2, 4, 3, 2);
}

#[test]
fn tokens_odd() {
    case(3, 49, 37, 3);
}

#[test]
fn tokens_past_65535_workgroups() {
    case(2, 3, 2_100_001, 4);
}
