//! groupnorm.wgsl: group normalisation of feature maps against its CPU twin. atol 1e-5, rtol 1e-4: tree sums in f32
//! over up to a few hundred thousand values of a group (the backward's means of products most of all).

use super::common::*;
use beitlab::cpu;
use beitlab::ops::groupnorm::{self, GroupNormShape};

fn case(s: GroupNormShape, accumulate: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let n = s.len() as usize;
    let c = s.channels as usize;
    let bg = (s.batch * s.groups) as usize;
    // An offset per group, so the mean matters.
    let x: Vec<f32> = rng
        .vec(n, 1.0)
        .iter()
        .enumerate()
        .map(|(i, v)| v + (i / (n / bg).max(1)) as f32 * 0.5)
        .collect();
    let (gamma, beta, dy) = (rng.vec(c, 1.5), rng.vec(c, 1.0), rng.vec(n, 1.0));
    let (xg, gg, bgp, dyg) = (up(&x), up(&gamma), up(&beta), up(&dy));
    let (y, mean, rstd) = (poisoned(n), poisoned(bg), poisoned(bg));
    run(groupnorm::group_norm_forward(ctx(), &y, &mean, &rstd, &xg, &gg, &bgp, s).unwrap());
    let (mut wy, mut wm, mut wr) = (vec![0.0f64; n], vec![0.0f64; bg], vec![0.0f64; bg]);
    cpu::groupnorm::group_norm_forward(
        &mut wy,
        &mut wm,
        &mut wr,
        &f64s(&x),
        &f64s(&gamma),
        &f64s(&beta),
        s,
    );
    assert_close("group norm y", &read(&y), &wy, 1e-5, 1e-4);
    assert_close("group norm mean", &read(&mean), &wm, 1e-5, 1e-4);
    assert_close("group norm rstd", &read(&rstd), &wr, 1e-5, 1e-4);

    let start = rng.vec(n.max(c), 1.0);
    let fresh = |len: usize| {
        if accumulate {
            with(&start[..len])
        } else {
            poisoned(len)
        }
    };
    let base = |len: usize| {
        if accumulate {
            f64s(&start[..len])
        } else {
            vec![0.0; len]
        }
    };
    let (dx, dgm, dbt) = (fresh(n), fresh(c), fresh(c));
    run(groupnorm::group_norm_backward(
        ctx(),
        &dx,
        &dgm,
        &dbt,
        &dyg,
        &xg,
        &gg,
        &mean,
        &rstd,
        s,
        accumulate,
    )
    .unwrap());
    let (mut wdx, mut wdg, mut wdb) = (base(n), base(c), base(c));
    cpu::groupnorm::group_norm_backward(
        &mut wdx,
        &mut wdg,
        &mut wdb,
        &f64s(&dy),
        &f64s(&x),
        &f64s(&gamma),
        &wm,
        &wr,
        s,
        accumulate,
    );
    assert_close("group norm dx", &read(&dx), &wdx, 1e-5, 1e-4);
    // dγ and dβ sum B·H·W unit-scale terms with heavy cancellation: f32 rounding grows with their count.
    let atol = 1e-5 + 1e-7 * (s.batch * s.pixels) as f64;
    assert_close("group norm dgamma", &read(&dgm), &wdg, atol, 1e-4);
    assert_close("group norm dbeta", &read(&dbt), &wdb, atol, 1e-4);
}

fn shape(batch: u32, channels: u32, pixels: u32, groups: u32) -> GroupNormShape {
    GroupNormShape {
        batch,
        channels,
        pixels,
        groups,
        eps: 1e-5,
    }
}

#[test]
fn group_norm_tiny_odd_and_large() {
    case(shape(1, 1, 1, 1), false, 1);
    case(shape(2, 6, 7, 3), true, 2);
    case(shape(3, 32, 13 * 11, 8), false, 3);
    case(shape(2, 64, 56 * 56, 32), false, 4);
    // One group over many values: a whole image's channels.
    case(shape(1, 8, 300 * 300, 1), false, 5);
}

#[test]
fn channels_that_do_not_split_into_groups_are_refused() {
    let b = poisoned(4);
    let Err(e) = groupnorm::group_norm_forward(ctx(), &b, &b, &b, &b, &b, &b, shape(1, 3, 1, 2))
    else {
        panic!("3 channels in 2 groups were accepted");
    };
    assert!(
        e.to_string()
            .contains("3 channels do not split into 2 groups"),
        "{e}"
    );
}
