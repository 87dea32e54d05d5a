//! Reductions against src/cpu/reduce.rs.
//!
//! Tolerance, per output: the GPU sums in f32 in a tree of partials, the
//! reference in f64. Each f32 add errs by at most eps/2 (6e-8) relative to the
//! running sum, which is bounded by the sum of |x| over the terms of *that*
//! output; with random signs the errors largely cancel, so
//! atol_i = 1e-6 * sum_i |x| + 1e-7 (divided by n for a mean) holds with margin
//! and is tight on short axes. max and argmax are exact.

mod common;
use common::{f32s, f64s, gpu, rand_vec};
use condenser::ops::reduce::{ReduceOp, argmax, reduce};
use condenser::{Tensor, cpu};

fn check(shape: &[usize], axis: Option<usize>, op: ReduceOp) {
    let g = gpu();
    let v = rand_vec(shape.iter().product(), 20 + shape.len() as u64);
    let t = Tensor::from_slice(&g, shape, &v).unwrap();
    let got = reduce(&t, axis, op).unwrap();
    let want = f32s(&cpu::reduce::reduce(&f64s(&v), shape, axis, op).unwrap());
    let abs: Vec<f64> = v.iter().map(|x| x.abs() as f64).collect();
    // Sum (or mean) of |x| over the terms of each output.
    let scale = cpu::reduce::reduce(
        &abs,
        shape,
        axis,
        if op == ReduceOp::Max {
            ReduceOp::Sum
        } else {
            op
        },
    )
    .unwrap();
    let got_v = got.to_vec().unwrap();
    assert_eq!(got_v.len(), want.len());
    for (i, ((g, w), s)) in got_v.iter().zip(&want).zip(&scale).enumerate() {
        let atol = if op == ReduceOp::Max {
            0.0
        } else {
            1e-6 * *s as f32 + 1e-7
        };
        assert!(
            (g - w).abs() <= atol,
            "{op:?} {shape:?} axis {axis:?}: output {i} is {g}, the reference says {w} (atol {atol})"
        );
    }
    let mut want_shape = shape.to_vec();
    match axis {
        Some(a) => {
            want_shape.remove(a);
        }
        None => want_shape.clear(),
    }
    assert_eq!(got.shape(), want_shape.as_slice());

    if op == ReduceOp::Max {
        let gi = argmax(&t, axis).unwrap().to_vec_u32().unwrap();
        assert_eq!(
            gi,
            cpu::reduce::argmax(&f64s(&v), shape, axis).unwrap(),
            "argmax {shape:?} {axis:?}"
        );
    }
}

#[test]
fn along_each_axis_awkward_shapes() {
    let shapes: &[&[usize]] = &[
        &[1],
        &[7],
        &[1, 1],
        &[3, 1, 5],
        &[13, 17],
        &[2, 300, 3],
        &[5, 1031],
    ];
    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
        for shape in shapes {
            check(shape, None, op);
            for ax in 0..shape.len() {
                check(shape, Some(ax), op);
            }
        }
    }
}

#[test]
fn long_axes_take_several_passes() {
    // 100k elements: the first pass leaves ~391 partials, the second 2, the third 1.
    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
        check(&[100_003], None, op);
        check(&[3, 70_001], Some(1), op);
        check(&[70_001, 3], Some(0), op);
    }
}

#[test]
fn past_65535_workgroups() {
    // 64 invocations a workgroup: 5M rows summed along the last axis need ~78k
    // workgroups, which the dispatcher folds into 2D.
    let g = gpu();
    let rows = 5_000_000;
    let v: Vec<f32> = (0..rows * 2).map(|i| (i % 7) as f32).collect();
    let t = Tensor::from_slice(&g, &[rows, 2], &v).unwrap();
    let got = reduce(&t, Some(1), ReduceOp::Sum)
        .unwrap()
        .to_vec()
        .unwrap();
    let want = f32s(&cpu::reduce::reduce(&f64s(&v), &[rows, 2], Some(1), ReduceOp::Sum).unwrap());
    assert_eq!(got, want);
}

#[test]
fn nan_wins_max_and_ties_go_to_the_first_index() {
    let g = gpu();
    let mut v = vec![1.0f32; 1000];
    v[10] = 5.0;
    v[700] = 5.0;
    let t = Tensor::from_slice(&g, &[1000], &v).unwrap();
    assert_eq!(argmax(&t, None).unwrap().to_vec_u32().unwrap(), vec![10]);
    v[500] = f32::NAN;
    let t = Tensor::from_slice(&g, &[1000], &v).unwrap();
    assert_eq!(argmax(&t, None).unwrap().to_vec_u32().unwrap(), vec![500]);
    assert!(
        reduce(&t, None, ReduceOp::Max)
            .unwrap()
            .item()
            .unwrap()
            .is_nan()
    );
    let neg = vec![f32::NEG_INFINITY; 5];
    let t = Tensor::from_slice(&g, &[5], &neg).unwrap();
    assert_eq!(argmax(&t, None).unwrap().to_vec_u32().unwrap(), vec![0]);
}

#[test]
fn bad_axis_and_empty_input_are_errors() {
    let g = gpu();
    let t = Tensor::zeros(&g, &[2, 3]).unwrap();
    let e = reduce(&t, Some(2), ReduceOp::Sum).unwrap_err().to_string();
    assert!(e.contains("axis 2 is out of range"), "{e}");
    let z = Tensor::zeros(&g, &[0]).unwrap();
    assert!(reduce(&z, None, ReduceOp::Sum).is_err());
}

/// Contiguous axes of a multiple of 4 run a vec4 first pass; the same shapes
/// with it turned off check the scalar kernel (every axis of each shape).
#[test]
fn vec4_first_pass_and_scalar_kernel() {
    let shapes: &[&[usize]] = &[
        &[4],
        &[6, 4],
        &[3, 1028],
        &[9, 64],
        &[100_000],
        &[3, 70_000],
        &[3, 7, 4],
        &[300, 12],
        &[70_001, 4],
    ];
    for vec4 in [true, false] {
        condenser::ops::set_vec4_variants(vec4);
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
            for shape in shapes {
                check(shape, None, op);
                for ax in 0..shape.len() {
                    check(shape, Some(ax), op);
                }
            }
        }
    }
    condenser::ops::set_vec4_variants(true);
}

/// Reductions over a strided axis of whole groups of 8 columns run 8 columns
/// per invocation through 64-bit words where the adapter has SHADER_INT64;
/// each column is summed in the scalar kernel's order, so both agree bit for
/// bit (and with the reference), long axes (several passes) and NaN included.
#[test]
fn wide_column_reductions_match_the_scalar_kernel_bit_for_bit() {
    let g = gpu();
    let shapes: &[&[usize]] = &[&[9, 64], &[1000, 16], &[3, 700, 8], &[2, 5000, 24]];
    for shape in shapes {
        let mut v = rand_vec(shape.iter().product(), 40);
        v[17] = f32::NAN;
        let t = Tensor::from_slice(&g, shape, &v).unwrap();
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
            let run = |wide: bool| {
                condenser::ops::set_wide_variants(wide);
                let r = reduce(&t, Some(shape.len() - 2), op)
                    .unwrap()
                    .to_vec()
                    .unwrap();
                condenser::ops::set_wide_variants(true);
                r
            };
            let (wide, narrow) = (run(true), run(false));
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&wide), bits(&narrow), "{op:?} {shape:?}");
            assert!(
                wide.iter().any(|x| x.is_nan()),
                "{op:?} {shape:?} keeps NaN"
            );
            check(shape, Some(shape.len() - 2), op);
        }
    }
}

/// Contiguous axes of a multiple of 8 values run reduce4's first pass through
/// 64-bit words (reduce8): the same runs in the same order, so the same bits
/// as the vec4 pass, on runs of odd and even lengths (runs that start and end
/// mid-word), with NaN, infinities and -0.0 in the data; and the reference.
#[test]
fn wide_contiguous_reductions_match_the_vec4_pass_bit_for_bit() {
    let g = gpu();
    let shapes: &[&[usize]] = &[
        &[8],
        &[3, 1032],
        &[5, 2664],
        &[100_000],
        &[2, 3, 40_008],
        &[1 << 20],
    ];
    for shape in shapes {
        let n: usize = shape.iter().product();
        for special in [false, true] {
            let mut v = rand_vec(n, 41);
            if special {
                v[n / 3] = f32::NAN;
                v[n / 2] = f32::INFINITY;
                v[1] = -0.0;
            } else {
                v.iter_mut().for_each(|x| *x = -x.abs());
            }
            let t = Tensor::from_slice(&g, shape, &v).unwrap();
            for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
                for axis in [None, Some(shape.len() - 1)] {
                    let run = |wide: bool| {
                        condenser::ops::set_wide_variants(wide);
                        let r = reduce(&t, axis, op).unwrap().to_vec().unwrap();
                        condenser::ops::set_wide_variants(true);
                        r
                    };
                    let (wide, narrow) = (run(true), run(false));
                    let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&wide), bits(&narrow), "{op:?} {shape:?} {axis:?}");
                }
            }
        }
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
            check(shape, None, op);
            check(shape, Some(shape.len() - 1), op);
        }
    }
}

/// Passes through uniform windows (shaders/reduce_win.wgsl) on every row
/// layout they take: one row of exactly one window, rows of one run (the
/// pass is the last: a mean's scale), a second window pass over the first's
/// partials, rows shorter and longer than a window, rows of whole groups of
/// 8 runs (read interleaved: 16384, 39936, 1 << 20) and rows that are not
/// (64, 320, 262080),
/// a tail window clamped to the buffer's end, several launches of 14 windows;
/// NaN and infinities in the last window; strided axes (not the window
/// pass's) beside them. Tolerance as `check`'s (the windows
/// change the order of the sums, not their error bound); max exact.
#[test]
fn uniform_window_passes_match_the_reference() {
    let g = gpu();
    let cases: &[(&[usize], Option<usize>)] = &[
        (&[16_384], None),
        (&[1024, 64], Some(1)),
        (&[3, 64, 100], Some(1)),
        (&[70, 320], Some(1)),
        (&[300, 320], Some(1)),
        (&[3, 40_000 - 64], Some(1)),
        (&[16 * 16_384 - 64], None),
        (&[2, 3, 1024, 8], Some(2)),
        // Two window passes: the second over the first's partials, last
        // (with the mean's scale) in the second case.
        (&[2, 1 << 20], Some(1)),
        (&[256, 4096], Some(1)),
    ];
    for &(shape, axis) in cases {
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
            assert!(g.profile_begin().unwrap());
            check(shape, axis, op);
            let ran = g
                .profile_end()
                .unwrap()
                .iter()
                .any(|t| t.kernel.contains("reduce_win"));
            let contiguous = axis.is_none_or(|a| a + 1 == shape.len());
            assert_eq!(
                ran,
                g.windows_ok() && contiguous,
                "{shape:?} {axis:?} {op:?}: window pass ran: {ran}"
            );
        }
    }
    // Strided axes (reduce_cols_win): rows of 64 to 8192 values, one and
    // several windows of k-rows per output, outer > 1, the window pass the
    // last (n = one window's rows: a mean's scale), two and four window
    // passes; and axes the pass does not take (inner not a power of two, n
    // not whole windows, a k-row filling a window, which a pass would not
    // shorten), through the storage kernels.
    let strided: &[(&[usize], usize, bool)] = &[
        (&[1024, 64], 0, true),
        (&[2, 512, 256], 1, true),
        (&[16, 3, 4096], 1, false),
        (&[3, 16, 1024], 1, true),
        (&[4096, 256], 0, true),
        (&[2, 16, 8192], 1, true),
        (&[2, 16, 16384], 1, false),
        (&[1000, 96], 0, false),
        (&[1000, 64], 0, false),
    ];
    for &(shape, axis, windowed) in strided {
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
            assert!(g.profile_begin().unwrap());
            check(shape, Some(axis), op);
            let ran = g
                .profile_end()
                .unwrap()
                .iter()
                .any(|t| t.kernel.contains("reduce_cols_win"));
            let want = g.windows_ok() && windowed;
            assert_eq!(ran, want, "{shape:?} axis {axis} {op:?}: ran {ran}");
        }
    }
    // Specials in the last window: NaN wins max and poisons sums; inf sums to inf.
    let n = 5 * 16_384 + 64;
    let mut v = rand_vec(n, 3);
    v[n - 5] = f32::INFINITY;
    let t = Tensor::from_slice(&g, &[n], &v).unwrap();
    let s = reduce(&t, None, ReduceOp::Sum).unwrap().to_vec().unwrap();
    assert_eq!(s[0], f32::INFINITY);
    v[n - 100] = f32::NAN;
    let t = Tensor::from_slice(&g, &[n], &v).unwrap();
    for op in [ReduceOp::Sum, ReduceOp::Max] {
        let r = reduce(&t, None, op).unwrap().to_vec().unwrap();
        assert!(r[0].is_nan(), "{op:?}: {r:?}");
    }
}
