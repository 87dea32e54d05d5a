//! Line charts as PNG: axes with tick labels, a title, axis labels and a legend.

use super::canvas::{BLACK, Canvas, PALETTE, WHITE};
use super::font::text_width;

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

fn fmt_tick(v: f32) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(0.01..10000.0).contains(&a) {
        format!("{v:.0E}")
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl LineChart {
    pub fn render(&self, width: usize, height: usize) -> Canvas {
        let mut cv = Canvas::new(width, height, WHITE);
        let (left, right, top, bottom) = (70usize, 20usize, 36usize, 56usize);
        let legend_w = self
            .series
            .iter()
            .map(|s| text_width(&s.label, 1))
            .max()
            .unwrap_or(0)
            + 30;
        let plot_w = width.saturating_sub(left + right + legend_w + 10).max(50);
        let plot_h = height.saturating_sub(top + bottom).max(50);
        let ty = |v: f32| if self.log_y { v.max(1e-30).log10() } else { v };
        let pts: Vec<(f32, f32)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|&(x, y)| (x, ty(y))))
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for &(x, y) in &pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if pts.is_empty() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 - x0 < 1e-6 {
            x1 = x0 + 1.0;
        }
        if y1 - y0 < 1e-6 {
            y0 -= 0.5;
            y1 += 0.5;
        }
        let pad = (y1 - y0) * 0.05;
        y0 -= pad;
        y1 += pad;
        let px = |x: f32| left as f32 + (x - x0) / (x1 - x0) * plot_w as f32;
        let py = |y: f32| top as f32 + (1.0 - (y - y0) / (y1 - y0)) * plot_h as f32;
        // Title, axes, ticks.
        cv.text(&self.title, left, 10, 2, BLACK);
        cv.line(
            left as f32,
            top as f32,
            left as f32,
            (top + plot_h) as f32,
            1,
            BLACK,
        );
        cv.line(
            left as f32,
            (top + plot_h) as f32,
            (left + plot_w) as f32,
            (top + plot_h) as f32,
            1,
            BLACK,
        );
        // Whole-number x data (epochs) over a short range gets a tick per number.
        let integral = pts.iter().all(|p| p.0.fract() == 0.0) && x1 - x0 <= 12.0;
        let x_ticks: Vec<f32> = if integral {
            (x0 as i64..=x1 as i64).map(|v| v as f32).collect()
        } else {
            (0..=5).map(|i| x0 + i as f32 / 5.0 * (x1 - x0)).collect()
        };
        for xv in x_ticks {
            let xp = px(xv) as usize;
            cv.line(
                xp as f32,
                (top + plot_h) as f32,
                xp as f32,
                (top + plot_h + 4) as f32,
                1,
                BLACK,
            );
            let lab = fmt_tick(xv);
            cv.text(
                &lab,
                xp.saturating_sub(text_width(&lab, 1) / 2),
                top + plot_h + 8,
                1,
                BLACK,
            );
        }
        for i in 0..=5 {
            let f = i as f32 / 5.0;
            let yv = y0 + f * (y1 - y0);
            let yp = py(yv) as usize;
            cv.line(
                (left - 4) as f32,
                yp as f32,
                left as f32,
                yp as f32,
                1,
                BLACK,
            );
            let shown = if self.log_y { 10f32.powf(yv) } else { yv };
            let lab = fmt_tick(shown);
            cv.text(
                &lab,
                left.saturating_sub(8 + text_width(&lab, 1)),
                yp.saturating_sub(3),
                1,
                BLACK,
            );
            // Light grid.
            for x in (left..left + plot_w).step_by(4) {
                cv.put(x, yp, [210, 210, 210]);
            }
        }
        cv.text(
            &self.x_label,
            left + plot_w / 2 - text_width(&self.x_label, 1) / 2,
            top + plot_h + 24,
            1,
            BLACK,
        );
        let yl = if self.log_y {
            format!("{} (log)", self.y_label)
        } else {
            self.y_label.clone()
        };
        cv.text(&yl, 4, top - 14, 1, BLACK);
        // Series and legend.
        for (i, s) in self.series.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f32, f32)> = s
                .points
                .iter()
                .map(|&(x, y)| (px(x), py(ty(y))))
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            for w in pts.windows(2) {
                cv.line(w[0].0, w[0].1, w[1].0, w[1].1, 2, c);
            }
            if pts.len() == 1 {
                cv.fill_rect(pts[0].0 as usize - 2, pts[0].1 as usize - 2, 5, 5, c);
            }
            let ly = top + 6 + i * 14;
            let lx = left + plot_w + 14;
            cv.fill_rect(lx, ly + 2, 16, 3, c);
            cv.text(&s.label, lx + 20, ly, 1, BLACK);
        }
        cv
    }
}
