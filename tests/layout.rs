//! Permutation (shaders/layout.wgsl `permute`) against src/cpu/layout.rs, and the
//! differentiable slice and 2-D padding built on the block copies, against
//! direct loops and finite differences.
//! Tolerances: permutations move values, so they must match exactly; gradient
//! checks use tests/common's bounds (forward 1e-4, gradients 2e-3).

mod common;
use common::{FWD, GRAD, check_op, f32s, f64s, gpu, input, rand_vec};
use condenser::autograd::functional as F;
use condenser::{Tensor, cpu, ops::layout};

#[test]
fn permute_matches_the_reference_on_awkward_shapes() {
    let g = gpu();
    let cases: &[(&[usize], &[usize])] = &[
        (&[7], &[0]),
        (&[3, 5], &[1, 0]),
        (&[2, 3, 5], &[2, 0, 1]),
        (&[2, 3, 5, 7], &[0, 2, 3, 1]),
        (&[2, 3, 5, 7], &[3, 2, 1, 0]),
        (&[1, 17, 1, 9], &[0, 2, 3, 1]),
        (&[2, 1, 3, 1, 2, 1, 2, 3], &[7, 6, 5, 4, 3, 2, 1, 0]),
        (&[65, 67], &[1, 0]),
        // Channel shuffles (planes of 16 and of 4 values move whole), an
        // identity, and inner axes that merge around a length-1 axis.
        (&[2, 2, 3, 4, 4], &[0, 2, 1, 3, 4]),
        (&[3, 2, 5, 2, 2], &[0, 2, 1, 3, 4]),
        (&[4, 6, 8], &[0, 1, 2]),
        (&[3, 8, 1, 2, 8], &[1, 0, 2, 3, 4]),
        (&[5, 3, 1, 4, 2], &[3, 4, 2, 0, 1]),
    ];
    for (shape, perm) in cases {
        let v = rand_vec(shape.iter().product(), 5);
        let t = Tensor::from_slice(&g, shape, &v).unwrap();
        let got = layout::permute(&t, perm).unwrap();
        let (want_shape, want) = cpu::layout::permute(&f64s(&v), shape, perm);
        assert_eq!(got.shape(), want_shape.as_slice(), "{shape:?} {perm:?}");
        assert_eq!(got.to_vec().unwrap(), f32s(&want), "{shape:?} {perm:?}");
    }
}

#[test]
fn permutations_coalesce_to_the_fewest_axes() {
    // (shape, perm) -> (merged input shape, permutation of its axes)
    type Case<'a> = (&'a [usize], &'a [usize], &'a [usize], &'a [usize]);
    let cases: &[Case] = &[
        (
            &[2, 2, 3, 4, 4],
            &[0, 2, 1, 3, 4],
            &[2, 2, 3, 16],
            &[0, 2, 1, 3],
        ),
        (&[4, 6, 8], &[0, 1, 2], &[192], &[0]),
        (&[1, 17, 1, 9], &[0, 2, 3, 1], &[17, 9], &[1, 0]),
        (&[3, 8, 1, 2, 8], &[1, 0, 2, 3, 4], &[3, 8, 16], &[1, 0, 2]),
        (&[5, 3, 1, 4, 2], &[3, 4, 2, 0, 1], &[15, 8], &[1, 0]),
        (&[1, 1], &[1, 0], &[1], &[0]),
        (&[2, 3, 5], &[2, 0, 1], &[6, 5], &[1, 0]),
    ];
    for &(shape, perm, dims, order) in cases {
        let (d, o) = layout::coalesce(shape, perm);
        assert_eq!(
            (d.as_slice(), o.as_slice()),
            (dims, order),
            "{shape:?} {perm:?}"
        );
    }
}

#[test]
fn permute_refuses_what_is_not_a_permutation() {
    let g = gpu();
    let t = Tensor::zeros(&g, &[2, 3, 4]).unwrap();
    for perm in [&[0, 1][..], &[0, 1, 1], &[0, 1, 3], &[0, 1, 2, 3]] {
        let e = layout::permute(&t, perm).unwrap_err().to_string();
        assert!(e.contains("not a permutation"), "{perm:?}: {e}");
    }
}

#[test]
fn permute_slice_and_pad_gradients() {
    check_op(
        "permute [2,3,4] -> [4,2,3]",
        &[input(&[2, 3, 4], 51)],
        &|v| F::permute(&v[0], &[2, 0, 1]).unwrap(),
        &|xs| cpu::layout::permute(&xs[0], &[2, 3, 4], &[2, 0, 1]).1,
        FWD,
        GRAD,
    );
    check_op(
        "slice axis 1 [1, 3) of [2, 4, 3]",
        &[input(&[2, 4, 3], 52)],
        &|v| F::slice(&v[0], 1, 1, 2).unwrap(),
        &|xs| {
            let mut out = Vec::new();
            for n in 0..2 {
                out.extend_from_slice(&xs[0][n * 12 + 3..n * 12 + 9]);
            }
            out
        },
        FWD,
        GRAD,
    );
    let pads = [1, 0, 2, 1];
    check_op(
        "pad2d (1, 0, 2, 1) with 0.5",
        &[input(&[2, 1, 3, 2], 53)],
        &|v| F::pad2d(&v[0], pads, 0.5).unwrap(),
        &|xs| {
            let (h, w, oh, ow) = (3, 2, 4, 5);
            let mut out = vec![0.5; 2 * oh * ow];
            for n in 0..2 {
                for y in 0..h {
                    for x in 0..w {
                        out[n * oh * ow + (y + pads[0]) * ow + x + pads[2]] =
                            xs[0][n * h * w + y * w + x];
                    }
                }
            }
            out
        },
        FWD,
        GRAD,
    );
}

#[test]
fn step_slices_match_the_reference_and_have_gradients() {
    use condenser::ops::layout::StepSlice;
    let g = gpu();
    let cases: &[(&[usize], StepSlice)] = &[
        (
            &[2, 7, 3],
            StepSlice {
                axis: 1,
                start: 1,
                step: 2,
                len: 3,
            },
        ),
        (
            &[2, 7, 3],
            StepSlice {
                axis: 1,
                start: 6,
                step: -1,
                len: 7,
            },
        ),
        (
            &[5, 4],
            StepSlice {
                axis: 0,
                start: 4,
                step: -3,
                len: 2,
            },
        ),
        (
            &[3, 1, 9],
            StepSlice {
                axis: 2,
                start: 0,
                step: 4,
                len: 3,
            },
        ),
        (
            &[3, 4],
            StepSlice {
                axis: 1,
                start: 0,
                step: 2,
                len: 0,
            },
        ),
    ];
    for (shape, s) in cases {
        let v = rand_vec(shape.iter().product(), 7);
        let t = Tensor::from_slice(&g, shape, &v).unwrap();
        let got = layout::step_slice(&t, *s).unwrap();
        let (ws, want) = cpu::layout::step_slice(&f64s(&v), shape, s.axis, s.start, s.step, s.len);
        assert_eq!(got.shape(), ws.as_slice(), "{s:?}");
        assert_eq!(got.to_vec().unwrap(), f32s(&want), "{s:?}");
    }
    // Reaching outside the axis is an error, not a wild read.
    let t = Tensor::zeros(&g, &[2, 5]).unwrap();
    for s in [
        StepSlice {
            axis: 1,
            start: 1,
            step: 2,
            len: 3,
        },
        StepSlice {
            axis: 1,
            start: 1,
            step: -1,
            len: 3,
        },
        StepSlice {
            axis: 2,
            start: 0,
            step: 1,
            len: 1,
        },
    ] {
        assert!(layout::step_slice(&t, s).is_err(), "{s:?}");
    }
    let s = StepSlice {
        axis: 1,
        start: 5,
        step: -2,
        len: 3,
    };
    check_op(
        "step slice [5::-2] of axis 1",
        &[input(&[2, 6, 2], 54)],
        &|v| F::step_slice(&v[0], s).unwrap(),
        &|xs| cpu::layout::step_slice(&xs[0], &[2, 6, 2], 1, 5, -2, 3).1,
        FWD,
        GRAD,
    );
}

/// Axis swaps, concatenation and slices move values exactly, through 64-bit
/// words where runs, strides and offsets are multiples of 8 floats (and the
/// adapter has SHADER_INT64), through the scalar kernels otherwise, and
/// through copy commands where a few long runs move.
#[test]
fn swaps_concats_and_slices_move_values_exactly() {
    let g = gpu();
    for wide in [true, false] {
        condenser::ops::set_wide_variants(wide);
        // The last two: long runs (copy commands on CPU adapters where there
        // are at most 64 of them, the kernels where there are more).
        let shapes = [
            (3usize, 5usize, 16usize),
            (2, 7, 24),
            (4, 3, 5),
            (1, 9, 8),
            (3, 5, 1100),
            (70, 1, 1024),
        ];
        for (a, b, c) in shapes {
            let v = rand_vec(a * b * c, 50);
            let x = Tensor::from_slice(&g, &[a, b, c], &v).unwrap();
            let got = layout::swap01(&x).unwrap().to_vec().unwrap();
            let mut want = vec![0f32; v.len()];
            for i in 0..a {
                for j in 0..b {
                    for k in 0..c {
                        want[(j * a + i) * c + k] = v[(i * b + j) * c + k];
                    }
                }
            }
            assert_eq!(got, want, "swap01 [{a}, {b}, {c}] wide={wide}");
            // Concatenate along the last axis with a copy of itself, then slice
            // the second copy back out.
            let cat = layout::concat(&[&x, &x], 2).unwrap();
            assert_eq!(cat.shape(), &[a, b, 2 * c]);
            let back = layout::slice(&cat, 2, c, c).unwrap().to_vec().unwrap();
            assert_eq!(back, v, "concat + slice [{a}, {b}, {c}] wide={wide}");
            let rows = layout::slice(&x, 1, 1, b - 1).unwrap().to_vec().unwrap();
            let want_rows: Vec<f32> = (0..a)
                .flat_map(|i| v[(i * b + 1) * c..(i + 1) * b * c].to_vec())
                .collect();
            assert_eq!(rows, want_rows, "slice rows [{a}, {b}, {c}] wide={wide}");
        }
    }
    condenser::ops::set_wide_variants(true);
}
