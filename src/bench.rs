//! `beitlab bench kernels`: times every kernel family at BEiT-sized shapes (the tiny and base presets' dims)
//! and prints time per call with GFLOP/s or GB/s, plus the cost of one dispatch in a chain of small dependent
//! dispatches inside one compute pass. Launches are built once; each measurement records the launch many
//! times in one compute pass, submits once and waits, so the number is GPU time plus one round trip / reps.

use std::time::Instant;

use crate::cpu::attention::{relative_position_index, RelposInverse};
use crate::gpu::{Dispatch, ErrorPolicy, FlatLayout, GpuContext, GpuError, GpuSlice, Requirements};
use crate::ops::adamw::{AdamWPlan, AdamWStep};
use crate::ops::attention::{AttentionShape, HeadView, RelposScatterIndex};
use crate::ops::crossentropy::CrossEntropyOut;
use crate::ops::patches::PatchShape;
use crate::ops::precision::ProductInputs;
use crate::ops::tokens::TokenShape;
use crate::ops::{
    adamw, attention, attention_fused, crossentropy, droppath, elementwise, gelu, layernorm,
    matmul, matmul_f16, patches, probe, reduce, tokens,
};

/// The dims of a BEiT configuration that set kernel shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchDims {
    pub name: &'static str,
    pub image: u32,
    pub patch: u32,
    pub channels: u32,
    pub hidden: u32,
    pub heads: u32,
    pub mlp: u32,
    pub depth: u32,
    pub vocab: u32,
}

/// tiny: 32 px, patch 4, dim 192, heads 3; base: BEiT-B/16 at 224.
pub const BENCH_PRESETS: [BenchDims; 2] = [
    BenchDims {
        name: "tiny",
        image: 32,
        patch: 4,
        channels: 3,
        hidden: 192,
        heads: 3,
        mlp: 768,
        depth: 12,
        vocab: 8192,
    },
    BenchDims {
        name: "base",
        image: 224,
        patch: 16,
        channels: 3,
        hidden: 768,
        heads: 12,
        mlp: 3072,
        depth: 12,
        vocab: 8192,
    },
];

impl BenchDims {
    pub fn patches(&self) -> u32 {
        (self.image / self.patch) * (self.image / self.patch)
    }
    /// Parameters of the backbone + MIM head (what AdamW and the grad norm sweep over).
    pub fn parameters(&self) -> u64 {
        let (c, m, l) = (self.hidden as u64, self.mlp as u64, self.depth as u64);
        let per_block = 3 * c * c + 2 * c + c * c + c + 2 * c * m + m + c + 4 * c + 2 * c;
        let embed = c * (self.channels * self.patch * self.patch) as u64 + c + 2 * c;
        embed + l * per_block + 2 * c + c * self.vocab as u64 + self.vocab as u64
    }
}

/// One printed row.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchRow {
    pub preset: String,
    pub kernel: String,
    pub shape: String,
    pub us_per_call: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gbps: Option<f64>,
    pub dispatches: usize,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub presets: Vec<BenchDims>,
    pub batch: u32,
    /// Seconds of GPU work to aim for per measurement.
    pub target_seconds: f64,
    /// Peak of the card, to print achieved / peak (optional; the adapter does not report it).
    pub peak_tflops: Option<f64>,
}

/// Time `dispatches`: one warm-up, then enough repetitions in one pass to fill `target` seconds.
fn time_us(ctx: &GpuContext, dispatches: &[Dispatch], target: f64) -> Result<f64, GpuError> {
    let once = |reps: usize| -> Result<f64, GpuError> {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("bench"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("bench"),
                timestamp_writes: None,
            });
            for _ in 0..reps {
                for d in dispatches {
                    d.record(&mut pass);
                }
            }
        }
        let t0 = Instant::now();
        ctx.queue.submit([enc.finish()]);
        ctx.wait()?;
        Ok(t0.elapsed().as_secs_f64())
    };
    once(1)?;
    let t1 = once(1)?;
    let reps = ((target / t1.max(1e-6)) as usize).clamp(1, 500);
    if reps == 1 {
        return Ok(t1 * 1e6);
    }
    Ok(once(reps)? / reps as f64 * 1e6)
}

struct Bench<'a> {
    ctx: &'a GpuContext,
    opts: &'a BenchOptions,
    preset: &'static str,
    rows: Vec<BenchRow>,
}

impl Bench<'_> {
    fn buf(&self, n: u64) -> GpuSlice {
        let s = GpuSlice::new(self.ctx, "bench buffer", n.max(1));
        // Small finite values so no kernel runs on NaN or infinities.
        s.write(self.ctx, &vec![0.01f32; n.max(1) as usize]);
        s
    }

    fn measure(
        &mut self,
        kernel: &str,
        shape: String,
        d: Vec<Dispatch>,
        flops: Option<f64>,
        bytes: Option<f64>,
    ) -> Result<(), GpuError> {
        let us = time_us(self.ctx, &d, self.opts.target_seconds)?;
        self.rows.push(BenchRow {
            preset: self.preset.to_string(),
            kernel: kernel.to_string(),
            shape,
            us_per_call: us,
            gflops: flops.map(|f| f / us / 1e3),
            gbps: bytes.map(|b| b / us / 1e3),
            dispatches: d.len(),
        });
        Ok(())
    }

    fn linear(&mut self, name: &str, m: u32, n: u32, k: u32) -> Result<(), GpuError> {
        let (x, w, b, y) = (
            self.buf(m as u64 * k as u64),
            self.buf(n as u64 * k as u64),
            self.buf(n as u64),
            self.buf(m as u64 * n as u64),
        );
        let flops = 2.0 * m as f64 * n as f64 * k as f64;
        let d = matmul::linear_forward(self.ctx, &y, &x, &w, Some(&b), m, n, k)?;
        self.measure(
            &format!("linear_forward {name}"),
            format!("{m}x{n}x{k}"),
            d,
            Some(flops),
            None,
        )?;
        let (dx, dw, db) = (
            self.buf(m as u64 * k as u64),
            self.buf(n as u64 * k as u64),
            self.buf(n as u64),
        );
        let d = matmul::linear_backward(
            self.ctx,
            Some(&dx),
            &dw,
            Some(&db),
            &y,
            &x,
            &w,
            m,
            n,
            k,
            false,
        )?;
        self.measure(
            &format!("linear_backward {name}"),
            format!("{m}x{n}x{k}"),
            d,
            Some(2.0 * flops),
            None,
        )
    }

    /// The MLP's products with GELU in their launch: fc1 writing its activation (`rows x mlp x c`) and fc2's
    /// backward taking GELU's slope (`rows x c x mlp`); compare with the plain fc1 / fc2 rows plus the GELU rows.
    fn mlp_gelu(&mut self, rows: u32, mlp: u32, c: u32) -> Result<(), GpuError> {
        let (x, w1, b1) = (
            self.buf(rows as u64 * c as u64),
            self.buf(mlp as u64 * c as u64),
            self.buf(mlp as u64),
        );
        let (h, f) = (
            self.buf(rows as u64 * mlp as u64),
            self.buf(rows as u64 * mlp as u64),
        );
        let flops = 2.0 * rows as f64 * mlp as f64 * c as f64;
        let f32_products = ProductInputs::F32;
        let d = matmul::linear_gelu_forward_as(
            f32_products,
            self.ctx,
            &h,
            &f,
            &x,
            &w1,
            Some(&b1),
            rows,
            mlp,
            c,
        )?;
        let shape = format!("{rows}x{mlp}x{c}");
        self.measure("linear_forward fc1+gelu", shape, d, Some(flops), None)?;
        let (dy, w2, dw2, db2, dh) = (
            self.buf(rows as u64 * c as u64),
            self.buf(c as u64 * mlp as u64),
            self.buf(c as u64 * mlp as u64),
            self.buf(c as u64),
            self.buf(rows as u64 * mlp as u64),
        );
        let d = matmul::linear_backward_gelu_as(
            f32_products,
            self.ctx,
            &dh,
            &self.buf(1),
            &dw2,
            Some(&db2),
            &dy,
            &f,
            &h,
            &w2,
            rows,
            c,
            mlp,
        )?;
        let shape = format!("{rows}x{c}x{mlp}");
        self.measure(
            "linear_backward fc2+gelu",
            shape,
            d,
            Some(2.0 * flops),
            None,
        )
    }

    fn preset(&mut self, p: &BenchDims) -> Result<(), GpuError> {
        let ctx = self.ctx;
        let b = self.opts.batch;
        let (n, c, h, mlp, v) = (p.patches(), p.hidden, p.heads, p.mlp, p.vocab);
        let t = n + 1;
        let rows = b * t;
        let masked = (b * n * 2).div_ceil(5); // ~40% of the patches
        let f4 = |e: u64| Some(4.0 * e as f64);

        self.linear("qkv", rows, 3 * c, c)?;
        self.linear("fc1", rows, mlp, c)?;
        self.linear("fc2", rows, c, mlp)?;
        self.mlp_gelu(rows, mlp, c)?;
        self.linear("lm_head", masked, v, c)?;

        // Attention core on a fused qkv buffer, with the gathered relative position bias.
        let hd = c / h;
        let s = AttentionShape {
            batch: b,
            heads: h,
            tokens: t,
            head_dim: hd,
            scale: (hd as f32).powf(-0.5),
        };
        let qkv = self.buf(rows as u64 * 3 * c as u64);
        let dqkv = self.buf(rows as u64 * 3 * c as u64);
        let (o, dout) = (
            self.buf(rows as u64 * c as u64),
            self.buf(rows as u64 * c as u64),
        );
        let tt = b as u64 * h as u64 * t as u64 * t as u64;
        let (pm, sc, dp, ds) = (self.buf(tt), self.buf(tt), self.buf(tt), self.buf(tt));
        let bias = self.buf(h as u64 * t as u64 * t as u64);
        let dbias = self.buf(h as u64 * t as u64 * t as u64);
        let views = |i| HeadView::fused_qkv(i, h, t, hd);
        let ov = HeadView::btc(h, t, hd);
        let attn_flops = 4.0 * tt as f64 * hd as f64;
        let shape = format!("B{b} H{h} T{t} D{hd}");
        let d = attention::attention_forward(
            ctx,
            (&o, ov),
            &pm,
            &sc,
            (&qkv, views(0)),
            (&qkv, views(1)),
            (&qkv, views(2)),
            Some(&bias),
            s,
        )?;
        self.measure(
            "attention_forward",
            shape.clone(),
            d,
            Some(attn_flops),
            None,
        )?;
        let d = attention::attention_backward(
            ctx,
            (&dqkv, views(0)),
            (&dqkv, views(1)),
            (&dqkv, views(2)),
            Some(&dbias),
            &dp,
            &ds,
            (&dout, ov),
            &pm,
            (&qkv, views(0)),
            (&qkv, views(1)),
            (&qkv, views(2)),
            s,
        )?;
        self.measure(
            "attention_backward",
            shape.clone(),
            d,
            Some(2.0 * attn_flops),
            None,
        )?;
        // The fused core (the GPUs' default in training graphs): the same work, FLOP/s counted on the same
        // useful FLOPs (its backward also computes the scores again).
        if attention_fused::fits(s) {
            let lse = self.buf(attention_fused::lse_len(s));
            let (q, k, v) = ((&qkv, views(0)), (&qkv, views(1)), (&qkv, views(2)));
            let d = attention_fused::forward(ctx, (&o, ov), &lse, q, k, v, Some(&bias), s)?;
            self.measure(
                "attention_forward fused",
                shape.clone(),
                d,
                Some(attn_flops),
                None,
            )?;
            let d = attention_fused::backward(
                ctx,
                (&dqkv, views(0)),
                (&dqkv, views(1)),
                (&dqkv, views(2)),
                Some(&dbias),
                &pm,
                &ds,
                (&dout, ov),
                (&o, ov),
                &lse,
                q,
                k,
                v,
                Some(&bias),
                s,
            )?;
            self.measure(
                "attention_backward fused",
                shape,
                d,
                Some(2.0 * attn_flops),
                None,
            )?;
        }
        let d = attention::softmax_forward(ctx, &pm, &sc, Some((&bias, h * t)), b * h * t, t)?;
        self.measure(
            "softmax_forward",
            format!("{}x{t}", b * h * t),
            d,
            None,
            f4(3 * tt),
        )?;

        let g = (p.image / p.patch) as usize;
        let (idx, table_rows) = relative_position_index(g, g);
        let (table, index) = (
            self.buf(table_rows as u64 * h as u64),
            GpuSlice::from_slice(ctx, "relpos index", &idx),
        );
        let d = attention::relpos_gather(ctx, &bias, &table, &index, h, t * t, table_rows as u32)?;
        self.measure(
            "relpos_gather",
            format!("{table_rows}x{h} -> {h}x{t}x{t}"),
            d,
            None,
            f4(3 * h as u64 * (t * t) as u64),
        )?;
        let inv = RelposScatterIndex::upload(ctx, &RelposInverse::new(&idx, table_rows));
        let d = attention::relpos_scatter(ctx, &table, &dbias, &inv, h, true)?;
        self.measure(
            "relpos_scatter",
            format!("{h}x{t}x{t} -> {table_rows}x{h}"),
            d,
            None,
            f4(3 * h as u64 * (t * t) as u64),
        )?;

        // Row-wise kernels over (B·T, C) and (B·T, MLP).
        let (x, y, dy, dx) = (
            self.buf(rows as u64 * c as u64),
            self.buf(rows as u64 * c as u64),
            self.buf(rows as u64 * c as u64),
            self.buf(rows as u64 * c as u64),
        );
        let (mean, rstd, gamma, beta, dg, db) = (
            self.buf(rows as u64),
            self.buf(rows as u64),
            self.buf(c as u64),
            self.buf(c as u64),
            self.buf(c as u64),
            self.buf(c as u64),
        );
        let e = rows as u64 * c as u64;
        let d =
            layernorm::layernorm_forward(ctx, &y, &mean, &rstd, &x, &gamma, &beta, rows, c, 1e-6)?;
        self.measure(
            "layernorm_forward",
            format!("{rows}x{c}"),
            d,
            None,
            f4(2 * e),
        )?;
        let d = layernorm::layernorm_backward(
            ctx, &dx, &dg, &db, &dy, &x, &mean, &rstd, &gamma, rows, c, true,
        )?;
        self.measure(
            "layernorm_backward",
            format!("{rows}x{c}"),
            d,
            None,
            f4(5 * e),
        )?;
        let d = elementwise::add(ctx, &y, &x, &dy, e as u32, false)?;
        self.measure("add (residual)", format!("{e}"), d, None, f4(3 * e))?;
        let d = droppath::residual_branch(
            ctx,
            &y,
            &x,
            &dy,
            Some(&gamma),
            (b, t * c, c),
            Some(0.9),
            7,
            1,
        )?;
        self.measure(
            "residual_branch (λ, drop path)",
            format!("{b}x{}", t * c),
            d,
            None,
            f4(3 * e),
        )?;
        let rp = droppath::DropPathParams::residual(b, t * c, c, Some(0.9), true, 7, 1);
        let ru = GpuSlice::uniform(ctx, "DropPathParams", &rp);
        let rpc = droppath::residual_backward_rows_per_chunk(ctx, rows as u64);
        let d = droppath::residual_branch_backward_with(
            ctx, &dx, &dg, &y, &dy, &x, &gamma, &ru, &rp, rpc,
        )?;
        self.measure(
            "residual_branch_backward",
            format!("{b}x{}", t * c),
            d,
            None,
            f4(3 * e),
        )?;
        let d = droppath::drop_path(ctx, &y, &x, b, t * c, 0.9, 7, 1, true)?;
        self.measure("drop_path", format!("{b}x{}", t * c), d, None, f4(3 * e))?;
        let d = reduce::col_sum(ctx, &db, &dy, rows, c, true)?;
        self.measure("col_sum (bias grad)", format!("{rows}x{c}"), d, None, f4(e))?;

        let em = rows as u64 * mlp as u64;
        let (hx, hy, hd_) = (self.buf(em), self.buf(em), self.buf(em));
        let d = gelu::gelu_forward(ctx, &hy, &hx, em as u32)?;
        self.measure("gelu_forward", format!("{rows}x{mlp}"), d, None, f4(2 * em))?;
        let d = gelu::gelu_backward(ctx, &hd_, &hy, &hx, em as u32, false)?;
        self.measure(
            "gelu_backward",
            format!("{rows}x{mlp}"),
            d,
            None,
            f4(3 * em),
        )?;

        // Embedding side.
        let ps = PatchShape {
            batch: b,
            channels: p.channels,
            height: p.image,
            width: p.image,
            patch: p.patch,
        };
        let (img, pat) = (self.buf(ps.elements()), self.buf(ps.elements()));
        let d = patches::patchify(ctx, &pat, &img, ps)?;
        self.measure(
            "patchify",
            format!("{b}x{}x{}x{}", p.channels, p.image, p.image),
            d,
            None,
            f4(2 * ps.elements()),
        )?;
        let ts = TokenShape {
            batch: b,
            patches: n,
            dim: c,
        };
        let (emb, mask, mt, cls, pos) = (
            self.buf(b as u64 * n as u64 * c as u64),
            GpuSlice::from_slice(ctx, "mask", &vec![1u32; (b * n) as usize]),
            self.buf(c as u64),
            self.buf(c as u64),
            self.buf(t as u64 * c as u64),
        );
        let d = tokens::assemble(ctx, &x, &emb, Some((&mask, &mt)), &cls, Some(&pos), ts)?;
        self.measure(
            "tokens assemble",
            format!("B{b} N{n} C{c}"),
            d,
            None,
            f4(2 * e),
        )?;
        let idx_rows = GpuSlice::from_slice(ctx, "masked rows", &(0..masked).collect::<Vec<u32>>());
        let gathered = self.buf(masked as u64 * c as u64);
        let d = tokens::gather_rows(ctx, &gathered, &x, &idx_rows, masked, c, false)?;
        self.measure(
            "gather_rows (masked)",
            format!("{masked}x{c}"),
            d,
            None,
            f4(2 * masked as u64 * c as u64),
        )?;

        // Head loss.
        let (logits, dlogits) = (
            self.buf(masked as u64 * v as u64),
            self.buf(masked as u64 * v as u64),
        );
        let labels = GpuSlice::from_slice(
            ctx,
            "labels",
            &(0..masked).map(|i| i % v).collect::<Vec<u32>>(),
        );
        let (loss, correct, lse, stats) = (
            self.buf(masked as u64),
            self.buf(masked as u64),
            self.buf(masked as u64),
            self.buf(2),
        );
        let out = CrossEntropyOut {
            loss: &loss,
            correct: &correct,
            lse: &lse,
            stats: Some(&stats),
        };
        let d = crossentropy::ce_forward(
            ctx, out, &logits, masked, &idx_rows, &labels, masked, v, 0.0,
        )?;
        self.measure(
            "ce_forward",
            format!("{masked}x{v}"),
            d,
            None,
            f4(masked as u64 * v as u64),
        )?;
        let d = crossentropy::ce_backward(
            ctx,
            &dlogits,
            &logits,
            masked,
            &lse,
            &idx_rows,
            &labels,
            masked,
            v,
            0.0,
            1.0 / masked as f32,
        )?;
        self.measure(
            "ce_backward",
            format!("{masked}x{v}"),
            d,
            None,
            f4(2 * masked as u64 * v as u64),
        )?;

        // Optimizer over the whole model's parameters.
        let np = p.parameters();
        let limit = ctx.limits.max_storage_buffer_binding_size / 4;
        if np <= limit {
            let mut layout = FlatLayout::new(ctx.storage_alignment());
            layout.push("all", &[np as usize]);
            let (pa, gr, m1, m2, sq) = (
                self.buf(np),
                self.buf(np),
                self.buf(np),
                self.buf(np),
                self.buf(1),
            );
            let plan = AdamWPlan::new(ctx, &layout, &[(1.0, 0.05)])?;
            plan.set_step(
                ctx,
                &AdamWStep {
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    step: 1,
                    max_grad_norm: Some(3.0),
                },
            );
            let d = reduce::sum_squares(ctx, &sq, 0, &gr, np as u32)?;
            self.measure("grad sum of squares", format!("{np}"), d, None, f4(np))?;
            let d = adamw::adamw_step(ctx, &pa, &m1, &m2, &gr, &sq, &plan)?;
            self.measure("adamw_step", format!("{np}"), d, None, f4(7 * np))?;
        } else {
            eprintln!("note: {} parameters exceed one storage binding here; adamw / grad norm skipped for {}", np, p.name);
        }
        Ok(())
    }
}

/// Run the kernel benchmark; rows come back in print order.
pub fn bench_kernels(opts: &BenchOptions) -> Result<(GpuContext, Vec<BenchRow>), GpuError> {
    let ctx = GpuContext::new_headless_blocking(
        &Requirements::kernels().with_buffer_bytes(256 << 20),
        ErrorPolicy::Record,
    )
    .or_else(|_| {
        GpuContext::new_headless_blocking(&Requirements::kernels(), ErrorPolicy::Record)
    })?;
    let mut bench = Bench {
        ctx: &ctx,
        opts,
        preset: "-",
        rows: Vec::new(),
    };

    // The acceptance shape: 512^3.
    let (a, w, y) = (
        bench.buf(512 * 512),
        bench.buf(512 * 512),
        bench.buf(512 * 512),
    );
    let d = matmul::linear_forward(&ctx, &y, &a, &w, None, 512, 512, 512)?;
    bench.measure(
        "matmul",
        "512x512x512".into(),
        d,
        Some(2.0 * 512f64.powi(3)),
        None,
    )?;

    // The kernel-level target shape on GPUs (on a software adapter it would take minutes).
    if ctx.adapter_info.device_type != wgpu::DeviceType::Cpu {
        let big = 4096u32;
        let e = big as u64 * big as u64;
        let (a, w, y) = (bench.buf(e), bench.buf(e), bench.buf(e));
        let d = matmul::linear_forward(&ctx, &y, &a, &w, None, big, big, big)?;
        bench.measure(
            "matmul",
            format!("{big}x{big}x{big}"),
            d,
            Some(2.0 * (big as f64).powi(3)),
            None,
        )?;
        bench_coop(&mut bench, big)?;
    }

    // Dispatch overhead: a chain of 1000 small dependent dispatches in one compute pass.
    let chain_buf = bench.buf(256);
    let one = elementwise::copy(&ctx, &chain_buf, &a, 256, true)?;
    let chain: Vec<Dispatch> = (0..1000).flat_map(|_| one.iter().cloned()).collect();
    let us = time_us(&ctx, &chain, opts.target_seconds)?;
    bench.rows.push(BenchRow {
        preset: "-".into(),
        kernel: "dispatch chain (per dispatch)".into(),
        shape: "1000 x 256 elements, one pass".into(),
        us_per_call: us / 1000.0,
        gflops: None,
        gbps: None,
        dispatches: 1000,
    });

    bench_probes(&mut bench)?;

    for p in &opts.presets {
        bench.preset = p.name;
        bench.preset(p)?;
    }
    let rows = bench.rows;
    Ok((ctx, rows))
}

/// The adapter probes of `shaders/probe.wgsl`: multiply-adds on values in registers (GFLOP/s, a multiply-add
/// counted as 2 FLOP), and scalar and vec4 storage reads from a cache-resident 16 KiB (GB/s). Enough
/// invocations to fill every core of a software adapter, or every multiprocessor of a GPU.
fn bench_probes(bench: &mut Bench) -> Result<(), GpuError> {
    let software = bench.ctx.adapter_info.device_type == wgpu::DeviceType::Cpu;
    let invocations: u32 = if software { 1 << 14 } else { 1 << 22 };
    let n = 4096u32;
    let (src, out) = (bench.buf(n as u64), bench.buf(invocations as u64));
    let rows = [
        (
            probe::Probe::MultiplyAdd,
            PROBE_MULTIPLY_ADD,
            "registers",
            if software { 32 } else { 512 },
        ),
        (
            probe::Probe::Read,
            "probe read f32",
            "storage, 16 KiB",
            if software { 64 } else { 1024 },
        ),
        (
            probe::Probe::Read4,
            "probe read vec4",
            "storage, 16 KiB",
            if software { 64 } else { 1024 },
        ),
    ];
    for (which, name, what, iters) in rows {
        let d = probe::probe(bench.ctx, which, &out, &src, n, invocations, iters)?;
        let work = invocations as f64 * iters as f64 * which.per_step() as f64;
        let shape = format!("{invocations} inv x {iters} x {}, {what}", which.per_step());
        let (flops, bytes) = match which.bytes_per_read() {
            None => (Some(2.0 * work), None),
            Some(b) => (None, Some(b as f64 * work)),
        };
        bench.measure(name, shape, d, flops, bytes)?;
    }
    Ok(())
}

/// The peak `bench kernels` prints achieved / peak against: the given one, or on a software adapter (whose
/// peak no table gives) the multiply-add probe's rate among `rows`, in TFLOP/s.
pub fn table_peak(ctx: &GpuContext, rows: &[BenchRow], given: Option<f64>) -> Option<f64> {
    given.or_else(|| {
        (ctx.adapter_info.device_type == wgpu::DeviceType::Cpu)
            .then(|| rows.iter().find(|r| r.kernel == PROBE_MULTIPLY_ADD))
            .flatten()
            .and_then(|r| r.gflops)
            .map(|g| g / 1e3)
    })
}

/// The kernel name of the multiply-add probe's row.
pub const PROBE_MULTIPLY_ADD: &str = "probe multiply-add";

/// Mixed precision's product at `big`³ where the device has f16 cooperative matrices and the kernel passes its
/// self-check: the whole linear layer (operands packed to f16, product, result written back) and the
/// tensor-core launch alone. Elsewhere one line on stderr says why there are no such rows.
fn bench_coop(bench: &mut Bench, big: u32) -> Result<(), GpuError> {
    let ctx = bench.ctx;
    if let Err(why) = matmul_f16::self_check(ctx) {
        eprintln!("no f16 cooperative-matrix rows: {why}");
        return Ok(());
    }
    let e = big as u64 * big as u64;
    let (a, w, y) = (bench.buf(e), bench.buf(e), bench.buf(e));
    let d =
        matmul::linear_forward_as(ProductInputs::F16Coop, ctx, &y, &a, &w, None, big, big, big)?;
    let flops = Some(2.0 * (big as f64).powi(3));
    let product = vec![d[2].clone()];
    bench.measure(
        "matmul f16 coop (linear)",
        format!("{big}x{big}x{big}"),
        d,
        flops,
        None,
    )?;
    bench.measure(
        "matmul f16 coop (product)",
        format!("{big}x{big}x{big}"),
        product,
        flops,
        None,
    )
}

/// The rows as an aligned text table.
pub fn format_table(rows: &[BenchRow], peak_tflops: Option<f64>) -> String {
    let mut s = format!(
        "{:<6} {:<30} {:<34} {:>12} {:>10} {:>9}",
        "preset", "kernel", "shape", "us/call", "GFLOP/s", "GB/s"
    );
    if peak_tflops.is_some() {
        s.push_str(&format!(" {:>8}", "of peak"));
    }
    s.push('\n');
    for r in rows {
        let gf = r.gflops.map_or("-".to_string(), |g| format!("{g:.1}"));
        let gb = r.gbps.map_or("-".to_string(), |g| format!("{g:.1}"));
        s.push_str(&format!(
            "{:<6} {:<30} {:<34} {:>12.1} {:>10} {:>9}",
            r.preset, r.kernel, r.shape, r.us_per_call, gf, gb
        ));
        if let (Some(peak), Some(g)) = (peak_tflops, r.gflops) {
            s.push_str(&format!(" {:>7.1}%", 100.0 * g / (peak * 1e3)));
        }
        s.push('\n');
    }
    s
}

/// One `bench train` result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainBench {
    pub preset: String,
    pub image_size: u32,
    pub patch_size: u32,
    pub batch: u32,
    pub steps: u32,
    pub images_per_s: f64,
    pub step_ms_median: f64,
    pub gpu_buffer_mib: f64,
    pub gflop_per_step: f64,
    pub achieved_gflops: f64,
    /// Kernel launches in one training step (all in one compute pass, one submit).
    pub dispatches_per_step: usize,
    /// The arithmetic that ran after any fallback: "f32" or "mixed".
    pub precision: String,
    /// How the attention core ran: "fused" (no probabilities kept) or "kept".
    pub attention: String,
    /// The startup tuning (`gpu::tune`): "off" where the rules chose, else shapes timed in this run, the seconds
    /// that took (before the timed steps), and choices taken from the table.
    pub tuning: String,
    pub tuned_shapes: u32,
    pub tuning_s: f64,
    pub tuned_from_table: u32,
    pub adapter: String,
    /// With `profile`: per kernel entry point, launches per step and milliseconds per step, slowest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<KernelTime>,
}

/// The time one kernel entry point takes in a training step (each launch timed alone, so small launches also
/// carry one submit's overhead).
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelTime {
    pub kernel: String,
    pub launches: usize,
    pub ms: f64,
}

/// What `bench train` profiles: nothing, each kernel's launches summed, or summed per kernel and launch grid
/// (telling apart the products of one kernel: a step's attention products are `gemm_lanes [1, 1, 48]` at
/// tiny32 b16, its linear layers the grids with 17 row tiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Off,
    ByKernel,
    ByKernelAndGrid,
}

/// Time every launch of `work` alone (its own submit, waited for), `reps` times, and sum per kernel (and grid).
fn profile_launches(
    ctx: &GpuContext,
    work: &[Dispatch],
    reps: u32,
    by_grid: bool,
) -> Result<Vec<KernelTime>, crate::model::ModelError> {
    let key = |d: &Dispatch| {
        if by_grid {
            format!("{} {:?}", d.kernel.name, d.workgroups)
        } else {
            d.kernel.name.clone()
        }
    };
    let mut by_kernel: Vec<KernelTime> = Vec::new();
    for _ in 0..reps.max(1) {
        for d in work {
            ctx.wait()?;
            let t0 = Instant::now();
            Dispatch::submit(ctx, "profile", std::slice::from_ref(d))?;
            ctx.wait()?;
            let ms = t0.elapsed().as_secs_f64() * 1e3 / reps.max(1) as f64;
            let name = key(d);
            match by_kernel.iter_mut().find(|k| k.kernel == name) {
                Some(k) => k.ms += ms,
                None => by_kernel.push(KernelTime {
                    kernel: name,
                    launches: 0,
                    ms,
                }),
            }
        }
    }
    for k in &mut by_kernel {
        k.launches = work.iter().filter(|d| key(d) == k.kernel).count();
    }
    by_kernel.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    Ok(by_kernel)
}

/// One whole training step of a graph as the benchmarks run it: the graph's forward and backward, the
/// gradient's sum of squares, AdamW (weight decay 0.05, no layer decay, clip at 3) and, in mixed precision, the
/// loss scale's update; one submit.
pub(crate) struct StepWork {
    pub work: Vec<Dispatch>,
    plan: AdamWPlan,
    /// AdamW's moments and the sum of squares, held while `work` runs.
    _state: (crate::gpu::FlatBuffer, crate::gpu::FlatBuffer, GpuSlice),
}

impl StepWork {
    pub fn new(
        ctx: &GpuContext,
        model: &crate::model::BeitModel,
        graph: &crate::model::BeitGraph,
    ) -> Result<Self, crate::model::ModelError> {
        let groups = model
            .table
            .optimizer_groups(0.05, 1.0, model.cfg.num_hidden_layers);
        let mut plan = AdamWPlan::new(ctx, &model.table.layout, &groups)?;
        plan.loss_scaled = graph.loss_scaler.is_some();
        let (m, v) = (
            crate::gpu::FlatBuffer::new(ctx, "m", model.table.layout.clone()),
            crate::gpu::FlatBuffer::new(ctx, "v", model.table.layout.clone()),
        );
        let sumsq = match &graph.loss_scaler {
            Some(s) => s.state.clone(),
            None => GpuSlice::new(ctx, "sumsq", 1),
        };
        let mut work = graph.forward.clone();
        work.extend(graph.backward.iter().cloned());
        work.extend(reduce::sum_squares(
            ctx,
            &sumsq,
            0,
            &graph.grads.whole,
            graph.grads.layout.total as u32,
        )?);
        work.extend(adamw::adamw_step(
            ctx,
            &model.params.whole,
            &m.whole,
            &v.whole,
            &graph.grads.whole,
            &sumsq,
            &plan,
        )?);
        if let Some(s) = &graph.loss_scaler {
            work.extend(crate::ops::precision::update_loss_scale(ctx, s)?);
        }
        Ok(Self {
            work,
            plan,
            _state: (m, v, sumsq),
        })
    }

    /// Two warm-up steps, then `steps` timed ones, each submitted and waited for alone after
    /// `write_batch(timed)` wrote its inputs; the median step in seconds.
    pub fn median_seconds(
        &mut self,
        ctx: &GpuContext,
        steps: u32,
        mut write_batch: impl FnMut(bool) -> Result<(), crate::model::ModelError>,
    ) -> Result<f64, crate::model::ModelError> {
        let mut times = Vec::new();
        for step in 1..=steps + 2 {
            write_batch(step > 2)?;
            self.plan.set_step(
                ctx,
                &AdamWStep {
                    lr: 1e-4,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    step,
                    max_grad_norm: Some(3.0),
                },
            );
            ctx.wait()?;
            let t0 = Instant::now();
            Dispatch::submit(ctx, "bench train", &self.work)?;
            ctx.wait()?;
            if step > 2 {
                times.push(t0.elapsed().as_secs_f64());
            }
        }
        times.sort_by(|a, b| a.total_cmp(b));
        Ok(times[times.len() / 2])
    }

    /// Every launch of the step timed alone (`Profile::Off`: none).
    pub fn profile(
        &self,
        ctx: &GpuContext,
        by: Profile,
    ) -> Result<Vec<KernelTime>, crate::model::ModelError> {
        match by {
            Profile::Off => Ok(Vec::new()),
            by => profile_launches(ctx, &self.work, 2, by == Profile::ByKernelAndGrid),
        }
    }
}

/// Forward FLOPs of one image through BEiT with `masked` patches in the MIM head (matrix products only).
pub fn forward_flops(cfg: &crate::model::BeitConfig, masked: f64) -> f64 {
    let (n, t, c, i) = (
        cfg.patches() as f64,
        cfg.tokens() as f64,
        cfg.hidden_size as f64,
        cfg.intermediate_size as f64,
    );
    let embed = 2.0 * n * cfg.patch_dim() as f64 * c;
    let layer = 2.0 * t * c * 3.0 * c + 4.0 * t * t * c + 2.0 * t * c * c + 4.0 * t * c * i;
    embed + cfg.num_hidden_layers as f64 * layer + 2.0 * masked * c * cfg.vocab_size as f64
}

/// Time full MIM pretraining steps (forward, masked cross-entropy, backward, clip, AdamW) on random data;
/// each step submitted and waited for alone, median over `steps` after two warm-up steps. With a `profile`,
/// every launch of a step is then also timed alone and summed per kernel (and grid). `mixed`: mixed precision
/// with these products (loss scaling and its update included).
pub fn bench_train(
    ctx: &GpuContext,
    cfg: &crate::model::BeitConfig,
    preset: &str,
    batch: u32,
    steps: u32,
    profile: Profile,
    mixed: Option<crate::ops::precision::ProductInputs>,
) -> Result<TrainBench, crate::model::ModelError> {
    use crate::data::masking::BlockMasking;
    use crate::model::{BeitGraph, BeitModel, GraphOptions, MimRows};
    let before = crate::gpu::allocated_bytes();
    let model = BeitModel::new_random(ctx, cfg, 0)?;
    let gen = BlockMasking::scaled(cfg.grid());
    let cap = batch * gen.num_masking_patches;
    let graph = BeitGraph::new(
        ctx,
        cfg,
        &model.table,
        &model.params,
        GraphOptions {
            batch,
            mim_rows: MimRows::Masked(cap),
            drop_path_seed: Some(1),
            label_smoothing: 0.0,
            keep_block_outputs: None,
            fused_attention: None,
            mixed,
        },
    )?;
    let mut step = StepWork::new(ctx, &model, &graph)?;
    let held = crate::gpu::allocated_bytes() - before;
    let mut rng = crate::rng::Rng::new(5);
    let per = (cfg.num_channels * cfg.image_size * cfg.image_size) as usize;
    let pixels: Vec<f32> = (0..batch as usize * per)
        .map(|_| rng.range(-1.0, 1.0) as f32)
        .collect();
    let mut masked_total = 0u64;
    let median = step.median_seconds(ctx, steps, |timed| {
        let mask: Vec<u8> = (0..batch).flat_map(|_| gen.generate(&mut rng)).collect();
        let mcount = mask.iter().filter(|&&x| x != 0).count();
        let labels: Vec<u32> = (0..mcount)
            .map(|_| (rng.uniform() * cfg.vocab_size as f64) as u32 % cfg.vocab_size)
            .collect();
        if timed {
            masked_total += mcount as u64;
        }
        graph.write_batch(ctx, &pixels, Some(&mask), Some(&labels))
    })?;
    let masked_per_image = masked_total as f64 / (steps as f64 * batch as f64);
    let profile = step.profile(ctx, profile)?;
    let gflop = 3.0 * forward_flops(cfg, masked_per_image) * batch as f64 / 1e9;
    let tuning = ctx.tune_summary();
    Ok(TrainBench {
        preset: preset.to_string(),
        image_size: cfg.image_size,
        patch_size: cfg.patch_size,
        batch,
        steps,
        images_per_s: batch as f64 / median,
        step_ms_median: median * 1e3,
        gpu_buffer_mib: held as f64 / (1 << 20) as f64,
        gflop_per_step: gflop,
        achieved_gflops: gflop / median,
        dispatches_per_step: step.work.len(),
        precision: if mixed.is_some() { "mixed" } else { "f32" }.into(),
        attention: if graph.attentions.is_empty() {
            "fused"
        } else {
            "kept"
        }
        .into(),
        tuning: if tuning.mode == crate::gpu::TuneMode::Off {
            "off".into()
        } else {
            tuning
                .file
                .as_ref()
                .map_or("in memory".into(), |f| f.display().to_string())
        },
        tuned_shapes: tuning.timed,
        tuning_s: tuning.seconds,
        tuned_from_table: tuning.reused,
        adapter: ctx.adapter_info.name.clone(),
        profile,
    })
}
