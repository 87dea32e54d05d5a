use crate::ops::resample::UpsampleMode;

fn taps(o: usize, insz: usize, outsz: usize, mode: UpsampleMode) -> (usize, usize, f64) {
    let scale = insz as f64 / outsz as f64;
    match mode {
        UpsampleMode::Nearest => {
            let i = ((o as f64 * scale).floor() as usize).min(insz - 1);
            (i, i, 0.0)
        }
        UpsampleMode::Bilinear => {
            let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(insz - 1);
            let i1 = (i0 + 1).min(insz - 1);
            (i0, i1, s - i0 as f64)
        }
    }
}

/// Upsamples `planes` planes of h x w to oh x ow (PyTorch, align_corners = false).
pub fn upsample(
    x: &[f64],
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    mode: UpsampleMode,
) -> Vec<f64> {
    let mut y = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        let at = |yy: usize, xx: usize| x[p * h * w + yy * w + xx];
        for oy in 0..oh {
            let (y0, y1, wy) = taps(oy, h, oh, mode);
            for ox in 0..ow {
                let (x0, x1, wx) = taps(ox, w, ow, mode);
                let top = at(y0, x0) * (1.0 - wx) + at(y0, x1) * wx;
                let bot = at(y1, x0) * (1.0 - wx) + at(y1, x1) * wx;
                y.push(top * (1.0 - wy) + bot * wy);
            }
        }
    }
    y
}
