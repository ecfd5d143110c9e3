//! PNG line plots of training curves: one panel per quantity, every series of a panel in its own colour, axes
//! with their ranges written in a small built-in pixel font (no font files needed).

use std::path::Path;

use image::{Rgb, RgbImage};

/// One curve: (name, points (x, y), colour).
pub type Series<'a> = (&'a str, Vec<(f64, f64)>, [u8; 3]);

/// 3 x 5 pixel glyphs, rows top to bottom, 3 bits each (bit 2 = left).
fn glyph(c: char) -> [u8; 5] {
    match c.to_ascii_lowercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 3, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '%' => [5, 1, 2, 4, 5],
        ':' => [0, 2, 0, 2, 0],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        '/' => [1, 1, 2, 4, 4],
        ',' => [0, 0, 0, 2, 4],
        '+' => [0, 2, 7, 2, 0],
        'a' => [2, 5, 7, 5, 5],
        'b' => [6, 5, 6, 5, 6],
        'c' => [7, 4, 4, 4, 7],
        'd' => [6, 5, 5, 5, 6],
        'e' => [7, 4, 6, 4, 7],
        'f' => [7, 4, 6, 4, 4],
        'g' => [7, 4, 5, 5, 7],
        'h' => [5, 5, 7, 5, 5],
        'i' => [7, 2, 2, 2, 7],
        'j' => [1, 1, 1, 5, 7],
        'k' => [5, 5, 6, 5, 5],
        'l' => [4, 4, 4, 4, 7],
        'm' => [5, 7, 7, 5, 5],
        'n' => [6, 5, 5, 5, 5],
        'o' => [7, 5, 5, 5, 7],
        'p' => [7, 5, 7, 4, 4],
        'q' => [7, 5, 5, 7, 1],
        'r' => [6, 5, 6, 5, 5],
        's' => [7, 4, 7, 1, 7],
        't' => [7, 2, 2, 2, 2],
        'u' => [5, 5, 5, 5, 7],
        'v' => [5, 5, 5, 5, 2],
        'w' => [5, 5, 7, 7, 5],
        'x' => [5, 5, 2, 5, 5],
        'y' => [5, 5, 2, 2, 2],
        'z' => [7, 1, 2, 4, 7],
        _ => [0, 0, 0, 0, 0],
    }
}

/// Write `text` with its top-left corner at (x, y), each font pixel `scale` pixels wide.
pub(crate) fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, scale: i64, color: [u8; 3]) {
    for (i, ch) in s.chars().enumerate() {
        let g = glyph(ch);
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(
                                img,
                                x + (i as i64 * 4 + col) * scale + dx,
                                y + row as i64 * scale + dy,
                                color,
                            );
                        }
                    }
                }
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, Rgb(c));
    }
}

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3]) {
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
        put(img, x.round() as i64, y.round() as i64, c);
        put(img, x.round() as i64, y.round() as i64 + 1, c);
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// One panel of a plot: its title, what its x axis counts ("step", "seed") and its curves.
pub struct Panel<'a> {
    pub title: &'a str,
    pub x_axis: &'a str,
    pub series: Vec<Series<'a>>,
}

const WIDTH: u32 = 900;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const LEGEND_ROW: i64 = 14;

/// Where each legend entry of `series` goes: (x, row), flowing left to right under the title and wrapping at
/// the panel's right edge.
fn legend_layout(series: &[Series<'_>]) -> Vec<(i64, i64)> {
    let (mut x, mut row) = (LEFT as i64, 0);
    series
        .iter()
        .map(|(name, _, _)| {
            let width = 22 + 8 * name.chars().count() as i64 + 18;
            if x + width > (WIDTH as f64 - RIGHT) as i64 && x > LEFT as i64 {
                x = LEFT as i64;
                row += 1;
            }
            let at = (x, row);
            x += width;
            at
        })
        .collect()
}

/// Draw panels stacked vertically into a PNG at `path` (900 pixels wide; each panel 240 pixels plus its legend's
/// rows). Series of at most 12 points get a square marker at every point; an axis whose points are all on a few
/// integers (seeds) gets each integer written under it.
pub fn write_png(path: &Path, panels: &[Panel<'_>]) -> Result<(), String> {
    let layouts: Vec<Vec<(i64, i64)>> = panels.iter().map(|p| legend_layout(&p.series)).collect();
    let legend_rows = |l: &[(i64, i64)]| l.iter().map(|a| a.1 + 1).max().unwrap_or(0);
    let heights: Vec<u32> = layouts
        .iter()
        .map(|l| 240 + (LEGEND_ROW * legend_rows(l)) as u32)
        .collect();
    let total: u32 = heights.iter().sum();
    let mut img = RgbImage::from_pixel(WIDTH, total.max(1), Rgb([255, 255, 255]));
    let mut y_off = 0.0;
    for ((panel, layout), ph) in panels.iter().zip(&layouts).zip(&heights) {
        let panel_top = y_off;
        y_off += *ph as f64;
        let pts: Vec<(f64, f64)> = panel
            .series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        if pts.is_empty() {
            continue;
        }
        let (xmin, xmax) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (mut ymin, mut ymax) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        if ymax - ymin < 1e-12 {
            ymin -= 0.5;
            ymax += 0.5;
        }
        let top = 38.0 + (LEGEND_ROW * legend_rows(layout)) as f64;
        let (x0, x1, y0, y1) = (
            LEFT,
            WIDTH as f64 - RIGHT,
            panel_top + top,
            panel_top + *ph as f64 - 30.0,
        );
        let grey = [120, 120, 120];
        line(&mut img, (x0, y1), (x1, y1), grey);
        line(&mut img, (x0, y0), (x0, y1), grey);
        text(
            &mut img,
            x0 as i64,
            (panel_top + 8.0) as i64,
            panel.title,
            3,
            [0, 0, 0],
        );
        text(&mut img, 4, y0 as i64, &fmt(ymax), 2, grey);
        text(&mut img, 4, (y1 - 10.0) as i64, &fmt(ymin), 2, grey);
        let map = |p: (f64, f64)| {
            (
                x0 + (p.0 - xmin) / (xmax - xmin).max(1e-12) * (x1 - x0),
                y1 - (p.1 - ymin) / (ymax - ymin) * (y1 - y0),
            )
        };
        let few_integers = xmax - xmin <= 12.0 && pts.iter().all(|p| p.0.fract() == 0.0);
        let ticks: Vec<f64> = if few_integers {
            (0..=(xmax - xmin) as i64)
                .map(|i| xmin + i as f64)
                .collect()
        } else {
            vec![xmin, xmax]
        };
        for (i, x) in ticks.iter().enumerate() {
            let label = if i == 0 {
                format!("{} {x:.0}", panel.x_axis)
            } else {
                format!("{x:.0}")
            };
            let px = map((*x, ymin)).0;
            let lx = if i == 0 {
                x0
            } else if i + 1 == ticks.len() {
                px - 8.0 * label.len() as f64
            } else {
                px - 4.0 * label.len() as f64
            };
            text(&mut img, lx as i64, (y1 + 8.0) as i64, &label, 2, grey);
        }
        for ((name, points, color), (lx, row)) in panel.series.iter().zip(layout) {
            for pair in points.windows(2) {
                if pair.iter().all(|p| p.0.is_finite() && p.1.is_finite()) {
                    line(&mut img, map(pair[0]), map(pair[1]), *color);
                }
            }
            if points.len() <= 12 {
                for p in points.iter().filter(|p| p.0.is_finite() && p.1.is_finite()) {
                    let (mx, my) = map(*p);
                    for dy in -3..=3 {
                        for dx in -3..=3 {
                            put(
                                &mut img,
                                mx.round() as i64 + dx,
                                my.round() as i64 + dy,
                                *color,
                            );
                        }
                    }
                }
            }
            // Legend: a swatch and the name, in the band between the title and the plot.
            let ly = (panel_top + 30.0) as i64 + row * LEGEND_ROW;
            for dy in 0..8 {
                for dx in 0..16 {
                    put(&mut img, lx + dx, ly + dy, *color);
                }
            }
            text(&mut img, lx + 22, ly, name, 2, [40, 40, 40]);
        }
    }
    img.save(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Read `metrics.jsonl` (one JSON object per step) into (step, value) points of `key`.
pub fn read_metric(path: &Path, key: &str) -> Vec<(f64, f64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v.get("step")?.as_f64()?, v.get(key)?.as_f64()?)))
        .collect()
}

/// Moving average over `window` points (curves of per-step losses are noisy).
pub fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let w = window.max(1);
    (0..points.len())
        .map(|i| {
            let lo = i.saturating_sub(w - 1);
            let s: f64 = points[lo..=i].iter().map(|p| p.1).sum();
            (points[i].0, s / (i - lo + 1) as f64)
        })
        .collect()
}

/// The standard plot of a run folder's metrics.jsonl: loss, accuracy and gradient norm over steps.
pub fn plot_run(dir: &Path, what: &str) -> Result<std::path::PathBuf, String> {
    let log = dir.join("metrics.jsonl");
    let get = |k: &str| {
        let p = read_metric(&log, k);
        let w = (p.len() / 50).max(1);
        smooth(&p, w)
    };
    let blue = [30, 90, 200];
    let out = dir.join("curves.png");
    write_png(
        &out,
        &[
            Panel {
                title: &format!("{what} loss"),
                x_axis: "step",
                series: vec![("loss", get("loss"), blue)],
            },
            Panel {
                title: &format!("{what} accuracy"),
                x_axis: "step",
                series: vec![("accuracy", get("accuracy"), [200, 80, 30])],
            },
            Panel {
                title: "gradient norm",
                x_axis: "step",
                series: vec![("grad norm", get("grad_norm"), [60, 150, 60])],
            },
        ],
    )?;
    Ok(out)
}
