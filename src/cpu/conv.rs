use crate::ops::conv::ConvGeom;

/// Direct convolution in f64: x [N, C, H, W], w [OC, C/groups, KH, KW], b [OC].
pub fn conv2d(x: &[f64], w: &[f64], b: Option<&[f64]>, g: &ConvGeom) -> Vec<f64> {
    let cfg = g.cfg;
    let cg = g.c / cfg.groups;
    let ocg = g.oc / cfg.groups;
    let mut y = vec![0f64; g.n * g.oc * g.oh * g.ow];
    for n in 0..g.n {
        for o in 0..g.oc {
            let grp = o / ocg;
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut acc = b.map_or(0.0, |b| b[o]);
                    for ci in 0..cg {
                        let c = grp * cg + ci;
                        for ky in 0..g.kh {
                            let iy = (oy * cfg.stride.0 + ky * cfg.dilation.0) as isize
                                - cfg.padding.0 as isize;
                            if iy < 0 || iy >= g.h as isize {
                                continue;
                            }
                            for kx in 0..g.kw {
                                let ix = (ox * cfg.stride.1 + kx * cfg.dilation.1) as isize
                                    - cfg.padding.1 as isize;
                                if ix < 0 || ix >= g.w as isize {
                                    continue;
                                }
                                acc += x[((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize]
                                    * w[((o * cg + ci) * g.kh + ky) * g.kw + kx];
                            }
                        }
                    }
                    y[((n * g.oc + o) * g.oh + oy) * g.ow + ox] = acc;
                }
            }
        }
    }
    y
}

/// y = x @ w^T + b with x [N, IN], w [OUT, IN] (PyTorch's Linear).
pub fn linear(
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    n: usize,
    inp: usize,
    out: usize,
) -> Vec<f64> {
    let mut y = vec![0f64; n * out];
    for i in 0..n {
        for o in 0..out {
            let mut acc = b.map_or(0.0, |b| b[o]);
            for k in 0..inp {
                acc += x[i * inp + k] * w[o * inp + k];
            }
            y[i * out + o] = acc;
        }
    }
    y
}
