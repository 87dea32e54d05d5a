//! Line charts drawn with `plotters` (a well-kept plotting crate) as PNG and
//! SVG: round tick values, a legend, log axes labelled as such. The text uses
//! DejaVu Sans, embedded (assets/fonts, a free licence), so charts look the same
//! on every machine and need no system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf32;
use plotters::prelude::*;

use crate::error::{Error, Result};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

pub struct Series {
    pub label: String,
    pub points: Vec<(f32, f32)>,
}

pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Plot y on a log10 scale (values must be positive).
    pub log_y: bool,
}

/// Colour-blind-friendly qualitative colours (Okabe-Ito, then Tableau).
const COLOURS: [RGBColor; 10] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is part of the binary; failing to parse it is a build defect.
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the embedded font does not parse"));
    });
}

/// Draws `text` into an RGB buffer of `size` pixels with its top-left at `at`.
pub(crate) fn draw_text(
    rgb: &mut [u8],
    (w, h): (usize, usize),
    text: &str,
    at: (usize, usize),
    size: u32,
    colour: [u8; 3],
) -> Result<()> {
    register_font();
    let root = BitMapBackend::with_buffer(rgb, (w as u32, h as u32)).into_drawing_area();
    let style = (FAMILY, size)
        .into_font()
        .color(&RGBColor(colour[0], colour[1], colour[2]));
    root.draw(&Text::new(
        text.to_string(),
        (at.0 as i32, at.1 as i32),
        style,
    ))
    .and_then(|_| root.present())
    .map_err(|e| Error::Report(format!("drawing text: {e}")))
}

/// A tick label: plain decimals where they are short, powers of ten otherwise.
fn tick(v: f32) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Round tick values in [lo, hi]: steps of 1, 2 or 5 times a power of ten,
/// at most `max` of them.
fn linear_ticks(lo: f32, hi: f32, max: usize) -> Vec<f32> {
    let span = (hi - lo).max(f32::MIN_POSITIVE) as f64;
    let base = 10f64.powf((span / max as f64).log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * base)
        .find(|st| span / st <= max as f64)
        .unwrap_or(10.0 * base);
    let first = (lo as f64 / step).ceil() as i64;
    let last = (hi as f64 / step).floor() as i64;
    (first..=last).map(|i| (i as f64 * step) as f32).collect()
}

/// Ticks for a log axis over [lo, hi]: powers of ten, then 1-2-5 and 1..9 times
/// them when the range spans too few decades; linear round values within less
/// than a decade.
fn log_ticks(lo: f32, hi: f32) -> Vec<f32> {
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    for mults in [
        &[1.0][..],
        &[1.0, 2.0, 5.0],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    ] {
        let t: Vec<f32> = (k0..=k1)
            .flat_map(|k| mults.iter().map(move |m| m * 10f32.powi(k)))
            .filter(|v| (lo..=hi).contains(v))
            .collect();
        if t.len() >= 4 {
            return t;
        }
    }
    linear_ticks(lo, hi, 6)
}

/// An axis that shows exactly the given ticks (round values chosen above)
/// over an inner linear or log coordinate.
struct Ticked<R> {
    inner: R,
    ticks: Vec<f32>,
}

impl<R: Ranged<ValueType = f32>> Ranged for Ticked<R> {
    type ValueType = f32;
    type FormatOption = DefaultFormatting;
    fn range(&self) -> std::ops::Range<f32> {
        self.inner.range()
    }
    fn map(&self, v: &f32, limit: (i32, i32)) -> i32 {
        self.inner.map(v, limit)
    }
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f32> {
        // Grid lines at the ticks only (no lighter in-between lines).
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }
    fn axis_pixel_range(&self, limit: (i32, i32)) -> std::ops::Range<i32> {
        self.inner.axis_pixel_range(limit)
    }
}

impl LineChart {
    /// The finite data range (x0, x1, y0, y1), padded so lines do not touch
    /// the frame; on a log axis only positive values count.
    fn ranges(&self) -> (f32, f32, f32, f32) {
        let pts = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0));
        let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for (x, y) in pts {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 1.0, 2.0);
        }
        if x1 - x0 < 1e-6 {
            // One x value (one epoch): centre it.
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
        if self.log_y {
            (x0, x1, y0 / 1.5, (y1 * 1.5).max(y0 * 2.0))
        } else {
            let pad = ((y1 - y0) * 0.05).max(0.5);
            (x0, x1, y0 - pad, y1 + pad)
        }
    }

    /// Writes `path` (PNG, `width` x `height`) and the same chart as SVG beside it.
    pub fn save(&self, path: &Path, width: u32, height: u32) -> Result<()> {
        register_font();
        let fail = |e: String| Error::Report(format!("drawing {}: {e}", path.display()));
        let mut rgb = vec![0u8; (width * height * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
            self.draw(&root).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))?;
        }
        let img = image::RgbImage::from_raw(width, height, rgb)
            .ok_or_else(|| fail("buffer size".into()))?;
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| fail(e.to_string()))?;
        crate::fsutil::write_atomic(path, &png)?;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
            self.draw(&root).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))?;
        }
        crate::fsutil::write_atomic(&path.with_extension("svg"), svg.as_bytes())
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        // The legend gets a column of its own, right of the plot: it never hides a line.
        let longest = self
            .series
            .iter()
            .map(|s| s.label.chars().count())
            .max()
            .unwrap_or(0);
        let legend_w = (longest as u32 * 8 + 56).min(root.dim_in_pixel().0 / 3);
        let (plot, legend) = root.split_horizontally(root.dim_in_pixel().0 - legend_w);
        self.draw_legend(&legend).map_err(|e| e.to_string())?;
        let root = &plot;
        let (x0, x1, y0, y1) = self.ranges();
        // Whole-number x data over a short range (epochs): a tick per number.
        let integral = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .all(|p| p.0.fract() == 0.0);
        let x_ticks = if integral && x1 - x0 <= 12.0 {
            (x0.ceil() as i64..=x1.floor() as i64)
                .map(|v| v as f32)
                .collect()
        } else {
            linear_ticks(x0, x1, 8)
        };
        let xr = Ticked {
            inner: RangedCoordf32::from(x0..x1),
            ticks: x_ticks,
        };
        if self.log_y {
            let yr = Ticked {
                inner: LogCoord::<f32>::from((y0..y1).log_scale()),
                ticks: log_ticks(y0, y1),
            };
            self.draw_on(root, xr, yr, format!("{} (log scale)", self.y_label))
        } else {
            let yr = Ticked {
                inner: RangedCoordf32::from(y0..y1),
                ticks: linear_ticks(y0, y1, 8),
            };
            self.draw_on(root, xr, yr, self.y_label.clone())
        }
    }

    /// One line per series: its colour and its label, top-down.
    fn draw_legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let top = 60;
        for (i, s) in self.series.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            let y = top + 22 * i as i32;
            area.draw(&PathElement::new(vec![(4, y), (28, y)], c.stroke_width(3)))?;
            area.draw(&Text::new(
                s.label.clone(),
                (34, y - 8),
                (FAMILY, 15).into_font().color(&BLACK),
            ))?;
        }
        Ok(())
    }

    fn draw_on<DB, X, Y>(
        &self,
        root: &DrawingArea<DB, Shift>,
        xr: X,
        yr: Y,
        y_desc: String,
    ) -> std::result::Result<(), String>
    where
        DB: DrawingBackend,
        X: Ranged<ValueType = f32> + ValueFormatter<f32>,
        Y: Ranged<ValueType = f32> + ValueFormatter<f32>,
    {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FAMILY, 22))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(xr, yr)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(y_desc)
            .x_labels(20)
            .y_labels(20)
            .x_label_formatter(&|x| tick(*x))
            .y_label_formatter(&|y| tick(*y))
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        for (i, s) in self.series.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            let pts: Vec<(f32, f32)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(err)?;
            if pts.len() == 1 {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::tick;

    #[test]
    fn ticks_are_round_and_short() {
        assert_eq!(tick(2.0), "2");
        assert_eq!(tick(74.25), "74.25");
        assert_eq!(tick(0.006), "0.006");
        assert_eq!(tick(1e-6), "1e-6");
        assert_eq!(tick(0.1 + 0.2), "0.3");
    }

    #[test]
    fn axes_get_round_ticks() {
        assert_eq!(
            super::linear_ticks(1.3, 9.1, 8),
            vec![2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        );
        assert_eq!(
            super::linear_ticks(-3.0, 97.0, 6),
            vec![0.0, 20.0, 40.0, 60.0, 80.0]
        );
        assert_eq!(
            super::log_ticks(1e-4, 2e0),
            vec![1e-4, 1e-3, 1e-2, 1e-1, 1.0]
        );
        assert_eq!(super::log_ticks(0.9, 1.6), vec![1.0, 1.2, 1.4, 1.6]);
    }
}
