//! The status view: the adapter, the limits the device was created with, GPU memory held, the step, throughput,
//! time left and frame times.

use super::explain;
use crate::app::BeitApp;

pub fn show(app: &mut BeitApp, ui: &mut egui::Ui) {
    explain(
        ui,
        "What the GPU is doing and how fast; training shares the window's GPU device.",
    );
    let Some(s) = app.session.as_ref() else {
        return;
    };
    let l = &s.ctx.limits;
    let counters = s.ctx.device.get_internal_counters();
    let held = counters.hal.buffer_memory.read();
    let mib = |b: f64| b / (1024.0 * 1024.0);
    egui::Grid::new("status").striped(true).show(ui, |ui| {
        let mut row = |k: &str, v: String| {
            ui.label(k);
            ui.label(v);
            ui.end_row();
        };
        row("adapter", s.ctx.describe());
        row(
            "storage binding / buffer",
            format!(
                "{:.0} MiB / {:.0} MiB",
                mib(l.max_storage_buffer_binding_size as f64),
                mib(l.max_buffer_size as f64)
            ),
        );
        row(
            "workgroup storage / invocations",
            format!(
                "{} KiB / {}",
                l.max_compute_workgroup_storage_size / 1024,
                l.max_compute_invocations_per_workgroup
            ),
        );
        row(
            "storage buffers per stage",
            l.max_storage_buffers_per_shader_stage.to_string(),
        );
        row(
            "GPU buffer memory held",
            if held > 0 {
                format!("{:.1} MiB", mib(held as f64))
            } else {
                "not reported by this backend".to_string()
            },
        );
        row(
            "model",
            format!(
                "{} ({} parameters), {}",
                s.settings.preset,
                s.mim.table.trainable_count(),
                s.tokenizer.describe()
            ),
        );
        row(
            "data",
            format!(
                "{} ({} train, {} validation images)",
                s.train.source,
                s.train.len(),
                s.val.len()
            ),
        );
        row(
            "phase",
            match s.progress() {
                Some((k, d, t)) => format!(
                    "{} step {d} / {t}{}",
                    k.name(),
                    if s.running { "" } else { " (paused)" }
                ),
                None => "idle".into(),
            },
        );
        row(
            "images / s",
            s.images_per_second()
                .map_or("-".into(), |x| format!("{x:.1}")),
        );
        row(
            "ETA",
            s.eta_seconds().map_or("-".into(), |x| format!("{x:.0} s")),
        );
        row(
            "frame time (mean / max of the last 120)",
            app.frames
                .summary()
                .map_or("-".into(), |(m, x)| format!("{m:.1} ms / {x:.1} ms")),
        );
        row(
            "training budget per frame",
            format!(
                "{:.0} ms, at most {} steps in flight",
                app.budget.as_secs_f64() * 1e3,
                s.max_in_flight
            ),
        );
    });
}
