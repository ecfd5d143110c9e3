//! The curves view: loss, accuracy (MIM and fine-tuning, pretrained vs scratch when that comparison runs),
//! learning rate, gradient norm and throughput, live.

use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::explain;
use crate::app::curves::Panel;
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
    for panel in Panel::ALL {
        let series: Vec<(String, Vec<[f64; 2]>)> = s
            .curves
            .of(panel)
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect();
        ui.label(egui::RichText::new(panel.title()).strong());
        if series.is_empty() {
            ui.label("(nothing yet)");
            continue;
        }
        Plot::new(panel.title())
            .height(150.0)
            .width(width)
            .legend(Legend::default())
            .x_axis_label("step")
            .show(ui, |plot| {
                for (name, points) in series {
                    plot.line(Line::new(name, PlotPoints::from(points)));
                }
            });
    }
}
