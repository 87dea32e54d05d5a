//! Side-by-side figures of dense predictions: for each test image, the image,
//! then panels (ground truth, teacher, students) drawn over it: class masks
//! as colour overlays, boxes as outlines labelled with class and score. A
//! legend names the colours.

use super::canvas::{BLACK, Canvas, PALETTE, Rgb, WHITE};
use crate::data::{BBox, IGNORE};
use crate::error::Result;

/// A detected (or true) object in image pixels, with its score (1 for truth).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoredBox {
    pub b: [f32; 4],
    pub class: usize,
    pub score: f32,
}

impl From<&BBox> for ScoredBox {
    fn from(b: &BBox) -> Self {
        ScoredBox {
            b: [b.x0 as f32, b.y0 as f32, b.x1 as f32, b.y1 as f32],
            class: b.class as usize,
            score: 1.0,
        }
    }
}

/// What one panel shows over the image.
pub enum Layer {
    /// A class per pixel; 0 is background (left clear), `IGNORE` grey.
    Mask(Vec<u8>),
    Boxes(Vec<ScoredBox>),
}

/// One test image and its panels, titled.
pub struct FigureRow {
    /// [C, H, W] bytes.
    pub image: Vec<u8>,
    pub panels: Vec<Layer>,
}

/// Everything a figure shows.
pub struct Figure<'a> {
    pub shape: [usize; 3],
    pub titles: &'a [String],
    pub rows: &'a [FigureRow],
    /// Names of the foreground classes (mask value k + 1, box class k).
    pub classes: &'a [String],
}

/// The colour of foreground class k.
fn class_color(k: usize) -> Rgb {
    PALETTE[k % PALETTE.len()]
}

fn blend(a: Rgb, b: Rgb, t: f32) -> Rgb {
    let m = |x: u8, y: u8| (x as f32 * (1.0 - t) + y as f32 * t).round() as u8;
    [m(a[0], b[0]), m(a[1], b[1]), m(a[2], b[2])]
}

const TITLE_H: usize = 20;
/// Masks nearly opaque: at half opacity a red star over a green one reads as
/// brown, the hexagon's colour.
const MASK_OPACITY: f32 = 0.85;
const GAP: usize = 6;

impl Figure<'_> {
    fn scale(&self) -> usize {
        (144 / self.shape[1].max(self.shape[2])).clamp(1, 8)
    }

    /// Draws the figure.
    pub fn draw(&self) -> Result<Canvas> {
        let [_, h, w] = self.shape;
        let s = self.scale();
        let (tw, th) = (w * s, h * s);
        let cols = 1 + self.titles.len();
        let legend_h = 24 * self.classes.len().div_ceil(4).max(1);
        let width = cols * (tw + GAP) + GAP;
        let height = TITLE_H + self.rows.len() * (th + GAP) + GAP + legend_h;
        let mut cv = Canvas::new(width.max(4 * 150), height, WHITE);
        cv.text("image", GAP, 3, 13, BLACK)?;
        for (i, t) in self.titles.iter().enumerate() {
            cv.text(t, GAP + (i + 1) * (tw + GAP), 3, 13, BLACK)?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            let y0 = TITLE_H + r * (th + GAP);
            cv.blit_chw(&row.image, self.shape, (GAP, y0), s);
            for (i, layer) in row.panels.iter().enumerate() {
                let x0 = GAP + (i + 1) * (tw + GAP);
                cv.blit_chw(&row.image, self.shape, (x0, y0), s);
                self.draw_layer(&mut cv, layer, (x0, y0))?;
            }
        }
        let ly = TITLE_H + self.rows.len() * (th + GAP) + GAP;
        for (k, name) in self.classes.iter().enumerate() {
            let (x, y) = (GAP + (k % 4) * 150, ly + (k / 4) * 24);
            cv.fill_rect(x, y + 3, 14, 14, class_color(k));
            cv.text(name, x + 20, y + 2, 13, BLACK)?;
        }
        Ok(cv)
    }

    fn draw_layer(&self, cv: &mut Canvas, layer: &Layer, (x0, y0): (usize, usize)) -> Result<()> {
        let [_, h, w] = self.shape;
        let s = self.scale();
        match layer {
            Layer::Mask(m) => {
                for y in 0..h * s {
                    for x in 0..w * s {
                        let v = m[(y / s) * w + x / s];
                        let over = match v {
                            0 => continue,
                            IGNORE => [200, 200, 200],
                            k => class_color(k as usize - 1),
                        };
                        let (px, py) = (x0 + x, y0 + y);
                        let c = blend(cv.get(px, py), over, MASK_OPACITY);
                        cv.put(px, py, c);
                    }
                }
            }
            Layer::Boxes(bs) => {
                for b in bs {
                    let c = class_color(b.class);
                    let sc =
                        |v: f32, max: usize| ((v.max(0.0) * s as f32) as usize).min(max * s - 1);
                    let (bx0, by0) = (sc(b.b[0], w), sc(b.b[1], h));
                    let (bx1, by1) = (sc(b.b[2], w), sc(b.b[3], h));
                    cv.rect(
                        x0 + bx0,
                        y0 + by0,
                        (bx1 - bx0).max(1),
                        (by1 - by0).max(1),
                        2,
                        c,
                    );
                    let name = self.classes.get(b.class).map_or("?", String::as_str);
                    let label = if b.score < 1.0 {
                        format!("{name} {:.2}", b.score)
                    } else {
                        name.to_string()
                    };
                    // The label's tag, about 6 pixels a character at size 11,
                    // kept inside the panel so it never covers the next one.
                    let ty = (y0 + by0).saturating_sub(12).max(y0);
                    let room = (w * s).saturating_sub(bx0);
                    let label: String = label.chars().take(room / 6).collect();
                    cv.fill_rect(x0 + bx0, ty, (6 * label.len() + 2).min(room), 12, c);
                    cv.text(&label, x0 + bx0 + 1, ty, 11, WHITE)?;
                }
            }
        }
        Ok(())
    }
}
