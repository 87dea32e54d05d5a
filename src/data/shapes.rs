//! The shapes world: a procedural, seeded data set that ships with the program.
//! Each image shows one large shape and up to two small distractors
//! (circles, squares, triangles, stars, crosses, hexagons) in random colours,
//! sizes, positions and small tilts (+-17 degrees), over a textured, noisy
//! background; light shapes on dark ground or the reverse. The label is the class
//! with the most visible pixels; the mask gives each pixel's class (0 for the
//! background) and the boxes bound each visible object. The same (seed, index)
//! always gives the same image, at any resolution.

use super::{BBox, ImageSet};
use crate::rng::Rng;

pub const CLASSES: &[&str] = &["circle", "square", "triangle", "star", "cross", "hexagon"];
pub const DEFAULT_SIZE: usize = 32;
pub const DEFAULT_COUNT: usize = 4000;

/// One rendered image: RGB bytes in CHW order, class mask, boxes, label.
#[derive(Clone, Debug)]
pub struct ShapeSample {
    pub image: Vec<u8>,
    pub mask: Vec<u8>,
    pub boxes: Vec<BBox>,
    pub label: u32,
}

#[derive(Clone, Copy, Debug)]
struct Shape {
    class: usize,
    cx: f32,
    cy: f32,
    r: f32,
    angle: f32,
    color: [f32; 3],
}

#[derive(Clone, Debug)]
pub struct ShapesWorld {
    pub size: usize,
    pub seed: u64,
    /// Scenes for detection: 1 to `MAX_OBJECTS` shapes of similar sizes per
    /// image, anywhere, overlapping at times, instead of one main shape.
    pub scenes: bool,
}

/// The most shapes a scene holds.
pub const MAX_OBJECTS: usize = 6;
/// The default side of scenes (detection works at stride 4).
pub const SCENE_SIZE: usize = 64;
/// An object less visible than this (pixels) gets no box: too little of it
/// shows to say what it is.
pub const MIN_BOX_AREA: usize = 12;

fn polygon(n: usize, radius: impl Fn(usize) -> f32, phase: f32) -> Vec<(f32, f32)> {
    (0..n)
        .map(|i| {
            let a = phase + i as f32 * std::f32::consts::TAU / n as f32;
            (radius(i) * a.cos(), radius(i) * a.sin())
        })
        .collect()
}

/// Crossing-number test (works for the star's concave outline).
fn inside_polygon(pts: &[(f32, f32)], x: f32, y: f32) -> bool {
    let mut inside = false;
    let mut j = pts.len() - 1;
    for i in 0..pts.len() {
        let (xi, yi) = pts[i];
        let (xj, yj) = pts[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Whether (u, v), in the shape's frame scaled by its radius, lies inside it.
fn inside(class: usize, u: f32, v: f32, outlines: &[Vec<(f32, f32)>]) -> bool {
    match class {
        0 => u * u + v * v <= 1.0,
        1 => u.abs().max(v.abs()) <= 0.78,
        4 => (u.abs() <= 0.3 && v.abs() <= 0.95) || (v.abs() <= 0.3 && u.abs() <= 0.95),
        c => inside_polygon(&outlines[c], u, v),
    }
}

impl ShapesWorld {
    pub fn new(size: usize, seed: u64) -> Self {
        ShapesWorld {
            size: size.max(8),
            seed,
            scenes: false,
        }
    }

    /// The world of detection scenes (see `scenes`).
    pub fn scenes(size: usize, seed: u64) -> Self {
        ShapesWorld {
            scenes: true,
            ..ShapesWorld::new(size, seed)
        }
    }

    /// 1..=MAX_OBJECTS shapes of radius 8-18% of the side, back to front.
    fn scene_objects(
        &self,
        rng: &mut Rng,
        pick_color: &dyn Fn(&mut Rng) -> [f32; 3],
    ) -> (Vec<Shape>, usize) {
        let sf = self.size as f32;
        let n = 1 + rng.below(MAX_OBJECTS);
        let shapes: Vec<Shape> = (0..n)
            .map(|_| Shape {
                class: rng.below(CLASSES.len()),
                cx: rng.range(0.12, 0.88) * sf,
                cy: rng.range(0.12, 0.88) * sf,
                r: rng.range(0.08, 0.18) * sf,
                angle: rng.range(-0.3, 0.3),
                color: pick_color(rng),
            })
            .collect();
        let main = shapes[0].class;
        (shapes, main)
    }

    fn outlines() -> Vec<Vec<(f32, f32)>> {
        let up = -std::f32::consts::FRAC_PI_2;
        vec![
            vec![],
            vec![],
            polygon(3, |_| 1.0, up),
            polygon(10, |i| if i % 2 == 0 { 1.0 } else { 0.42 }, up),
            vec![],
            polygon(6, |_| 0.95, 0.0),
        ]
    }

    /// Renders image `index`.
    pub fn render(&self, index: u64) -> ShapeSample {
        let s = self.size;
        let sf = s as f32;
        let mut rng = Rng::new(
            self.seed
                .wrapping_mul(0x9E37_79B9)
                .wrapping_add(index.wrapping_mul(0xD1B5_4A32_D192_ED03)),
        );
        let outlines = Self::outlines();

        // Background: two colours mixed by a random texture, plus noise.
        // Dark backgrounds with light shapes or the reverse (chosen per image), so
        // the shapes stand out by luminance whatever their hue; the second
        // background colour stays near the first: texture, not camouflage.
        let dark = rng.uniform() < 0.5;
        let (bg_lo, bg_hi, fg_lo, fg_hi) = if dark {
            (0.0, 0.45, 0.6, 1.0)
        } else {
            (0.55, 1.0, 0.0, 0.4)
        };
        let c0 = [
            rng.range(bg_lo, bg_hi),
            rng.range(bg_lo, bg_hi),
            rng.range(bg_lo, bg_hi),
        ];
        let c1 = [
            (c0[0] + rng.range(-0.15, 0.15)).clamp(0.0, 1.0),
            (c0[1] + rng.range(-0.15, 0.15)).clamp(0.0, 1.0),
            (c0[2] + rng.range(-0.15, 0.15)).clamp(0.0, 1.0),
        ];
        let texture = rng.below(4);
        let freq = rng.range(1.5, 5.0);
        let dir = rng.range(0.0, std::f32::consts::TAU);
        let blobs: Vec<(f32, f32, f32)> = (0..3)
            .map(|_| {
                (
                    rng.range(0.0, 1.0),
                    rng.range(0.0, 1.0),
                    rng.range(0.1, 0.4),
                )
            })
            .collect();
        let noise = rng.range(0.02, 0.08);

        let pick_color = |rng: &mut Rng| {
            [
                rng.range(fg_lo, fg_hi),
                rng.range(fg_lo, fg_hi),
                rng.range(fg_lo, fg_hi),
            ]
        };
        let (shapes, main_class) = if self.scenes {
            self.scene_objects(&mut rng, &pick_color)
        } else {
            Self::single_object(&mut rng, sf, &pick_color)
        };
        let mut img = vec![0f32; 3 * s * s];
        let mut inst = vec![u8::MAX; s * s];
        for y in 0..s {
            for x in 0..s {
                let (u, v) = ((x as f32 + 0.5) / sf, (y as f32 + 0.5) / sf);
                let t = match texture {
                    0 => u * dir.cos() + v * dir.sin(),
                    1 => {
                        0.5 + 0.5
                            * (freq * std::f32::consts::TAU * (u * dir.cos() + v * dir.sin())).sin()
                    }
                    2 => (((u * freq * 2.0).floor() + (v * freq * 2.0).floor()) as i32 & 1) as f32,
                    _ => blobs
                        .iter()
                        .map(|&(bx, by, bs)| {
                            (-((u - bx).powi(2) + (v - by).powi(2)) / (bs * bs)).exp()
                        })
                        .sum::<f32>()
                        .min(1.0),
                };
                let t = t.clamp(0.0, 1.0);
                for c in 0..3 {
                    img[c * s * s + y * s + x] = c0[c] * (1.0 - t) + c1[c] * t;
                }
            }
        }
        // Shapes with 2x2 supersampled coverage (soft edges); a pixel belongs to
        // the topmost object covering at least half of it.
        for (k, sh) in shapes.iter().enumerate() {
            let (sin, cos) = sh.angle.sin_cos();
            let y0 = ((sh.cy - sh.r).floor().max(0.0)) as usize;
            let y1 = ((sh.cy + sh.r).ceil().min(sf)) as usize;
            let x0 = ((sh.cx - sh.r).floor().max(0.0)) as usize;
            let x1 = ((sh.cx + sh.r).ceil().min(sf)) as usize;
            for y in y0..y1 {
                for x in x0..x1 {
                    let mut cover = 0;
                    for (ox, oy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                        let dx = (x as f32 + ox - sh.cx) / sh.r;
                        let dy = (y as f32 + oy - sh.cy) / sh.r;
                        let (u, v) = (cos * dx + sin * dy, -sin * dx + cos * dy);
                        if inside(sh.class, u, v, &outlines) {
                            cover += 1;
                        }
                    }
                    if cover == 0 {
                        continue;
                    }
                    let a = cover as f32 / 4.0;
                    for c in 0..3 {
                        let p = &mut img[c * s * s + y * s + x];
                        *p = *p * (1.0 - a) + sh.color[c] * a;
                    }
                    if cover >= 2 {
                        inst[y * s + x] = k as u8;
                    }
                }
            }
        }
        // Noise, then bytes.
        let image: Vec<u8> = img
            .iter()
            .map(|&p| ((p + noise * rng.normal()).clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();

        let mut mask = vec![0u8; s * s];
        let mut area = vec![0usize; CLASSES.len()];
        let mut bounds: Vec<Option<(usize, usize, usize, usize)>> = vec![None; shapes.len()];
        let mut visible = vec![0usize; shapes.len()];
        for y in 0..s {
            for x in 0..s {
                let k = inst[y * s + x];
                if k == u8::MAX {
                    continue;
                }
                let sh = &shapes[k as usize];
                mask[y * s + x] = sh.class as u8 + 1;
                area[sh.class] += 1;
                visible[k as usize] += 1;
                let b = bounds[k as usize].get_or_insert((x, y, x + 1, y + 1));
                *b = (b.0.min(x), b.1.min(y), b.2.max(x + 1), b.3.max(y + 1));
            }
        }
        // Scenes leave out the boxes of objects hidden all but a sliver.
        let min_area = if self.scenes { MIN_BOX_AREA } else { 1 };
        let boxes = shapes
            .iter()
            .zip(&bounds)
            .zip(&visible)
            .filter(|(_, v)| **v >= min_area)
            .filter_map(|((sh, b), _)| {
                b.map(|(x0, y0, x1, y1)| BBox {
                    x0: x0 as u16,
                    y0: y0 as u16,
                    x1: x1 as u16,
                    y1: y1 as u16,
                    class: sh.class as u16,
                    crowd: false,
                })
            })
            .collect();
        // The dominant class; ties go to the main shape's class.
        let mut label = main_class;
        for (c, &a) in area.iter().enumerate() {
            if a > area[label] {
                label = c;
            }
        }
        ShapeSample {
            image,
            mask,
            boxes,
            label: label as u32,
        }
    }

    /// One main shape and up to two small distractors.
    fn single_object(
        rng: &mut Rng,
        sf: f32,
        pick_color: &dyn Fn(&mut Rng) -> [f32; 3],
    ) -> (Vec<Shape>, usize) {
        // Objects: distractors first or last, so they may occlude or be occluded.
        let main_class = rng.below(CLASSES.len());
        let n_distract = rng.below(3);
        let main = Shape {
            class: main_class,
            cx: rng.range(0.3, 0.7) * sf,
            cy: rng.range(0.3, 0.7) * sf,
            r: rng.range(0.24, 0.4) * sf,
            angle: rng.range(-0.3, 0.3),
            color: pick_color(rng),
        };
        let mut shapes = Vec::new();
        let mut after = Vec::new();
        for _ in 0..n_distract {
            let sh = Shape {
                class: rng.below(CLASSES.len()),
                cx: rng.range(0.1, 0.9) * sf,
                cy: rng.range(0.1, 0.9) * sf,
                r: rng.range(0.07, 0.13) * sf,
                angle: rng.range(-0.3, 0.3),
                color: pick_color(rng),
            };
            if rng.uniform() < 0.5 {
                shapes.push(sh)
            } else {
                after.push(sh)
            }
        }
        shapes.push(main);
        shapes.extend(after);

        (shapes, main_class)
    }

    pub fn render_set(&self, count: usize) -> ImageSet {
        let s = self.size;
        let mut set = ImageSet {
            name: "shapes".into(),
            channels: 3,
            height: s,
            width: s,
            images: Vec::with_capacity(count * 3 * s * s),
            labels: Vec::with_capacity(count),
            classes: CLASSES.iter().map(|c| c.to_string()).collect(),
            masks: Some(Vec::with_capacity(count * s * s)),
            mask_classes: std::iter::once("background")
                .chain(CLASSES.iter().copied())
                .map(String::from)
                .collect(),
            boxes: Some(Vec::with_capacity(count)),
        };
        for i in 0..count {
            let smp = self.render(i as u64);
            set.images.extend_from_slice(&smp.image);
            set.labels.push(smp.label);
            if let Some(m) = &mut set.masks {
                m.extend_from_slice(&smp.mask);
            }
            if let Some(b) = &mut set.boxes {
                b.push(smp.boxes);
            }
        }
        set
    }
}
