//! Convolution: the GPU forward and both backwards (im2col + matmul for groups 1,
//! direct kernels for grouped and depthwise, batch-chunked im2col for large
//! batches) against src/cpu/conv.rs and finite differences.
//! Tolerances (see tests/common): forwards 1e-4 absolute plus relative, gradients
//! 2e-3 of the largest component against f64 finite differences.

mod common;
use common::{FWD, GRAD, check_op, gpu, input, rand_vec};
use condenser::Tensor;
use condenser::autograd::functional as F;
use condenser::cpu;
use condenser::ops::conv::{Conv2dConfig, set_direct_tiles, set_transposed_input_grad};
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
    // Pointwise convolutions skip im2col; with fewer pixels than output
    // channels the product takes the pixels as its rows.
    conv_case(
        "1x1, 6 pixels, 20 channels out",
        [2, 12, 2, 3],
        20,
        (1, 1),
        Conv2dConfig::default(),
        true,
    );
    conv_case(
        "1x1, 3 pixels, 9 channels out, 7 in",
        [1, 7, 3, 1],
        9,
        (1, 1),
        Conv2dConfig::default(),
        false,
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
fn conv2d_grouped_geometries_as_constants() {
    // The direct forward bakes every size but the batch into its pipeline:
    // each geometry below is its own kernel, checked against the reference
    // (channel multipliers, rectangular kernels, uneven strides and padding,
    // dilation, a kernel as large as the padded input, one pixel out), on
    // CPU adapters' tiled kernel (each invocation a tile of outputs sharing
    // one window of inputs; tiles cut short at the bottom and right edges)
    // and on the one-output-per-invocation kernel.
    let cases = [
        (
            "groups 3, 2 channels in and 3 out per group",
            [2, 6, 5, 7],
            9,
            (3, 3),
            Conv2dConfig::new(1, 1),
        ),
        (
            "edge tiles 7x13, stride 2",
            [2, 3, 13, 25],
            3,
            (3, 3),
            Conv2dConfig::new(2, 1),
        ),
        (
            "edge tiles 5x11, 5x5 kernel",
            [1, 4, 9, 15],
            4,
            (5, 5),
            Conv2dConfig::new(1, 0),
        ),
        (
            // No tile's window fits (65 inputs for one output): the tiled
            // kernel's caller falls back to one output per invocation.
            "1x9 kernel at dilation 8",
            [1, 2, 3, 70],
            2,
            (1, 9),
            Conv2dConfig {
                dilation: (1, 8),
                ..Conv2dConfig::new(1, 0)
            },
        ),
        (
            "multiplier 2",
            [3, 4, 5, 6],
            8,
            (3, 3),
            Conv2dConfig::new(1, 1),
        ),
        (
            "5x3 kernel",
            [1, 6, 9, 7],
            6,
            (5, 3),
            Conv2dConfig::new(1, 1),
        ),
        (
            "strides 2x3, padding 2x0",
            [2, 5, 11, 10],
            5,
            (3, 3),
            Conv2dConfig {
                stride: (2, 3),
                padding: (2, 0),
                ..Conv2dConfig::new(1, 0)
            },
        ),
        (
            "dilation 2",
            [2, 4, 9, 9],
            4,
            (3, 3),
            Conv2dConfig {
                dilation: (2, 2),
                ..Conv2dConfig::new(1, 2)
            },
        ),
        (
            "one output pixel",
            [2, 3, 3, 3],
            6,
            (5, 5),
            Conv2dConfig::new(1, 1),
        ),
        (
            "1x1 grouped",
            [2, 6, 4, 5],
            9,
            (1, 1),
            Conv2dConfig::new(2, 0),
        ),
    ];
    for (what, x, oc, k, cfg) in cases {
        let groups = if oc % x[1] == 0 { x[1] } else { 3 };
        let cfg = Conv2dConfig { groups, ..cfg };
        // Stride-1 input gradients run as the transposed (grouped)
        // convolution, or else (as strided ones do) by the direct
        // input-gradient kernel, tiled or one pixel per invocation.
        for (rows, transposed) in [(true, true), (false, true), (true, false), (false, false)] {
            set_direct_tiles(Some(rows));
            set_transposed_input_grad(transposed);
            conv_case(
                &format!("{what}, tiles {rows}, transposed input grad {transposed}"),
                x,
                oc,
                k,
                cfg,
                false,
            );
        }
    }
    set_direct_tiles(None);
    set_transposed_input_grad(true);
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

/// Batch norm in eval mode (then ReLU, or the residual's add and ReLU) fused
/// into the implicit GEMM's store (`conv2d_bn_eval`) against the ops one after
/// another, to the bit, on awkward shapes (channels not a multiple of 4, odd
/// sizes, strides, a 1x1 kernel, NaN and infinities in the input); the
/// profile says the epilogue ran where the implicit GEMM does; a single image
/// whose product splits over k runs the ops one after another.
#[test]
fn conv_bn_eval_is_the_ops_one_after_another_to_the_bit() {
    use condenser::ops::conv::{BnPost, EvalBn, conv2d, conv2d_bn_eval};
    use condenser::ops::norm::{BnConfig, batch_norm, batch_norm_add_relu, batch_norm_relu};
    let g = gpu();
    let texture = g.subgroup_size() == Some(8);
    if texture {
        set_preferred_kernel(Some(MatmulKernel::CpuTexture));
    }
    let cases = [
        ([2usize, 5, 9, 11], 7usize, 3usize, Conv2dConfig::new(1, 1)),
        ([3, 3, 8, 7], 6, 3, Conv2dConfig::new(2, 1)),
        ([2, 8, 6, 6], 13, 1, Conv2dConfig::new(2, 0)),
        ([2, 16, 12, 12], 24, 3, Conv2dConfig::new(1, 1)),
        // One image, 64 x 2304 x 64: the product splits over k.
        ([1, 256, 8, 8], 64, 3, Conv2dConfig::new(1, 1)),
    ];
    for (i, (x, oc, k, cfg)) in cases.into_iter().enumerate() {
        let s = 10 * i as u64;
        let mut xs = Tensor::rand_uniform(&g, &x, -1.0, 1.0, s)
            .unwrap()
            .to_vec()
            .unwrap();
        (xs[0], xs[1], xs[2]) = (f32::NAN, f32::INFINITY, f32::NEG_INFINITY);
        let xt = Tensor::from_slice(&g, &x, &xs).unwrap();
        let wt = Tensor::rand_uniform(&g, &[oc, x[1], k, k], -0.5, 0.5, s + 1).unwrap();
        let c = |lo, hi, seed| Tensor::rand_uniform(&g, &[oc], lo, hi, s + seed).unwrap();
        let (gamma, beta, mean, var) = (
            c(0.5, 1.5, 2),
            c(-0.5, 0.5, 3),
            c(-0.3, 0.3, 4),
            c(0.2, 2.0, 5),
        );
        let y = conv2d(&xt, &wt, None, cfg).unwrap();
        let res = Tensor::rand_uniform(&g, y.shape(), -1.0, 1.0, s + 6).unwrap();
        let bn_cfg = BnConfig {
            training: false,
            momentum: 0.1,
            eps: 1e-5,
        };
        let (a, r) = ((&gamma, &beta), (&mean, &var));
        for post in [BnPost::None, BnPost::Relu, BnPost::AddRelu(&res)] {
            let want = match post {
                BnPost::None => batch_norm(&y, a, r, bn_cfg),
                BnPost::Relu => batch_norm_relu(&y, a, r, bn_cfg),
                BnPost::AddRelu(res) => batch_norm_add_relu(&y, res, a, r, bn_cfg),
            }
            .unwrap()
            .0;
            assert!(g.profile_begin().unwrap());
            let bn = EvalBn {
                affine: a,
                running: r,
                eps: 1e-5,
                post,
            };
            let got = conv2d_bn_eval(&xt, &wt, cfg, bn).unwrap();
            let fused = g
                .profile_end()
                .unwrap()
                .iter()
                .any(|t| t.kernel.contains("EPI_BN=1"));
            // Every NaN as one (which NaN an instruction makes is not kept).
            let bits = |t: &Tensor| -> Vec<u32> {
                let canon = |v: &f32| if v.is_nan() { f32::NAN } else { *v }.to_bits();
                t.to_vec().unwrap().iter().map(canon).collect()
            };
            let what = format!(
                "{x:?} oc {oc} k {k} {cfg:?} post {}",
                post.residual().is_some()
            );
            let (gb, wb) = (bits(&got), bits(&want));
            let bad = gb.iter().zip(&wb).position(|(a, b)| a != b);
            assert!(
                bad.is_none(),
                "{what}: differs from the ops one after another at {bad:?}: {:?} vs {:?}",
                bad.map(|i| f32::from_bits(gb[i])),
                bad.map(|i| f32::from_bits(wb[i]))
            );
            assert_eq!(
                fused,
                texture && x[0] > 1,
                "{what}: fused epilogue ran: {fused}"
            );
        }
    }
    set_preferred_kernel(None);
}

/// conv2d_bn_eval against the f64 references (conv, then batch norm with the
/// running statistics, the residual's add and ReLU), 1e-4 as the forwards.
#[test]
fn conv_bn_eval_matches_the_f64_reference() {
    use condenser::ops::conv::{BnPost, EvalBn, conv2d_bn_eval};
    let g = gpu();
    let (x, oc, k, cfg) = ([2usize, 6, 7, 9], 5usize, 3usize, Conv2dConfig::new(1, 1));
    let w = [oc, x[1], k, k];
    let (xs, ws) = (
        common::rand_vec(x.iter().product(), 1),
        common::rand_vec(oc * 6 * 9, 2),
    );
    let gamma: Vec<f32> = (0..oc).map(|i| 0.5 + 0.2 * i as f32).collect();
    let beta: Vec<f32> = (0..oc).map(|i| 0.1 * i as f32 - 0.2).collect();
    let mean: Vec<f32> = (0..oc).map(|i| 0.05 * i as f32).collect();
    let var: Vec<f32> = (0..oc).map(|i| 0.5 + 0.3 * i as f32).collect();
    let (y64, yshape) = cpu::conv::conv2d(&common::f64s(&xs), x, &common::f64s(&ws), w, None, &cfg);
    let hw = yshape[2] * yshape[3];
    let res = common::rand_vec(y64.len(), 3);
    let bn64 = cpu::norm::batch_norm_eval(
        &y64,
        [x[0], oc, hw],
        (&common::f64s(&gamma), &common::f64s(&beta)),
        (&common::f64s(&mean), &common::f64s(&var)),
        1e-5,
    );
    let t = |v: &[f32], s: &[usize]| Tensor::from_slice(&g, s, v).unwrap();
    let (gt, bt, mt, vt) = (
        t(&gamma, &[oc]),
        t(&beta, &[oc]),
        t(&mean, &[oc]),
        t(&var, &[oc]),
    );
    let rt = t(&res, &yshape);
    for post in [BnPost::None, BnPost::Relu, BnPost::AddRelu(&rt)] {
        let want: Vec<f64> = bn64
            .iter()
            .zip(&res)
            .map(|(&v, &r)| match post {
                BnPost::None => v,
                BnPost::Relu => v.max(0.0),
                BnPost::AddRelu(_) => (v + r as f64).max(0.0),
            })
            .collect();
        let bn = EvalBn {
            affine: (&gt, &bt),
            running: (&mt, &vt),
            eps: 1e-5,
            post,
        };
        let got = conv2d_bn_eval(&t(&xs, &x), &t(&ws, &w), cfg, bn).unwrap();
        assert_eq!(got.shape(), &yshape[..]);
        common::assert_close(
            &got.to_vec().unwrap(),
            &common::f32s(&want),
            1e-4,
            1e-4,
            "conv_bn_eval",
        );
    }
}

/// Mismatched batch norm parameters or residual are errors that name them,
/// and the Var op refuses inputs that need a gradient (it has no backward).
#[test]
fn conv_bn_eval_refuses_bad_arguments() {
    use condenser::autograd::Var;
    use condenser::ops::conv::{BnPost, EvalBn, conv2d_bn_eval};
    let g = gpu();
    let x = Tensor::rand_uniform(&g, &[1, 3, 5, 5], -1.0, 1.0, 1).unwrap();
    let w = Tensor::rand_uniform(&g, &[4, 3, 3, 3], -1.0, 1.0, 2).unwrap();
    let (c4, c3) = (
        Tensor::zeros(&g, &[4]).unwrap(),
        Tensor::zeros(&g, &[3]).unwrap(),
    );
    let bad_res = Tensor::zeros(&g, &[1, 4, 5, 5]).unwrap();
    let cfg = Conv2dConfig::new(1, 0);
    let bn = |affine, post| EvalBn {
        affine,
        running: (&c4, &c4),
        eps: 1e-5,
        post,
    };
    let err = conv2d_bn_eval(&x, &w, cfg, bn((&c3, &c4), BnPost::None)).unwrap_err();
    assert!(
        err.to_string().contains("batch norm weight must be [4]"),
        "{err}"
    );
    let err = conv2d_bn_eval(&x, &w, cfg, bn((&c4, &c4), BnPost::AddRelu(&bad_res))).unwrap_err();
    assert!(err.to_string().contains("residual must be"), "{err}");
    let v = |t: &Tensor, grad| Var::leaf(t.clone(), grad);
    let (gv, bv) = (v(&c4, true), v(&c4, false));
    let var_op = || {
        let (xv, wv) = (v(&x, false), v(&w, false));
        F::conv2d_bn_eval(&xv, &wv, cfg, (&gv, &bv), (&c4, &c4), 1e-5, BnPost::Relu)
    };
    let err = var_op().unwrap_err();
    assert!(err.to_string().contains("no backward"), "{err}");
    let _guard = condenser::autograd::no_grad();
    assert!(var_op().is_ok());
}

#[test]
fn a_padded_weight_is_kept_only_while_the_weight_is_unchanged() {
    // A weight whose C * KH * KW is not a multiple of 4 is padded before the
    // product; a frozen one's padded copy is kept. Changing the weight (an
    // upload, as loading a checkpoint does) must be seen at once.
    let g = gpu();
    let (x, w) = ([2usize, 3, 6, 5], [4usize, 3, 3, 3]);
    let cfg = Conv2dConfig::new(1, 1);
    let xt = Tensor::rand_uniform(&g, &x, -1.0, 1.0, 41).unwrap();
    let wt = Tensor::rand_uniform(&g, &w, -1.0, 1.0, 42).unwrap();
    let f64s = |t: &Tensor| -> Vec<f64> { t.to_vec().unwrap().iter().map(|&v| v as f64).collect() };
    let check = |what: &str| {
        let got = condenser::ops::conv::conv2d(&xt, &wt, None, cfg).unwrap();
        let want = cpu::conv::conv2d(&f64s(&xt), x, &f64s(&wt), w, None, &cfg).0;
        let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        common::assert_close(&got.to_vec().unwrap(), &want, 1e-4, 1e-4, what);
    };
    let hits = g.derived_hits();
    for _ in 0..3 {
        check("a frozen weight");
    }
    assert!(g.derived_hits() > hits, "the padded weight is reused");
    for seed in 43..46 {
        let v = Tensor::rand_uniform(&g, &w, -1.0, 1.0, seed)
            .unwrap()
            .to_vec()
            .unwrap();
        g.write_buffer(wt.buffer(), bytemuck::cast_slice(&v))
            .unwrap();
        for _ in 0..3 {
            check("after an upload into the weight");
        }
    }
}

#[test]
fn depthwise_weight_gradient_ignores_inputs_no_output_reads() {
    // Stride 2 over 8x8 without padding reads rows and columns 0..=6 only:
    // an infinite last row and a NaN last column must not reach the weight
    // gradient (the tiles' edge outputs add nothing, rather than 0 * x).
    use condenser::ops::conv::{ConvGeom, conv2d_backward_weight};
    let g = gpu();
    let (c, h, w, oh) = (2usize, 8usize, 8usize, 3usize);
    let mut x = rand_vec(c * h * w, 21);
    for ch in 0..c {
        for i in 0..w {
            x[(ch * h + 7) * w + i] = f32::INFINITY;
            x[(ch * h + i) * w + 7] = f32::NAN;
        }
    }
    let dy = rand_vec(c * oh * oh, 22);
    let cfg = Conv2dConfig {
        groups: c,
        ..Conv2dConfig::new(2, 0)
    };
    let mut want = vec![0f64; c * 9];
    for ch in 0..c {
        for t in 0..9 {
            let (ky, kx) = (t / 3, t % 3);
            for oy in 0..oh {
                for ox in 0..oh {
                    let xv = x[(ch * h + oy * 2 + ky) * w + ox * 2 + kx] as f64;
                    want[ch * 9 + t] += dy[(ch * oh + oy) * oh + ox] as f64 * xv;
                }
            }
        }
    }
    let xt = Tensor::from_slice(&g, &[1, c, h, w], &x).unwrap();
    let dyt = Tensor::from_slice(&g, &[1, c, oh, oh], &dy).unwrap();
    let geom = ConvGeom::new(&[1, c, h, w], &[c, 1, 3, 3], cfg).unwrap();
    for tiles in [true, false] {
        set_direct_tiles(Some(tiles));
        let got = conv2d_backward_weight(&dyt, &xt, &geom)
            .unwrap()
            .to_vec()
            .unwrap();
        for (i, (&gv, &wv)) in got.iter().zip(&want).enumerate() {
            assert!(
                (gv as f64 - wv).abs() <= 1e-4 * (1.0 + wv.abs()),
                "tiles {tiles}: dw[{i}] = {gv}, want {wv}"
            );
        }
    }
    set_direct_tiles(None);
}
