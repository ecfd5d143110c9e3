//! `beitlab bench app`: the app's per-frame work measured without a window. Each frame runs exactly what the
//! window runs (training for the frame's budget, the inspector, building and tessellating the whole UI) on a
//! headless device, then sleeps to the next vsync tick; the work time per frame and the training throughput are
//! printed. Presentation (drawing the tessellated UI) is not included.

use super::curves::{Curves, Panel};
use super::phases::PhaseKind;
use super::settings::Settings;
use super::time::{Duration, Instant};
use super::{BeitApp, View};
use crate::gpu::{ErrorPolicy, GpuContext, Requirements};

#[derive(Clone, Debug)]
pub struct AppBenchOptions {
    pub preset: Option<String>,
    pub batch: Option<u32>,
    pub seconds: f64,
    /// Frames per second the loop is paced at (a display's refresh).
    pub fps: f64,
    pub view: View,
    /// Steps of an earlier run's curves (made-up numbers, five series) drawn next to the live ones, as after a
    /// long run: what the curves view costs then.
    pub history: u32,
}

/// Run pretraining (the heaviest phase) in the app loop for `seconds`; print frame work times and images/s.
pub fn bench_app(opts: &AppBenchOptions) -> Result<(), String> {
    let probe = GpuContext::new_headless_blocking(&Requirements::kernels(), ErrorPolicy::Record)
        .map_err(|e| e.to_string())?;
    let cpu = probe.adapter_info.device_type == wgpu::DeviceType::Cpu;
    drop(probe);
    let mut settings = Settings::chosen(cpu, opts.preset.as_deref(), opts.batch);
    settings.steps = [1_000_000; 4];
    let cfg = super::session::mim_config(&settings.preset).map_err(|e| e.to_string())?;
    let req = Requirements::kernels()
        .with_buffer_bytes(cfg.largest_buffer_bytes(settings.batch, cfg.patches()));
    let ctx =
        GpuContext::new_headless_blocking(&req, ErrorPolicy::Record).map_err(|e| e.to_string())?;
    let adapter = ctx.describe();
    let mut app = BeitApp::with_settings(ctx, settings.clone(), false);
    if let Some(f) = &app.fatal {
        return Err(f.clone());
    }
    app.view = opts.view;
    let egui_ctx = egui::Context::default();
    let frame = |app: &mut BeitApp| {
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(1280.0, 800.0),
            )),
            ..Default::default()
        };
        let out = egui_ctx.run_ui(input, |ui| app.frame(ui));
        egui_ctx.tessellate(out.shapes, out.pixels_per_point).len()
    };
    // Warm up: pipelines compiled, first inspector refresh.
    for _ in 0..5 {
        frame(&mut app);
    }
    if let Some(s) = app.session.as_mut() {
        s.run_phase(PhaseKind::Pretrain);
        add_history(&mut s.curves, opts.history);
    }
    let period = Duration::from_secs_f64(1.0 / opts.fps.max(1.0));
    let t0 = Instant::now();
    let mut work_ms = Vec::new();
    // At least one frame, however short `seconds`.
    loop {
        let f0 = Instant::now();
        frame(&mut app);
        let spent = f0.elapsed();
        work_ms.push(spent.as_secs_f64() * 1e3);
        if let Some(e) = app.session.as_ref().and_then(|s| s.error.clone()) {
            return Err(e);
        }
        if t0.elapsed().as_secs_f64() >= opts.seconds {
            break;
        }
        if spent < period {
            std::thread::sleep(period - spent);
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let s = app.session.as_ref().ok_or("no session")?;
    let steps = s.done[PhaseKind::Pretrain.index()];
    work_ms.sort_by(f64::total_cmp);
    let pct = |q: f64| work_ms[((work_ms.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "app loop, {} b{} pretraining at {:.0} fps on {adapter}, {} view{}:",
        settings.preset,
        settings.batch,
        opts.fps,
        opts.view.short_name(),
        if opts.history > 0 {
            format!(", {} earlier steps of curves", opts.history)
        } else {
            String::new()
        }
    );
    println!(
        "  {} frames in {elapsed:.1} s; work per frame: mean {:.2} ms, median {:.2} ms, 95th percentile {:.2} ms, max {:.2} ms",
        work_ms.len(),
        work_ms.iter().sum::<f64>() / work_ms.len() as f64,
        pct(0.5),
        pct(0.95),
        pct(1.0)
    );
    println!(
        "  {steps} steps reported: {:.1} steps/s, {:.0} images/s; MIM loss {:.4}",
        steps as f64 / elapsed,
        (steps * settings.batch) as f64 / elapsed,
        s.curves
            .last(Panel::Loss, "pretrain MIM loss")
            .unwrap_or(f64::NAN)
    );
    Ok(())
}

/// `steps` points of an earlier run in each panel, under names of their own: a loss falling with noise, an
/// accuracy rising, a warm-up-and-decay learning rate, a noisy gradient norm and a steady throughput.
fn add_history(curves: &mut Curves, steps: u32) {
    let mut rng = crate::rng::Rng::new(7);
    for step in 0..steps {
        let x = step as f64;
        let t = x / steps.max(1) as f64;
        let noise = rng.uniform() - 0.5;
        curves.push(
            Panel::Loss,
            "earlier run loss",
            x,
            4.0 - 2.0 * t + 0.3 * noise,
        );
        curves.push(
            Panel::Accuracy,
            "earlier run accuracy",
            x,
            0.5 * t + 0.05 * noise,
        );
        curves.push(
            Panel::LearningRate,
            "earlier run",
            x,
            3e-3 * (t * 10.0).min(1.0) * (1.0 - t),
        );
        curves.push(Panel::GradNorm, "earlier run", x, 1.0 + 0.5 * noise);
        curves.push(Panel::Throughput, "earlier run", x, 300.0 + 20.0 * noise);
    }
}
