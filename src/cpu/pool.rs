use crate::ops::pool::Pool2dConfig;

/// Visits the in-bounds input positions of output window (oy, ox).
fn window(
    cfg: &Pool2dConfig,
    h: usize,
    w: usize,
    oy: usize,
    ox: usize,
    mut f: impl FnMut(usize, usize),
) {
    for ky in 0..cfg.kernel.0 {
        let y = (oy * cfg.stride.0 + ky * cfg.dilation.0) as isize - cfg.padding.0 as isize;
        if y < 0 || y >= h as isize {
            continue;
        }
        for kx in 0..cfg.kernel.1 {
            let x = (ox * cfg.stride.1 + kx * cfg.dilation.1) as isize - cfg.padding.1 as isize;
            if x >= 0 && x < w as isize {
                f(y as usize, x as usize);
            }
        }
    }
}

/// Max pooling over `planes` planes of h x w: values and flat winner indices.
pub fn max_pool2d(
    x: &[f64],
    planes: usize,
    h: usize,
    w: usize,
    cfg: &Pool2dConfig,
) -> (Vec<f64>, Vec<u32>) {
    let (oh, ow) = cfg.out_size("cpu::max_pool2d", h, w).expect("valid config");
    let mut y = Vec::new();
    let mut idx = Vec::new();
    for p in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best: Option<(f64, usize)> = None;
                window(cfg, h, w, oy, ox, |yy, xx| {
                    let v = x[p * h * w + yy * w + xx];
                    if best.is_none_or(|(b, _)| v > b) {
                        best = Some((v, yy * w + xx));
                    }
                });
                let (v, i) = best.expect("window holds an input pixel");
                y.push(v);
                idx.push(i as u32);
            }
        }
    }
    (y, idx)
}

/// Average pooling, dividing by the full window (count_include_pad).
pub fn avg_pool2d(x: &[f64], planes: usize, h: usize, w: usize, cfg: &Pool2dConfig) -> Vec<f64> {
    let (oh, ow) = cfg.out_size("cpu::avg_pool2d", h, w).expect("valid config");
    let area = (cfg.kernel.0 * cfg.kernel.1) as f64;
    let mut y = Vec::new();
    for p in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0.0;
                window(cfg, h, w, oy, ox, |yy, xx| {
                    acc += x[p * h * w + yy * w + xx]
                });
                y.push(acc / area);
            }
        }
    }
    y
}
