//! An RGB canvas for figures: sample grids now, plots later. Saved as PNG
//! through the `image` crate, atomically.

use std::path::Path;

use crate::error::{Error, Result};

pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];

/// Distinct colours for classes and series.
pub const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: Rgb) -> Self {
        let mut pixels = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            pixels.extend_from_slice(&background);
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    pub fn put(&mut self, x: usize, y: usize, c: Rgb) {
        if x < self.width && y < self.height {
            let i = (y * self.width + x) * 3;
            self.pixels[i..i + 3].copy_from_slice(&c);
        }
    }

    pub fn get(&self, x: usize, y: usize) -> Rgb {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    pub fn fill_rect(&mut self, x0: usize, y0: usize, w: usize, h: usize, c: Rgb) {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                self.put(x, y, c);
            }
        }
    }

    /// A rectangle outline of the given thickness.
    pub fn rect(&mut self, x0: usize, y0: usize, w: usize, h: usize, t: usize, c: Rgb) {
        if w == 0 || h == 0 {
            return;
        }
        self.fill_rect(x0, y0, w, t.min(h), c);
        self.fill_rect(x0, (y0 + h).saturating_sub(t), w, t.min(h), c);
        self.fill_rect(x0, y0, t.min(w), h, c);
        self.fill_rect((x0 + w).saturating_sub(t), y0, t.min(w), h, c);
    }

    /// A line from (x0, y0) to (x1, y1), `t` pixels thick.
    pub fn line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, t: usize, c: Rgb) {
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for i in 0..=steps {
            let f = i as f32 / steps as f32;
            let (x, y) = (x0 + (x1 - x0) * f, y0 + (y1 - y0) * f);
            let half = t as f32 / 2.0;
            self.fill_rect(
                (x - half).max(0.0) as usize,
                (y - half).max(0.0) as usize,
                t,
                t,
                c,
            );
        }
    }

    /// Writes `s` with its top-left at (x, y), `size` pixels high, in the
    /// embedded DejaVu Sans (through plotters, as the charts).
    pub fn text(&mut self, s: &str, x: usize, y: usize, size: u32, c: Rgb) -> Result<()> {
        super::plot::draw_text(
            &mut self.pixels,
            (self.width, self.height),
            s,
            (x, y),
            size,
            c,
        )
    }

    /// Draws a [C, H, W] byte image (grey or RGB) with its top-left at
    /// (x0, y0), each pixel as a `scale` x `scale` square.
    pub fn blit_chw(
        &mut self,
        img: &[u8],
        [channels, h, w]: [usize; 3],
        (x0, y0): (usize, usize),
        scale: usize,
    ) {
        for y in 0..h * scale {
            for x in 0..w * scale {
                let (sy, sx) = (y / scale, x / scale);
                let px = |c: usize| img[c * h * w + sy * w + sx];
                let rgb = if channels >= 3 {
                    [px(0), px(1), px(2)]
                } else {
                    [px(0); 3]
                };
                self.put(x0 + x, y0 + y, rgb);
            }
        }
    }

    pub fn save_png(&self, path: &Path) -> Result<()> {
        let mut buf = Vec::new();
        let img =
            image::RgbImage::from_raw(self.width as u32, self.height as u32, self.pixels.clone())
                .ok_or_else(|| Error::Internal("canvas size mismatch".into()))?;
        let mut cursor = std::io::Cursor::new(&mut buf);
        img.write_to(&mut cursor, image::ImageFormat::Png)
            .map_err(|e| Error::Report(format!("PNG encoding failed: {e}")))?;
        crate::fsutil::write_atomic(path, &buf)
    }
}
