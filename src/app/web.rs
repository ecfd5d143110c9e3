//! The browser entry: eframe's web runner on the page's `<canvas id="beitlab">`, wgpu on WebGPU only (WebGL has no
//! compute shaders), options from the page's query string (`?start`, `?run=segment`, `?view=attention`, `?preset=micro`,
//! `?batch=16`). Failures are written into the page's `#status` element in plain words.

use eframe::wasm_bindgen::JsCast;
use eframe::web_sys;

use super::shell::{Shell, WindowOptions};

/// Options from the query string.
fn options_from_url() -> WindowOptions {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let mut opts = WindowOptions::default();
    for pair in search.trim_start_matches('?').split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "start" => opts.start = v != "0",
            "view" => match super::View::from_name(v) {
                Ok(view) => opts.view = Some(view),
                Err(e) => {
                    log::error!("{e}");
                    status(&e);
                }
            },
            "preset" => opts.preset = Some(v.to_string()),
            "lesson" => match super::lesson::parse_chapter(v) {
                Ok(n) => opts.lesson = Some(n),
                Err(e) => {
                    log::error!("{e}");
                    status(&e);
                }
            },
            "batch" => opts.batch = v.parse().ok(),
            "run" => match super::phases::PhaseKind::from_name(v) {
                Ok(kind) => opts.run = Some(kind),
                Err(e) => {
                    log::error!("{e}");
                    status(&e);
                }
            },
            _ => {}
        }
    }
    opts
}

/// Say something in the page's status line.
fn status(text: &str) {
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("status"))
    {
        el.set_text_content(Some(text));
    }
}

/// Start the app (called from `main` when the module loads).
pub fn start() {
    eframe::WebLogger::init(log::LevelFilter::Info).ok();
    wasm_bindgen_futures::spawn_local(async {
        let canvas = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id("beitlab"))
            .and_then(|e| e.dyn_into::<web_sys::HtmlCanvasElement>().ok());
        let Some(canvas) = canvas else {
            status("This page has no <canvas id=\"beitlab\">.");
            return;
        };
        let mut setup = egui_wgpu::WgpuSetupCreateNew::without_display_handle();
        setup.instance_descriptor.backends = wgpu::Backends::BROWSER_WEBGPU;
        setup.device_descriptor = std::sync::Arc::new(super::shell::device_descriptor);
        let mut web = eframe::WebOptions::default();
        web.wgpu_options.wgpu_setup = egui_wgpu::WgpuSetup::CreateNew(setup);
        let opts = options_from_url();
        let result = eframe::WebRunner::new()
            .start(
                canvas,
                web,
                Box::new(move |cc| Ok(Box::new(Shell::new(cc, opts)))),
            )
            .await;
        match result {
            Ok(()) => status(""),
            Err(e) => {
                let msg = e.as_string().unwrap_or_else(|| format!("{e:?}"));
                log::error!("beitlab error: the app could not start: {msg}");
                status(&format!(
                    "beitlab could not start WebGPU in this browser: {msg}. It needs WebGPU: Chrome or Edge 113 or \
                     newer on a supported GPU, Safari 26, or Firefox 141 on Windows (elsewhere, Firefox Nightly with \
                     dom.webgpu.enabled)."
                ));
            }
        }
    });
}
