//! The curves view: loss, accuracy (MIM and fine-tuning, pretrained vs scratch when that comparison runs),
//! learning rate, gradient norm and throughput, live.

use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::explain;
use crate::app::curves::{decimate, Panel};
use crate::app::BeitApp;

pub fn show(app: &mut BeitApp, ui: &mut egui::Ui) {
    explain(
        ui,
        "The MIM loss falls and MIM accuracy rises as BEiT learns to predict hidden tokens; fine-tuning accuracy \
         shows what pretraining bought (tick \"also fine-tune from scratch\" to compare).",
    );
    let Some(s) = app.session.as_ref() else {
        return;
    };
    let width = ui.available_width();
    // One column per physical pixel: a long run's series are cut to what those columns can show.
    let columns = (width * ui.ctx().pixels_per_point()).ceil().max(1.0) as usize;
    for panel in Panel::ALL {
        ui.label(egui::RichText::new(panel.title()).strong());
        if s.curves.of(panel).next().is_none() {
            ui.label("(nothing yet)");
            continue;
        }
        let response = Plot::new(panel.title())
            .height(150.0)
            .width(width)
            .legend(Legend::default())
            .x_axis_label("step")
            .show(ui, |plot| {
                // The plot's bounds and mode as they were last frame: following the data, each series is cut over
                // its own steps; zoomed or panned, over the visible ones.
                let shown = plot.plot_bounds();
                let follow = plot.auto_bounds().x || !shown.is_valid_x();
                for (name, points) in s.curves.of(panel) {
                    let (lo, hi) = if follow {
                        x_range(points)
                    } else {
                        (shown.min()[0], shown.max()[0])
                    };
                    let kept = decimate(points, lo, hi, columns);
                    plot.line(Line::new(name.to_string(), PlotPoints::from(kept)));
                }
                (shown.min()[0], shown.max()[0])
            });
        // The series were cut to last frame's bounds; where a zoom, pan or reset (or new data, when following it)
        // changed them in this frame, draw once more. Unchanged bounds ask for nothing, so an idle view stays idle.
        let (was_lo, was_hi) = response.inner;
        let now = response.transform.bounds();
        let (now_lo, now_hi) = (now.min()[0], now.max()[0]);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (now_hi - now_lo).abs().max(1.0);
        if !close(now_lo, was_lo) || !close(now_hi, was_hi) {
            ui.ctx().request_repaint();
        }
    }
}

/// The smallest and largest x of a series.
fn x_range(points: &[[f64; 2]]) -> (f64, f64) {
    points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p[0]), hi.max(p[0]))
        })
}
