//! Pictures: the error-rate chart, the confusion matrix, digit galleries and
//! feature maps. Everything is drawn into memory with plotters, encoded as PNG,
//! and written atomically.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use lenet_fs::write_atomic;
use lenet_optim::EpochMetrics;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in; registering it cannot fail unless the file is not a font.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws into a `width x height` RGB canvas and writes it as a PNG file.
fn render(path: &Path, width: u32, height: u32, draw: impl FnOnce(&Area) -> Result<()>) -> Result<()> {
    register_font();
    let mut rgb = vec![255u8; (width * height * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        area.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        draw(&area)?;
        area.present().map_err(|e| anyhow!("{e}"))?;
    }
    let mut png = Vec::new();
    let img = image::RgbImage::from_raw(width, height, rgb).ok_or_else(|| anyhow!("canvas size mismatch"))?;
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    write_atomic(path, &png).with_context(|| format!("writing {}", path.display()))
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing: {e}")
}

/// Train, validation (when held out) and test error (%) per epoch, like the NumPy
/// original's figure.
pub fn error_rate_chart(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    render(path, 800, 500, |area| {
        let epochs = history.len().max(1) as f64;
        let top = history
            .iter()
            .flat_map(|m| {
                [
                    m.train_error,
                    m.valid_error.unwrap_or(0.0),
                    m.test_error.unwrap_or(0.0),
                ]
            })
            .fold(0.0f64, f64::max)
            * 100.0;
        let mut chart = ChartBuilder::on(area)
            .caption("LeNet-5 error rate", ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5..epochs + 0.5, 0.0..(top * 1.1).max(0.5))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("error (%)")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        let percent = |e: Option<f64>, m: &EpochMetrics| e.map(|e| (m.epoch as f64, 100.0 * e));
        let curves = [
            (
                "training error",
                BLUE,
                history
                    .iter()
                    .filter_map(|m| percent(Some(m.train_error), m))
                    .collect::<Vec<_>>(),
            ),
            (
                "validation error",
                RGBColor(0, 150, 0),
                history.iter().filter_map(|m| percent(m.valid_error, m)).collect(),
            ),
            (
                "test error",
                RED,
                history.iter().filter_map(|m| percent(m.test_error, m)).collect(),
            ),
        ];
        for (label, color, points) in curves.into_iter().filter(|c| !c.2.is_empty()) {
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// One bar per value, labelled by `labels` (or by index): for the layers whose maps
/// are single numbers (C5, F6, the ten outputs), which a picture of 1x1 maps hides.
pub fn bars(path: &Path, title: &str, values: &[f32], labels: Option<&[String]>) -> Result<()> {
    let n = values.len().max(1);
    let width = (60 + 14 * n).clamp(500, 1800) as u32;
    let (lo, hi) = values
        .iter()
        .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let pad = 0.05 * (hi - lo).max(1e-6);
    render(path, width, 360, |area| {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d((0..n).into_segmented(), (lo - pad)..(hi + pad))
            .map_err(err)?;
        let label_of = |i: usize| {
            labels
                .and_then(|l| l.get(i).cloned())
                .unwrap_or_else(|| i.to_string())
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(30))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => label_of(*i),
                _ => String::new(),
            })
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| {
                let color = if v >= 0.0 { BLUE } else { RED };
                Rectangle::new(
                    [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), v)],
                    color.mix(0.7).filled(),
                )
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// A 10x10 confusion matrix (rows: true class, columns: predicted) as a heat map.
#[allow(clippy::needless_range_loop)] // t and p are both indices and labels
pub fn confusion_png(path: &Path, confusion: &[[usize; 10]; 10]) -> Result<()> {
    let cell = 48i32;
    let (left, top) = (60i32, 60i32);
    render(
        path,
        (left + 10 * cell + 20) as u32,
        (top + 10 * cell + 20) as u32,
        |area| {
            let max_off = (0..10)
                .flat_map(|t| (0..10).filter(move |&p| p != t).map(move |p| (t, p)))
                .map(|(t, p)| confusion[t][p])
                .max()
                .unwrap_or(0)
                .max(1) as f64;
            let text = ("sans-serif", 14).into_font();
            area.draw(&Text::new("predicted ->", (left, 10), text.clone()))
                .map_err(err)?;
            area.draw(&Text::new("true", (5, top - 20), text.clone()))
                .map_err(err)?;
            for t in 0..10 {
                area.draw(&Text::new(
                    t.to_string(),
                    (left + t as i32 * cell + cell / 2 - 4, top - 20),
                    text.clone(),
                ))
                .map_err(err)?;
                area.draw(&Text::new(
                    t.to_string(),
                    (left - 20, top + t as i32 * cell + cell / 2 - 7),
                    text.clone(),
                ))
                .map_err(err)?;
                for p in 0..10 {
                    let n = confusion[t][p];
                    let color = if t == p {
                        RGBColor(200, 230, 200)
                    } else {
                        let s = (n as f64 / max_off).sqrt();
                        RGBColor(
                            255,
                            (255.0 * (1.0 - 0.8 * s)) as u8,
                            (255.0 * (1.0 - 0.8 * s)) as u8,
                        )
                    };
                    let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
                    area.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], color.filled()))
                        .map_err(err)?;
                    area.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], BLACK.mix(0.2)))
                        .map_err(err)?;
                    if n > 0 {
                        let label = n.to_string();
                        area.draw(&Text::new(
                            label.clone(),
                            (x + cell / 2 - 4 * label.len() as i32, y + cell / 2 - 7),
                            text.clone(),
                        ))
                        .map_err(err)?;
                    }
                }
            }
            Ok(())
        },
    )
}

/// One tile of a gallery: grayscale values with their range, and a caption.
pub struct Tile<'a> {
    pub values: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub caption: String,
}

/// How [`gallery`] lays out and shades its tiles.
#[derive(Debug, Clone, Copy)]
pub struct GalleryStyle {
    /// Tiles per row of the grid.
    pub grid_cols: usize,
    /// Screen pixels per value, each way.
    pub zoom: usize,
    /// One value range for every tile (`None`: each tile normalised to its own).
    pub range: Option<(f32, f32)>,
    /// Low values bright and high values dark (ink on paper), instead of the reverse.
    pub ink_dark: bool,
}

impl GalleryStyle {
    /// `grid_cols` tiles a row at `zoom`, each tile in its own range, high = bright.
    pub fn grid(grid_cols: usize, zoom: usize) -> Self {
        GalleryStyle {
            grid_cols,
            zoom,
            range: None,
            ink_dark: false,
        }
    }

    /// The same with one range for every tile.
    pub fn range(self, lo: f32, hi: f32) -> Self {
        GalleryStyle {
            range: Some((lo, hi)),
            ..self
        }
    }

    /// The same with high values dark.
    pub fn ink_dark(self) -> Self {
        GalleryStyle {
            ink_dark: true,
            ..self
        }
    }
}

/// Tiles in a grid (see [`GalleryStyle`]).
pub fn gallery(path: &Path, title: &str, tiles: &[Tile], style: GalleryStyle) -> Result<()> {
    let GalleryStyle {
        grid_cols,
        zoom,
        range: fixed,
        ink_dark,
    } = style;
    let grid_cols = grid_cols.max(1);
    let (tw, th) = (
        tiles.iter().map(|t| t.cols).max().unwrap_or(1) * zoom,
        tiles.iter().map(|t| t.rows).max().unwrap_or(1) * zoom,
    );
    let caption_h = if tiles.iter().any(|t| !t.caption.is_empty()) {
        18
    } else {
        0
    };
    let (cw, ch) = ((tw + 8).max(60), th + caption_h + 8);
    let rows = tiles.len().div_ceil(grid_cols).max(1);
    let title_h = if title.is_empty() { 0 } else { 30 };
    let (width, height) = ((grid_cols * cw + 10) as u32, (rows * ch + title_h + 10) as u32);
    render(path, width, height, |area| {
        if !title.is_empty() {
            area.draw(&Text::new(
                title.to_string(),
                (8, 6),
                ("sans-serif", 18).into_font(),
            ))
            .map_err(err)?;
        }
        for (i, tile) in tiles.iter().enumerate() {
            let (x0, y0) = ((i % grid_cols) * cw + 5, (i / grid_cols) * ch + title_h + 5);
            let (lo, hi) = fixed.unwrap_or_else(|| {
                tile.values
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    })
            });
            let span = (hi - lo).max(1e-6);
            for r in 0..tile.rows {
                for c in 0..tile.cols {
                    let v = ((tile.values[r * tile.cols + c] - lo) / span).clamp(0.0, 1.0);
                    let g = if ink_dark { 255.0 * (1.0 - v) } else { 255.0 * v } as u8;
                    let (x, y) = ((x0 + c * zoom) as i32, (y0 + r * zoom) as i32);
                    area.draw(&Rectangle::new(
                        [(x, y), (x + zoom as i32, y + zoom as i32)],
                        RGBColor(g, g, g).filled(),
                    ))
                    .map_err(err)?;
                }
            }
            if !tile.caption.is_empty() {
                area.draw(&Text::new(
                    tile.caption.clone(),
                    (x0 as i32, (y0 + th + 2) as i32),
                    ("sans-serif", 13).into_font(),
                ))
                .map_err(err)?;
            }
        }
        Ok(())
    })
}
