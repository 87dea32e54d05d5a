//! Convolution: the GPU forward and both backwards (im2col + matmul for groups 1,
//! direct kernels for grouped and depthwise, batch-chunked im2col for large
//! batches) against src/cpu/conv.rs and finite differences.
//! Tolerances (see tests/common): forwards 1e-4 absolute plus relative, gradients
//! 2e-3 of the largest component against f64 finite differences.

mod common;
use common::{FWD, GRAD, check_op, gpu, input};
use condenser::Tensor;
use condenser::autograd::functional as F;
use condenser::cpu;
use condenser::ops::conv::Conv2dConfig;
use condenser::ops::matmul::{MatmulKernel, set_preferred_kernel};

fn conv_case(
    what: &str,
    x: [usize; 4],
    oc: usize,
    k: (usize, usize),
    cfg: Conv2dConfig,
    bias: bool,
) {
    let cg = x[1] / cfg.groups;
    let w = [oc, cg, k.0, k.1];
    let mut inputs = vec![input(&x, 1), input(&w, 2)];
    if bias {
        inputs.push(input(&[oc], 3));
    }
    check_op(
        what,
        &inputs,
        &|v| F::conv2d(&v[0], &v[1], v.get(2), cfg).unwrap(),
        &|xs| cpu::conv::conv2d(&xs[0], x, &xs[1], w, xs.get(2).map(|b| b.as_slice()), &cfg).0,
        FWD,
        GRAD,
    );
}

#[test]
fn conv2d_gemm_path() {
    // Stride-1 input gradients run as transposed convolutions; the same cases
    // with that off check the col2im path.
    for transposed in [true, false] {
        condenser::ops::conv::set_transposed_input_grad(transposed);
        gemm_cases();
    }
    condenser::ops::conv::set_transposed_input_grad(true);
}

#[test]
fn conv2d_gemm_path_on_the_texture_matmul() {
    // Where the texture matmul runs, the forward GEMM takes pixels as rows and
    // writes its output transposed; these shapes are too small to pick it by
    // itself.
    if gpu().subgroup_size() != Some(8) {
        eprintln!("skipped: no 8-wide subgroups, so no texture matmul");
        return;
    }
    set_preferred_kernel(Some(MatmulKernel::CpuTexture));
    gemm_cases();
    set_preferred_kernel(None);
}

/// Both orientations of the forward GEMM (weights as rows on the subgroup
/// matmul, pixels as rows on the texture matmul) sum the same products in the
/// same order: the outputs agree to the bit, on a layer-sized input.
#[test]
fn conv2d_forward_orientations_agree_to_the_bit() {
    if gpu().subgroup_size() != Some(8) {
        eprintln!("skipped: no 8-wide subgroups, so no texture matmul");
        return;
    }
    let g = gpu();
    let x = Tensor::rand_uniform(&g, &[3, 16, 12, 12], -1.0, 1.0, 3).unwrap();
    let w = Tensor::rand_uniform(&g, &[24, 16, 3, 3], -1.0, 1.0, 4).unwrap();
    let mut outs = Vec::new();
    for k in [MatmulKernel::CpuSubgroup, MatmulKernel::CpuTexture] {
        set_preferred_kernel(Some(k));
        let y = condenser::ops::conv::conv2d(&x, &w, None, Conv2dConfig::new(1, 1)).unwrap();
        outs.push(y.to_vec().unwrap());
    }
    set_preferred_kernel(None);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&outs[0]), bits(&outs[1]));
}

fn gemm_cases() {
    conv_case(
        "3x3 pad 1",
        [2, 3, 7, 5],
        4,
        (3, 3),
        Conv2dConfig::new(1, 1),
        true,
    );
    conv_case(
        "3x3 stride 2",
        [1, 5, 9, 11],
        7,
        (3, 3),
        Conv2dConfig::new(2, 0),
        false,
    );
    conv_case(
        "1x1",
        [3, 8, 4, 4],
        5,
        (1, 1),
        Conv2dConfig::default(),
        true,
    );
    // Strided input gradients as one implicit GEMM per pixel class, where
    // OC * taps is a multiple of 4 (else GEMM + col2im).
    conv_case(
        "3x3 stride 2 pad 1, 8 output channels",
        [2, 3, 9, 8],
        8,
        (3, 3),
        Conv2dConfig::new(2, 1),
        true,
    );
    conv_case(
        "1x1 stride 2",
        [2, 4, 7, 6],
        4,
        (1, 1),
        Conv2dConfig::new(2, 0),
        false,
    );
    conv_case(
        "kernel = input",
        [2, 2, 3, 3],
        3,
        (3, 3),
        Conv2dConfig::default(),
        true,
    );
    let dil = Conv2dConfig {
        dilation: (2, 1),
        padding: (2, 1),
        stride: (1, 2),
        groups: 1,
    };
    conv_case("dilated, rectangular", [1, 3, 8, 7], 2, (3, 2), dil, true);
    let dil1 = Conv2dConfig {
        dilation: (2, 3),
        padding: (1, 3),
        ..Conv2dConfig::default()
    };
    conv_case("dilated, stride 1", [2, 3, 9, 10], 3, (3, 2), dil1, false);
    // Padding past d * (k - 1): the input gradient falls back to col2im.
    let wide_pad = Conv2dConfig::new(1, 3);
    conv_case(
        "padding 3 on a 3x3 kernel",
        [1, 2, 4, 5],
        3,
        (3, 3),
        wide_pad,
        true,
    );
}

/// Two ways to the same values that sum in different orders agree to 1e-5
/// of the largest value of `want` (f32 rounding over sums of up to a few
/// thousand products).
fn agree_to_largest(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-5 * scale, "{what} at {i}: {a} vs {b}");
    }
}

/// The two ways to the input gradient of a stride-1 convolution (transposed
/// convolution, GEMM + col2im) agree on layer-sized inputs.
#[test]
fn transposed_input_gradient_matches_col2im() {
    use condenser::ops::conv::{ConvGeom, conv2d_backward_input, set_transposed_input_grad};
    let g = gpu();
    let cases = [
        (
            [2usize, 16, 12, 12],
            24usize,
            (3usize, 3usize),
            Conv2dConfig::new(1, 1),
        ),
        ([1, 8, 9, 11], 12, (5, 5), Conv2dConfig::new(1, 2)),
        ([2, 5, 8, 8], 7, (3, 3), Conv2dConfig::default()),
        ([3, 6, 6, 7], 4, (1, 1), Conv2dConfig::default()),
    ];
    for (x, oc, k, cfg) in cases {
        let w = [oc, x[1], k.0, k.1];
        let geom = ConvGeom::new(&x, &w, cfg).unwrap();
        let wt = Tensor::rand_uniform(&g, &w, -1.0, 1.0, 8).unwrap();
        let dy_shape = [x[0], oc, geom.oh, geom.ow];
        let dy = Tensor::rand_uniform(&g, &dy_shape, -1.0, 1.0, 9).unwrap();
        let mut got = Vec::new();
        for transposed in [true, false] {
            set_transposed_input_grad(transposed);
            let dx = conv2d_backward_input(&dy, &wt, &geom).unwrap();
            assert_eq!(dx.shape(), &x[..]);
            got.push(dx.to_vec().unwrap());
        }
        set_transposed_input_grad(true);
        agree_to_largest(&got[0], &got[1], &format!("{x:?} {k:?}"));
    }
}

#[test]
fn conv2d_grouped_and_depthwise() {
    let grouped = Conv2dConfig {
        groups: 2,
        ..Conv2dConfig::new(1, 1)
    };
    conv_case("groups 2", [2, 4, 6, 5], 6, (3, 3), grouped, true);
    let depthwise = Conv2dConfig {
        groups: 3,
        ..Conv2dConfig::new(2, 1)
    };
    conv_case("depthwise", [2, 3, 7, 7], 3, (3, 3), depthwise, false);
}

#[test]
fn conv2d_shape_errors() {
    let g = gpu();
    let x = Tensor::zeros(&g, &[1, 3, 5, 5]).unwrap();
    let w = Tensor::zeros(&g, &[4, 2, 3, 3]).unwrap();
    let e = condenser::ops::conv::conv2d(&x, &w, None, Conv2dConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups = 1"), "{e}");
    let w = Tensor::zeros(&g, &[4, 3, 7, 7]).unwrap();
    let e = condenser::ops::conv::conv2d(&x, &w, None, Conv2dConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not fit"), "{e}");
}

#[test]
fn conv2d_in_batch_chunks() {
    // A budget of two images' columns per im2col pass: a batch of 5 runs as
    // chunks of 2, 2 and 1 in the forward, the input gradient (concatenated)
    // and the weight gradient (summed over chunks).
    let (x, oc, k) = ([5, 3, 7, 6], 4, (3, 3));
    let cfg = Conv2dConfig::new(1, 1);
    let per_image = (7 * 6 * (3 * 3 * 3usize).div_ceil(4) * 4 * 4) as u64;
    condenser::ops::conv::set_im2col_budget(Some(2 * per_image));
    for transposed in [true, false] {
        condenser::ops::conv::set_transposed_input_grad(transposed);
        conv_case("conv in chunks of 2", x, oc, k, cfg, true);
    }
    condenser::ops::conv::set_transposed_input_grad(true);
    conv_case(
        "conv in chunks, stride 2",
        [3, 2, 9, 8],
        3,
        (3, 3),
        Conv2dConfig::new(2, 1),
        false,
    );
    condenser::ops::conv::set_im2col_budget(None);
}

/// im2col writes rows of a multiple of 8 values as 64-bit words where the
/// adapter has SHADER_INT64; the columns are copies either way, so the
/// convolution is the same bit for bit with the vec4 kernel.
#[test]
fn im2col_through_64_bit_words_matches_vec4() {
    let g = gpu();
    let x = Tensor::rand_uniform(&g, &[2, 8, 9, 7], -1.0, 1.0, 11).unwrap();
    let w = Tensor::rand_uniform(&g, &[5, 8, 3, 3], -1.0, 1.0, 12).unwrap();
    let cfg = Conv2dConfig {
        dilation: (1, 2),
        ..Conv2dConfig::new(2, 1)
    };
    let mut outs = Vec::new();
    for wide in [true, false] {
        condenser::ops::set_wide_variants(wide);
        let y = condenser::ops::conv::conv2d(&x, &w, None, cfg).unwrap();
        outs.push(y.to_vec().unwrap());
    }
    condenser::ops::set_wide_variants(true);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&outs[0]), bits(&outs[1]));
}

/// The implicit GEMM (the input read from a texture, no im2col matrix) sums
/// the same products in the same order as im2col + the texture matmul: the
/// forward, both gradients and a split-K weight gradient agree to the bit, on
/// awkward shapes (C * KH * KW not a multiple of 4, strides, dilation,
/// rectangular kernels, pixel counts that are not multiples of 4).
#[test]
fn implicit_gemm_matches_im2col_to_the_bit() {
    use condenser::ops::conv::{ConvGeom, conv2d, conv2d_backward_input, conv2d_backward_weight};
    use condenser::ops::conv_implicit::set_implicit_conv;
    if gpu().subgroup_size() != Some(8) {
        eprintln!("skipped: no 8-wide subgroups, so no texture matmul");
        return;
    }
    let g = gpu();
    let dilated = Conv2dConfig {
        dilation: (2, 1),
        padding: (2, 1),
        stride: (1, 2),
        groups: 1,
    };
    let cases = [
        (
            [2usize, 16, 12, 12],
            24usize,
            (3usize, 3usize),
            Conv2dConfig::new(1, 1),
        ),
        ([1, 5, 9, 11], 7, (3, 3), Conv2dConfig::new(2, 0)),
        ([2, 3, 8, 7], 6, (3, 2), dilated),
        ([3, 3, 7, 5], 5, (3, 3), Conv2dConfig::new(1, 1)),
        ([2, 8, 6, 6], 4, (1, 1), Conv2dConfig::new(2, 0)),
        // 4096 pixels and one output tile: the weight gradient runs split-K.
        ([4, 8, 32, 32], 8, (3, 3), Conv2dConfig::new(1, 1)),
    ];
    set_preferred_kernel(Some(MatmulKernel::CpuTexture));
    for (x, oc, k, cfg) in cases {
        let w = [oc, x[1], k.0, k.1];
        let geom = ConvGeom::new(&x, &w, cfg).unwrap();
        let xt = Tensor::rand_uniform(&g, &x, -1.0, 1.0, 11).unwrap();
        let wt = Tensor::rand_uniform(&g, &w, -1.0, 1.0, 12).unwrap();
        let dy = Tensor::rand_uniform(&g, &geom.out_shape(), -1.0, 1.0, 13).unwrap();
        let mut runs = Vec::new();
        for implicit in [true, false] {
            set_implicit_conv(implicit);
            let y = conv2d(&xt, &wt, None, cfg).unwrap();
            let dx = conv2d_backward_input(&dy, &wt, &geom).unwrap();
            let dw = conv2d_backward_weight(&dy, &xt, &geom).unwrap();
            assert_eq!(dw.shape(), &w[..]);
            let bits = |t: &Tensor| -> Vec<u32> {
                t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect()
            };
            runs.push([bits(&y), bits(&dx), bits(&dw)]);
        }
        set_implicit_conv(true);
        for (what, (a, b)) in ["forward", "input grad", "weight grad"]
            .iter()
            .zip(runs[0].iter().zip(&runs[1]))
        {
            assert!(a == b, "{x:?} {k:?} {cfg:?}: {what} differs from im2col's");
        }
    }
    set_preferred_kernel(None);
}

/// A strided convolution's input gradient as sub-pixel implicit GEMMs (one
/// per class of input pixels) against GEMM + col2im, on layer-sized and
/// awkward shapes: odd sizes, stride 3, a 5x5 kernel, unequal strides, a 1x1
/// kernel whose stride leaves pixels no tap reaches.
#[test]
fn strided_input_gradient_matches_col2im() {
    use condenser::ops::conv::{ConvGeom, conv2d_backward_input};
    use condenser::ops::conv_implicit::set_implicit_conv;
    if gpu().subgroup_size() != Some(8) {
        eprintln!("skipped: no 8-wide subgroups, so no texture matmul");
        return;
    }
    let g = gpu();
    let rect = Conv2dConfig {
        stride: (2, 1),
        padding: (1, 0),
        ..Conv2dConfig::default()
    };
    let cases = [
        (
            [4usize, 16, 16, 16],
            32usize,
            (3usize, 3usize),
            Conv2dConfig::new(2, 1),
        ),
        ([2, 8, 9, 9], 12, (1, 1), Conv2dConfig::new(2, 0)),
        ([1, 5, 11, 9], 8, (3, 3), Conv2dConfig::new(2, 0)),
        ([2, 4, 10, 10], 8, (3, 3), Conv2dConfig::new(3, 1)),
        ([1, 8, 9, 7], 4, (5, 5), Conv2dConfig::new(2, 2)),
        ([2, 4, 8, 7], 8, (3, 2), rect),
    ];
    set_preferred_kernel(Some(MatmulKernel::CpuTexture));
    for (x, oc, k, cfg) in cases {
        let w = [oc, x[1], k.0, k.1];
        let geom = ConvGeom::new(&x, &w, cfg).unwrap();
        let wt = Tensor::rand_uniform(&g, &w, -1.0, 1.0, 14).unwrap();
        let dy = Tensor::rand_uniform(&g, &geom.out_shape(), -1.0, 1.0, 15).unwrap();
        let mut got = Vec::new();
        for implicit in [true, false] {
            set_implicit_conv(implicit);
            let dx = conv2d_backward_input(&dy, &wt, &geom).unwrap();
            assert_eq!(dx.shape(), &x[..]);
            got.push(dx.to_vec().unwrap());
        }
        set_implicit_conv(true);
        agree_to_largest(&got[0], &got[1], &format!("{x:?} {k:?} {cfg:?}"));
    }
    set_preferred_kernel(None);
}

/// Operands too large to stage as texels (here: textures one row tall) fall
/// back to im2col, col2im and the storage-buffer matmuls, with the same
/// results within rounding, forward and both gradients, strided included.
#[test]
fn operands_too_tall_for_a_texture_fall_back() {
    use condenser::ops::conv::{ConvGeom, conv2d, conv2d_backward_input, conv2d_backward_weight};
    if gpu().subgroup_size() != Some(8) {
        eprintln!("skipped: no 8-wide subgroups, so no texture matmul");
        return;
    }
    let g = gpu();
    set_preferred_kernel(Some(MatmulKernel::CpuTexture));
    for cfg in [Conv2dConfig::new(1, 1), Conv2dConfig::new(2, 1)] {
        // 65536 input floats: several rows of any scratch texture.
        let (x, w) = ([4usize, 16, 32, 32], [16usize, 16, 3, 3]);
        let geom = ConvGeom::new(&x, &w, cfg).unwrap();
        let xt = Tensor::rand_uniform(&g, &x, -1.0, 1.0, 16).unwrap();
        let wt = Tensor::rand_uniform(&g, &w, -1.0, 1.0, 17).unwrap();
        let dy = Tensor::rand_uniform(&g, &geom.out_shape(), -1.0, 1.0, 18).unwrap();
        let mut runs = Vec::new();
        for rows in [u32::MAX, 1] {
            g.set_max_texture_rows(rows);
            let y = conv2d(&xt, &wt, None, cfg).unwrap();
            let dx = conv2d_backward_input(&dy, &wt, &geom).unwrap();
            let dw = conv2d_backward_weight(&dy, &xt, &geom).unwrap();
            runs.push([y, dx, dw].map(|t| t.to_vec().unwrap()));
        }
        g.set_max_texture_rows(u32::MAX);
        for (what, (a, b)) in ["forward", "input grad", "weight grad"]
            .iter()
            .zip(runs[0].iter().zip(&runs[1]))
        {
            agree_to_largest(a, b, &format!("{cfg:?} {what}"));
        }
    }
    set_preferred_kernel(None);
}
