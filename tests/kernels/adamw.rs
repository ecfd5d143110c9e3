//! adamw.wgsl: one AdamW step over a flat buffer of several tensors with per-tensor lr multipliers and
//! weight-decay flags, the global clip read from the device. Tolerance atol 1e-6, rtol 1e-5: the same f32
//! operations in the same order, except sqrt / division rounding.

use super::common::*;
use beitlab::cpu;
use beitlab::gpu::{FlatBuffer, FlatLayout};
use beitlab::ops::adamw::{self, AdamWPlan, AdamWStep};
use beitlab::ops::reduce;

/// One AdamW step of `shapes` against the twin, with `per_invocation` quads per invocation of `adamw_step4`
/// (where the layout allows quads at all).
fn case(shapes: &[&[usize]], clip: Option<f32>, seed: u64, per_invocation: u32) {
    let mut rng = Rng::new(seed);
    let mut layout = FlatLayout::new(ctx().storage_alignment());
    for (i, s) in shapes.iter().enumerate() {
        layout.push(&format!("t{i}"), s);
    }
    let groups: Vec<(f32, f32)> = (0..shapes.len())
        .map(|i| {
            (
                0.65f32.powi(i as i32 % 3),
                if i % 2 == 0 { 0.05 } else { 0.0 },
            )
        })
        .collect();
    let n = layout.total as usize;
    let (p0, g, m0, v0) = (
        rng.vec(n, 1.0),
        rng.vec(n, 2.0),
        rng.vec(n, 0.1),
        rng.vec(n, 0.1).iter().map(|v| v.abs()).collect::<Vec<_>>(),
    );
    let bufs: Vec<FlatBuffer> = (0..4)
        .map(|_| FlatBuffer::new(ctx(), "adamw test", layout.clone()))
        .collect();
    for (b, d) in bufs.iter().zip([&p0, &g, &m0, &v0]) {
        b.whole.write(ctx(), d);
    }
    let sumsq = poisoned(1);
    let plan =
        AdamWPlan::with_quads_per_invocation(ctx(), &layout, &groups, per_invocation).unwrap();
    let hp = AdamWStep {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        step: 3,
        max_grad_norm: clip,
    };
    plan.set_step(ctx(), &hp);
    let mut d = reduce::sum_squares(ctx(), &sumsq, 0, &bufs[1].whole, n as u32).unwrap();
    d.extend(
        adamw::adamw_step(
            ctx(),
            &bufs[0].whole,
            &bufs[2].whole,
            &bufs[3].whole,
            &bufs[1].whole,
            &sumsq,
            &plan,
        )
        .unwrap(),
    );
    run(d);
    let (mut p, mut m, mut v) = (p0.clone(), m0.clone(), v0.clone());
    let gsq = g.iter().map(|&x| x as f64 * x as f64).sum::<f64>() as f32;
    cpu::adamw::adamw_step(&mut p, &mut m, &mut v, &g, gsq, &layout, &groups, &hp);
    // Padding between tensors is never touched; compare tensor by tensor.
    let (gp, gm, gv) = (
        read(&bufs[0].whole),
        read(&bufs[2].whole),
        read(&bufs[3].whole),
    );
    let mut padding = vec![true; n];
    for e in &layout.entries {
        padding[e.offset as usize..(e.offset + e.len) as usize].fill(false);
    }
    for (i, _) in padding.iter().enumerate().filter(|(_, &pad)| pad) {
        assert_eq!(
            (gp[i].to_bits(), gm[i].to_bits(), gv[i].to_bits()),
            (p0[i].to_bits(), m0[i].to_bits(), v0[i].to_bits()),
            "padding element {i} was written"
        );
    }
    for e in &layout.entries {
        let r = e.offset as usize..(e.offset + e.len) as usize;
        assert_close(
            &format!("{} param", e.name),
            &gp[r.clone()],
            &f64s(&p[r.clone()]),
            1e-6,
            1e-5,
        );
        assert_close(
            &format!("{} m", e.name),
            &gm[r.clone()],
            &f64s(&m[r.clone()]),
            1e-6,
            1e-5,
        );
        assert_close(
            &format!("{} v", e.name),
            &gv[r.clone()],
            &f64s(&v[r.clone()]),
            1e-6,
            1e-5,
        );
    }
}

/// Quads per invocation on GPUs (1) and on software adapters.
const LAYOUTS: [u32; 2] = [1, adamw::SOFTWARE_QUADS_PER_INVOCATION];

#[test]
fn adamw_tiny() {
    for q in LAYOUTS {
        case(&[&[1]], None, 1, q);
        case(&[&[3], &[2, 2]], Some(1.0), 2, q);
    }
}

/// Every tensor at a multiple of 4 and a total that is one: the four-at-a-time entry, tensors ending inside
/// a quad included (the padding after them must stay as it was), with one to five quads per invocation
/// (tensors ending inside an invocation's run of quads).
#[test]
fn adamw_quads() {
    let plan_total = |shapes: &[&[usize]]| {
        let mut layout = FlatLayout::new(ctx().storage_alignment());
        for (i, s) in shapes.iter().enumerate() {
            layout.push(&format!("t{i}"), s);
        }
        layout.total
    };
    let shapes: &[&[usize]] = &[&[5, 3], &[7], &[64, 2]];
    assert_eq!(plan_total(shapes) % 4, 0, "the case must take adamw_step4");
    for q in 1..=5 {
        case(shapes, Some(2.0), 5, q);
    }
    let long: &[&[usize]] = &[&[300, 7], &[12], &[1000, 3]];
    assert_eq!(plan_total(long) % 4, 0, "the case must take adamw_step4");
    for q in LAYOUTS {
        case(long, Some(2.0), 6, q);
    }
}

#[test]
fn adamw_odd() {
    for q in LAYOUTS {
        case(&[&[197, 3], &[1], &[65, 7], &[300]], Some(3.0), 3, q);
    }
}

#[test]
fn adamw_past_65535_workgroups() {
    for q in LAYOUTS {
        case(&[&[4096, 4097], &[13]], Some(3.0), 4, q);
    }
}

#[test]
fn adamw_plan_fits_the_adapter_and_refuses_bad_runs() {
    let mut layout = FlatLayout::new(ctx().storage_alignment());
    layout.push("t", &[64]);
    let plan = AdamWPlan::new(ctx(), &layout, &[(1.0, 0.0)]).unwrap();
    let software = ctx().adapter_info.device_type == wgpu::DeviceType::Cpu;
    let want = if software {
        adamw::SOFTWARE_QUADS_PER_INVOCATION
    } else {
        1
    };
    assert_eq!(plan.quads_per_invocation, want);
    for bad in [0, 65] {
        let Err(err) = AdamWPlan::with_quads_per_invocation(ctx(), &layout, &[(1.0, 0.0)], bad)
        else {
            panic!("{bad} quads per invocation must be refused")
        };
        assert!(err.to_string().contains("outside 1 to 64"), "{err}");
    }
}
