//! ONNX Resize (and Upsample) with every mode of the spec but
//! tf_crop_and_resize: nearest (four rounding rules), linear and cubic (with
//! cubic_coeff_a, exclude_outside and antialias), each coordinate
//! transformation, scales or sizes, axes, keep_aspect_ratio_policy. Resizing is
//! separable and linear in the input, so each spatial axis is one
//! interpolation matrix [out, in] built on the host from the spec's formulas,
//! applied with two matrix products (whose gradients come with them). The
//! cases condenser's own upsampling kernel computes identically use that
//! kernel instead (faster, and exported as Resize again).

use super::graph::Attr;
use super::ops::Ctx;
use crate::autograd::{Var, functional as F};
use crate::error::Result;
use crate::ops::resample::UpsampleMode;
use crate::tensor::Tensor;

/// Largest output side, and largest interpolation matrix (elements).
const MAX_SIDE: usize = 1 << 16;
const MAX_MATRIX: usize = 1 << 26;

/// How one axis is resampled.
struct Axis {
    len: usize,
    out: usize,
    /// The scale used in the coordinate transformation.
    scale: f64,
}

/// The node's settings.
struct Mode {
    mode: String,
    ctm: String,
    nearest: String,
    cubic_a: f64,
    exclude_outside: bool,
    antialias: bool,
}

pub fn resize(c: &Ctx, x: &Var) -> Result<Var> {
    let s = x.shape().to_vec();
    if s.len() != 4 {
        return Err(c.err(format!("needs a 4-D input [N, C, H, W], got {s:?}")));
    }
    let m = mode(c)?;
    let axes = target(c, &s)?;
    let (h, w) = (&axes[0], &axes[1]);
    if let Some(k) = kernel_equivalent(&m, h, w) {
        return F::upsample(x, h.out, w.out, k).map_err(|e| c.err(e));
    }
    // The matrices depend on the node and the input's size only: built once.
    let gpu = c.model.gpu();
    let upload = |axis: &str, a: &Axis| {
        let key = format!("resize:{}:{axis}:{}->{}", c.node.name, a.len, a.out);
        c.model.constant(&key, || {
            Ok(Var::constant(Tensor::from_slice(
                gpu,
                &[a.out, a.len],
                &matrix(c, &m, a)?,
            )?))
        })
    };
    let (rh, rw) = (upload("h", h)?, upload("w", w)?);
    let (n, ch) = (s[0], s[1]);
    // [N C H, W] x Rw^T -> [N C, H, OW]; Rh x that (Rh shared by the batch) -> [N C, OH, OW].
    let y = F::matmul(&F::reshape(x, &[n * ch * h.len, w.len])?, &rw, false, true)?;
    let y = F::reshape(&y, &[n * ch, h.len, w.out])?;
    let y = F::matmul(&rh, &y, false, false)?;
    F::reshape(&y, &[n, ch, h.out, w.out])
}

fn mode(c: &Ctx) -> Result<Mode> {
    let n = c.node;
    let old = n.op == "Upsample" || c.graph().opset < 11;
    let m = Mode {
        mode: n.string("mode", "nearest"),
        ctm: n.string(
            "coordinate_transformation_mode",
            if old { "asymmetric" } else { "half_pixel" },
        ),
        nearest: n.string(
            "nearest_mode",
            if old { "floor" } else { "round_prefer_floor" },
        ),
        cubic_a: n.float("cubic_coeff_a", -0.75) as f64,
        exclude_outside: n.int("exclude_outside", 0) != 0,
        antialias: n.int("antialias", 0) != 0,
    };
    let known_ctm = [
        "half_pixel",
        "half_pixel_symmetric",
        "pytorch_half_pixel",
        "align_corners",
        "asymmetric",
    ];
    if !known_ctm.contains(&m.ctm.as_str()) {
        return Err(c.err(format!(
            "coordinate_transformation_mode {:?} is not supported (supported: {})",
            m.ctm,
            known_ctm.join(", ")
        )));
    }
    if !["nearest", "linear", "bilinear", "cubic"].contains(&m.mode.as_str()) {
        return Err(c.err(format!(
            "mode {:?} is not supported (nearest, linear, cubic)",
            m.mode
        )));
    }
    if !["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"].contains(&m.nearest.as_str()) {
        return Err(c.err(format!("nearest_mode {:?} is not supported", m.nearest)));
    }
    Ok(m)
}

/// (H, W) axes: sizes and scales from the inputs or attributes, with `axes`
/// and keep_aspect_ratio_policy applied.
fn target(c: &Ctx, s: &[usize]) -> Result<[Axis; 2]> {
    let n = c.node;
    let (scales, sizes) = if n.op == "Upsample" {
        let s = match n.attrs.get("scales") {
            Some(Attr::Floats(v)) => Some(v.clone()),
            _ => c.host(1)?.map(|t| t.as_f32()),
        };
        (s, None)
    } else if c.graph().opset >= 11 {
        (
            c.host(2)?.map(|t| t.as_f32()).filter(|v| !v.is_empty()),
            c.ints_input(3)?.filter(|v| !v.is_empty()),
        )
    } else {
        (c.host(1)?.map(|t| t.as_f32()), None)
    };
    let rank = s.len();
    let axes: Vec<usize> = match n.ints("axes") {
        Some(a) => a
            .iter()
            .map(|&v| {
                if v < 0 {
                    (v + rank as i64) as usize
                } else {
                    v as usize
                }
            })
            .collect(),
        None => (0..rank).collect(),
    };
    let mut full_scale = vec![1.0f64; rank];
    let mut full_size: Vec<usize> = s.to_vec();
    match (sizes, scales) {
        (Some(sz), _) => {
            if sz.len() != axes.len() || sz.iter().any(|&v| v < 0) {
                return Err(c.err(format!("sizes {sz:?} do not match the axes {axes:?}")));
            }
            let policy = n.string("keep_aspect_ratio_policy", "stretch");
            let ratio = |i: usize| sz[i] as f64 / s[axes[i]] as f64;
            let keep = match policy.as_str() {
                "stretch" => None,
                "not_larger" => Some((0..axes.len()).map(ratio).fold(f64::INFINITY, f64::min)),
                "not_smaller" => Some((0..axes.len()).map(ratio).fold(0.0, f64::max)),
                p => return Err(c.err(format!("keep_aspect_ratio_policy {p:?} is not supported"))),
            };
            for (i, &a) in axes.iter().enumerate() {
                if a >= rank {
                    return Err(c.err(format!("axis {a} is out of range")));
                }
                let (out, scale) = match keep {
                    // The spec rounds half away from zero here.
                    Some(r) => ((r * s[a] as f64).round() as usize, r),
                    None => (sz[i] as usize, ratio(i)),
                };
                full_size[a] = out;
                full_scale[a] = scale;
            }
        }
        (None, Some(sc)) => {
            if sc.len() != axes.len() || sc.iter().any(|&v| v.is_nan() || v <= 0.0) {
                return Err(c.err(format!(
                    "scales {sc:?} do not match the axes {axes:?} (all > 0)"
                )));
            }
            for (i, &a) in axes.iter().enumerate() {
                if a >= rank {
                    return Err(c.err(format!("axis {a} is out of range")));
                }
                full_scale[a] = sc[i] as f64;
                full_size[a] = (s[a] as f64 * sc[i] as f64).floor() as usize;
            }
        }
        _ => return Err(c.err("needs scales or sizes")),
    }
    if full_size[0] != s[0] || full_size[1] != s[1] {
        return Err(c.err(format!(
            "resizing N or C ({s:?} -> {full_size:?}) is not supported"
        )));
    }
    if full_size[2] == 0 || full_size[3] == 0 {
        return Err(c.err(format!("the output {full_size:?} is empty")));
    }
    // The interpolation matrices live on the host: a hostile size must be an
    // error, not an allocation abort.
    for d in 2..4 {
        if full_size[d] > MAX_SIDE || full_size[d].saturating_mul(s[d]) > MAX_MATRIX {
            return Err(c.err(format!(
                "resizing {s:?} to {full_size:?} is beyond what condenser resizes (sides up to {MAX_SIDE})"
            )));
        }
    }
    Ok([
        Axis {
            len: s[2],
            out: full_size[2],
            scale: full_scale[2],
        },
        Axis {
            len: s[3],
            out: full_size[3],
            scale: full_scale[3],
        },
    ])
}

/// The upsampling kernel's mode when it computes exactly this resize.
fn kernel_equivalent(m: &Mode, h: &Axis, w: &Axis) -> Option<UpsampleMode> {
    // The kernel maps by the size ratio: only when the scale is exactly it.
    let exact = |a: &Axis| (a.scale * a.len as f64 - a.out as f64).abs() < 1e-9;
    let whole_up = |a: &Axis| a.out >= a.len && a.out.is_multiple_of(a.len);
    if !exact(h) || !exact(w) || m.antialias {
        return None;
    }
    match (m.mode.as_str(), m.ctm.as_str(), m.nearest.as_str()) {
        ("nearest", "asymmetric", "floor") => Some(UpsampleMode::Nearest),
        (
            "nearest",
            "half_pixel" | "pytorch_half_pixel",
            "round_prefer_floor" | "round_prefer_ceil",
        ) if whole_up(h) && whole_up(w) => Some(UpsampleMode::Nearest),
        ("linear" | "bilinear", "half_pixel" | "pytorch_half_pixel", _)
            if h.out > 1 && w.out > 1 =>
        {
            Some(UpsampleMode::Bilinear)
        }
        _ => None,
    }
}

/// The input coordinate of output index `o` (the spec's transformations; the
/// output length in them is scale * length, before rounding down).
fn source(ctm: &str, a: &Axis, o: usize) -> f64 {
    let (o, len, s) = (o as f64, a.len as f64, a.scale);
    let out = s * len;
    match ctm {
        "half_pixel_symmetric" => {
            let adj = a.out as f64 / out;
            let center = len / 2.0;
            center * (1.0 - adj) + (o + 0.5) / s - 0.5
        }
        "pytorch_half_pixel" if out <= 1.0 => 0.0,
        "half_pixel" | "pytorch_half_pixel" => (o + 0.5) / s - 0.5,
        "align_corners" if out <= 1.0 => 0.0,
        "align_corners" => o * (len - 1.0) / (out - 1.0),
        _ => o / s,
    }
}

/// Keys' cubic kernel with coefficient `a`.
fn cubic(t: f64, a: f64) -> f64 {
    let t = t.abs();
    if t <= 1.0 {
        ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    } else if t < 2.0 {
        ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a
    } else {
        0.0
    }
}

/// The [out, len] interpolation matrix of one axis, row-major.
fn matrix(c: &Ctx, m: &Mode, a: &Axis) -> Result<Vec<f32>> {
    let mut r = vec![0.0f64; a.out * a.len];
    let last = a.len as i64 - 1;
    for o in 0..a.out {
        let x = source(&m.ctm, a, o);
        let row = &mut r[o * a.len..(o + 1) * a.len];
        if m.mode == "nearest" {
            let frac = x - x.floor();
            let i = match m.nearest.as_str() {
                "floor" => x.floor(),
                "ceil" => x.ceil(),
                "round_prefer_ceil" if frac == 0.5 => x.ceil(),
                "round_prefer_floor" if frac == 0.5 => x.floor(),
                _ => x.round(),
            };
            row[(i as i64).clamp(0, last) as usize] = 1.0;
            continue;
        }
        // Taps base + i with the spec's convention: at a whole coordinate the
        // left neighbour is the base and the offset is 1.
        let (base, ratio) = if x == x.floor() {
            (x as i64 - 1, 1.0)
        } else {
            (x.floor() as i64, x - x.floor())
        };
        let s_aa = if m.antialias { a.scale.min(1.0) } else { 1.0 };
        let support = if m.mode == "cubic" { 2.0 } else { 1.0 };
        // The spec's footprint: taps start..2 - start around the base (two
        // for linear, four for cubic; wider when antialiasing a downscale).
        let start = (-support / s_aa).floor() as i64 + 1;
        let end = 2 - start;
        let mut taps: Vec<(i64, f64)> = (start..end)
            .map(|i| {
                let t = (i as f64 - ratio) * s_aa;
                let wgt = if m.mode == "cubic" {
                    cubic(t, m.cubic_a)
                } else {
                    (1.0 - t.abs()).max(0.0)
                };
                (base + i, wgt)
            })
            .collect();
        if m.exclude_outside {
            for t in &mut taps {
                if t.0 < 0 || t.0 > last {
                    t.1 = 0.0;
                }
            }
        }
        let sum: f64 = taps.iter().map(|t| t.1).sum();
        if m.antialias || m.exclude_outside {
            if sum == 0.0 {
                return Err(c.err("an output position has no input taps"));
            }
            taps.iter_mut().for_each(|t| t.1 /= sum);
        }
        for (i, wgt) in taps {
            row[i.clamp(0, last) as usize] += wgt;
        }
    }
    Ok(r.into_iter().map(|v| v as f32).collect())
}
