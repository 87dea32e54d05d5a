//! References of the convolution and linear ops, in f64. The output size is
//! computed here from the plain formula, not borrowed from `ops::conv`, so the
//! geometry the kernels use is checked too.

use crate::ops::conv::Conv2dConfig;

/// Output side of a convolution: floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1.
pub fn out_side(input: usize, k: usize, stride: usize, pad: usize, dil: usize) -> usize {
    (input + 2 * pad - dil * (k - 1) - 1) / stride + 1
}

/// Direct convolution: x [N, C, H, W], w [OC, C/groups, KH, KW], b [OC].
/// Returns y [N, OC, OH, OW] and its shape.
pub fn conv2d(
    x: &[f64],
    xs: [usize; 4],
    w: &[f64],
    ws: [usize; 4],
    b: Option<&[f64]>,
    cfg: &Conv2dConfig,
) -> (Vec<f64>, [usize; 4]) {
    let ([n, c, h, wd], [oc, cg, kh, kw]) = (xs, ws);
    let (s, p, d) = (cfg.stride, cfg.padding, cfg.dilation);
    let oh = out_side(h, kh, s.0, p.0, d.0);
    let ow = out_side(wd, kw, s.1, p.1, d.1);
    let ocg = oc / cfg.groups;
    let mut y = vec![0f64; n * oc * oh * ow];
    for ni in 0..n {
        for o in 0..oc {
            let grp = o / ocg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b[o]);
                    for ci in 0..cg {
                        let ch = grp * cg + ci;
                        for ky in 0..kh {
                            let iy = (oy * s.0 + ky * d.0) as isize - p.0 as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..kw {
                                let ix = (ox * s.1 + kx * d.1) as isize - p.1 as isize;
                                if ix < 0 || ix >= wd as isize {
                                    continue;
                                }
                                acc += x[((ni * c + ch) * h + iy as usize) * wd + ix as usize]
                                    * w[((o * cg + ci) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    y[((ni * oc + o) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    (y, [n, oc, oh, ow])
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
