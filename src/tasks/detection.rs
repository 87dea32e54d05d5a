//! Object detection, CenterNet-style: targets (class heat-maps with Gaussian
//! peaks at box centres, box sizes and centre offsets at the centre cells),
//! the loss (focal on heat-maps + weighted L1 on regression), decoding of the
//! heads into boxes (3x3 peaks, top-k, on the GPU), and COCO's mAP.

use crate::autograd::{Var, functional as F};
use crate::data::BBox;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::dense::DETECT_STRIDE;
use crate::report::figure::ScoredBox;
use crate::tensor::Tensor;

/// Weights of the regression terms. CenterNet weighs its raw sizes 0.1
/// because they span tens of cells; the log sizes here are of order 1, like
/// the offsets.
pub const SIZE_WEIGHT: f32 = 1.0;
pub const OFFSET_WEIGHT: f32 = 1.0;
/// Detections kept per image (COCO's maxDets).
pub const MAX_DETECTIONS: usize = 100;

/// CenterNet's Gaussian radius for a box of `h` x `w` output cells: the
/// largest corner shift that keeps IoU >= `min_overlap` (the smallest of the
/// three cases of the original code).
pub fn gaussian_radius(h: f32, w: f32, min_overlap: f32) -> f32 {
    let root = |a: f32, b: f32, c: f32| (b + (b * b - 4.0 * a * c).max(0.0).sqrt()) / 2.0;
    let r1 = root(
        1.0,
        h + w,
        w * h * (1.0 - min_overlap) / (1.0 + min_overlap),
    );
    let r2 = root(4.0, 2.0 * (h + w), (1.0 - min_overlap) * w * h) / 2.0;
    let a3 = 4.0 * min_overlap;
    let r3 = (-2.0 * min_overlap * (h + w)
        + ((2.0 * min_overlap * (h + w)).powi(2) - 4.0 * a3 * (min_overlap - 1.0) * w * h)
            .max(0.0)
            .sqrt())
        / 2.0
        / a3
        * 2.0;
    r1.min(r2).min(r3)
}

/// Targets of one batch on the host: heat [N, K, h, w], regression [N, 4, h, w]
/// (ln width, ln height, dx, dy in cells: log sizes, as FCOS and YOLO, so that
/// an L1 step moves a size by a fraction of itself and a freshly initialised
/// head starts near one cell, not at zero) and its weights (at centre cells only,
/// divided by the number of objects).
#[derive(Clone, Debug, PartialEq)]
pub struct Targets {
    pub shape: [usize; 4],
    pub heat: Vec<f32>,
    pub reg: Vec<f32>,
    pub weight: Vec<f32>,
}

/// Renders the targets of `boxes` (per image, in pixels) for `k` classes on
/// output maps of (h, w) cells of `DETECT_STRIDE` pixels. Crowd boxes get none.
pub fn render_targets(boxes: &[Vec<BBox>], k: usize, (h, w): (usize, usize)) -> Targets {
    let n = boxes.len();
    let s = DETECT_STRIDE as f32;
    let plane = h * w;
    let mut heat = vec![0f32; n * k * plane];
    let mut reg = vec![0f32; n * 4 * plane];
    let mut weight = vec![0f32; n * 4 * plane];
    let objects = boxes.iter().flatten().filter(|b| !b.crowd).count().max(1) as f32;
    for (i, bs) in boxes.iter().enumerate() {
        for b in bs.iter().filter(|b| !b.crowd && (b.class as usize) < k) {
            let (bw, bh) = ((b.x1 - b.x0) as f32 / s, (b.y1 - b.y0) as f32 / s);
            let (cx, cy) = (
                (b.x0 + b.x1) as f32 / 2.0 / s,
                (b.y0 + b.y1) as f32 / 2.0 / s,
            );
            let (ix, iy) = (
                (cx.floor() as usize).min(w - 1),
                (cy.floor() as usize).min(h - 1),
            );
            let radius = gaussian_radius(bh.ceil(), bw.ceil(), 0.7).max(0.0).floor() as i64;
            let sigma = (2 * radius + 1) as f32 / 6.0;
            let hp = &mut heat[(i * k + b.class as usize) * plane..][..plane];
            for dy in -radius..=radius {
                for dx in -radius..=radius {
                    let (y, x) = (iy as i64 + dy, ix as i64 + dx);
                    if y < 0 || x < 0 || y >= h as i64 || x >= w as i64 {
                        continue;
                    }
                    let g = (-((dx * dx + dy * dy) as f32) / (2.0 * sigma * sigma)).exp();
                    let at = y as usize * w + x as usize;
                    hp[at] = hp[at].max(g);
                }
            }
            let at = iy * w + ix;
            let vals = [bw.ln(), bh.ln(), cx - ix as f32, cy - iy as f32];
            let ws = [SIZE_WEIGHT, SIZE_WEIGHT, OFFSET_WEIGHT, OFFSET_WEIGHT];
            for c in 0..4 {
                reg[(i * 4 + c) * plane + at] = vals[c];
                weight[(i * 4 + c) * plane + at] = ws[c] / objects;
            }
        }
    }
    Targets {
        shape: [n, k, h, w],
        heat,
        reg,
        weight,
    }
}

impl Targets {
    /// (heat, regression, weights) on the device.
    pub fn upload(&self, gpu: &Gpu) -> Result<(Tensor, Tensor, Tensor)> {
        let [n, k, h, w] = self.shape;
        Ok((
            Tensor::from_slice(gpu, &[n, k, h, w], &self.heat)?,
            Tensor::from_slice(gpu, &[n, 4, h, w], &self.reg)?,
            Tensor::from_slice(gpu, &[n, 4, h, w], &self.weight)?,
        ))
    }
}

/// The supervised detection loss: focal loss on the heat-map logits plus the
/// weighted L1 of the regression head at object centres.
pub fn loss(heat_logits: &Var, boxes: &Var, targets: &Targets) -> Result<Var> {
    let (heat, reg, weight) = targets.upload(heat_logits.value().gpu())?;
    let focal = F::focal_loss(heat_logits, &heat)?;
    let l1 = F::weighted_l1(boxes, &reg, &weight)?;
    F::add(&focal, &l1)
}

/// Boxes in image pixels, by descending score, from the heads' outputs:
/// heat-map logits [N, K, h, w] and regression [N, 4, h, w].
pub fn decode(heat_logits: &Tensor, boxes: &Tensor, topk: usize) -> Result<Vec<Vec<ScoredBox>>> {
    let &[n, _k, h, w] = heat_logits.shape() else {
        return Err(Error::shape(
            "decode",
            format!(
                "heat-maps must be [N, K, H, W], got {:?}",
                heat_logits.shape()
            ),
        ));
    };
    let (scores, idx) = crate::ops::detect::peaks(heat_logits, topk)?;
    let (scores, idx) = (scores.to_vec()?, idx.to_vec_u32()?);
    let reg = boxes.to_vec()?;
    let plane = h * w;
    let s = DETECT_STRIDE as f32;
    Ok((0..n)
        .map(|i| {
            (0..topk)
                .filter(|&j| scores[i * topk + j] >= 0.0)
                .map(|j| {
                    let id = idx[i * topk + j] as usize;
                    let (class, at) = (id / plane, id % plane);
                    let r = |c: usize| reg[(i * 4 + c) * plane + at];
                    // Sizes beyond the map are no box this head can mean.
                    let size = |v: f32| v.min((plane as f32).ln()).exp() * s;
                    let (bw, bh) = (size(r(0)), size(r(1)));
                    let cx = ((at % w) as f32 + r(2)) * s;
                    let cy = ((at / w) as f32 + r(3)) * s;
                    ScoredBox {
                        b: [cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0],
                        class,
                        score: scores[i * topk + j],
                    }
                })
                .collect()
        })
        .collect())
}

/// A true object for evaluation: its box and whether it is a crowd region.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Truth {
    pub b: [f64; 4],
    pub class: usize,
    pub crowd: bool,
}

impl From<&BBox> for Truth {
    fn from(b: &BBox) -> Self {
        Truth {
            b: [b.x0 as f64, b.y0 as f64, b.x1 as f64, b.y1 as f64],
            class: b.class as usize,
            crowd: b.crowd,
        }
    }
}

/// A detection for evaluation, in f64 as pycocotools computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub b: [f64; 4],
    pub class: usize,
    pub score: f64,
}

impl From<&ScoredBox> for Detection {
    fn from(d: &ScoredBox) -> Self {
        Detection {
            b: d.b.map(|v| v as f64),
            class: d.class,
            score: d.score as f64,
        }
    }
}

/// COCO's box IoU; against a crowd region, the intersection over the
/// detection's own area.
fn iou(d: &[f64; 4], g: &Truth) -> f64 {
    let iw = (d[2].min(g.b[2]) - d[0].max(g.b[0])).max(0.0);
    let ih = (d[3].min(g.b[3]) - d[1].max(g.b[1])).max(0.0);
    let inter = iw * ih;
    let area = |b: &[f64; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let union = if g.crowd {
        area(d)
    } else {
        area(d) + area(&g.b) - inter
    };
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// The mean average precision of COCO (pycocotools' COCOeval, boxes, all
/// areas, up to 100 detections per image): AP at IoU 0.50:0.05:0.95 with
/// 101-point interpolated precision, averaged over the classes that have a
/// non-crowd object; and AP at IoU 0.5. `dets[i]` and `truth[i]` are image i's.
pub fn mean_ap(dets: &[Vec<Detection>], truth: &[Vec<Truth>], classes: usize) -> (f64, f64) {
    // As numpy's linspace(.5, .95, 10), bit for bit.
    let step = (0.95 - 0.5) / 9.0;
    let thresholds: Vec<f64> = (0..10)
        .map(|i| if i == 9 { 0.95 } else { i as f64 * step + 0.5 })
        .collect();
    let mut ap = vec![Vec::new(); thresholds.len()];
    for c in 0..classes {
        for (t, &thr) in thresholds.iter().enumerate() {
            if let Some(a) = class_ap(dets, truth, c, thr) {
                ap[t].push(a);
            }
        }
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            -1.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let per_t: Vec<f64> = ap.iter().map(|v| mean(v)).collect();
    let all = if ap[0].is_empty() { -1.0 } else { mean(&per_t) };
    (all, per_t[0])
}

/// One class's AP at one IoU threshold, or None if it has no non-crowd object.
fn class_ap(dets: &[Vec<Detection>], truth: &[Vec<Truth>], c: usize, thr: f64) -> Option<f64> {
    // (score, true positive, ignored) of every kept detection, image by image.
    let mut marks: Vec<(f64, bool, bool)> = Vec::new();
    let mut positives = 0usize;
    for (ds, ts) in dets.iter().zip(truth) {
        let mut gts: Vec<&Truth> = ts.iter().filter(|t| t.class == c).collect();
        // Crowd regions last, as pycocotools sorts its ignore flags.
        gts.sort_by_key(|g| g.crowd);
        positives += gts.iter().filter(|g| !g.crowd).count();
        let mut d: Vec<&Detection> = ds.iter().filter(|d| d.class == c).collect();
        d.sort_by(|a, b| b.score.total_cmp(&a.score));
        d.truncate(MAX_DETECTIONS);
        let mut taken = vec![false; gts.len()];
        for det in d {
            let db = det.b;
            let mut best: Option<usize> = None;
            let mut best_iou = thr.min(1.0 - 1e-10);
            for (gi, g) in gts.iter().enumerate() {
                if taken[gi] && !g.crowd {
                    continue;
                }
                // Matched to a real object already: crowd regions cannot do better.
                if best.is_some_and(|b| !gts[b].crowd) && g.crowd {
                    break;
                }
                let v = iou(&db, g);
                if v < best_iou {
                    continue;
                }
                best_iou = v;
                best = Some(gi);
            }
            match best {
                Some(gi) => {
                    taken[gi] = true;
                    marks.push((det.score, !gts[gi].crowd, gts[gi].crowd));
                }
                None => marks.push((det.score, false, false)),
            }
        }
    }
    if positives == 0 {
        return None;
    }
    // Stable sort by descending score across images (numpy's mergesort).
    marks.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0f64, 0f64);
    let mut recall = Vec::new();
    let mut precision = Vec::new();
    for &(_, hit, ignored) in &marks {
        if ignored {
            continue;
        }
        if hit {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        recall.push(tp / positives as f64);
        precision.push(tp / (tp + fp + f64::EPSILON));
    }
    for i in (1..precision.len()).rev() {
        precision[i - 1] = precision[i - 1].max(precision[i]);
    }
    let mut sum = 0.0;
    for r in 0..=100 {
        // As numpy's linspace(0, 1, 101), bit for bit.
        let at = if r == 100 { 1.0 } else { r as f64 * 0.01 };
        let i = recall.partition_point(|&x| x < at);
        if i < precision.len() {
            sum += precision[i];
        }
    }
    Some(sum / 101.0)
}
