//! Matmul kernels against src/cpu/matmul.rs.
//!
//! Tolerance: the GPU sums k products in f32 in a different order than the f64
//! reference; with inputs in [-1, 1] the error grows like sqrt(k) * eps * |terms|.
//! atol = 1e-5 * k + 1e-5 with rtol 1e-4 bounds it with margin for k up to ~1000.

mod common;
use common::{FWD, GRAD, check_op, input};
use common::{assert_close, f32s, f64s, gpu, rand_vec};
use condenser::Tensor;
use condenser::autograd::functional as F;
use condenser::cpu;
use condenser::ops::matmul::{Gemm, MatmulKernel, gemm};

const KERNELS: [MatmulKernel; 5] = [
    MatmulKernel::CpuSubgroup,
    MatmulKernel::CpuTexture,
    MatmulKernel::CpuVec4,
    MatmulKernel::CpuScalar,
    MatmulKernel::Tiled,
];

/// The subgroup variants exist only where 8-wide subgroups do (not on GL);
/// every other variant runs everywhere.
fn runs_here(kernel: MatmulKernel) -> bool {
    let sub = matches!(kernel, MatmulKernel::CpuSubgroup | MatmulKernel::CpuTexture);
    !sub || gpu().subgroup_size() == Some(8)
}

/// op(A) [m, k] @ op(B) [k, n] in `batch` batches (`ab`/`bb`: each operand
/// batched, or shared), with the transposes, on `kernel`.
fn check(
    batch: usize,
    ab: bool,
    bb: bool,
    (m, n, k): (usize, usize, usize),
    ta: bool,
    tb: bool,
    kernel: MatmulKernel,
) {
    let g = gpu();
    if !runs_here(kernel) {
        return;
    }
    let a_shape = |r, c| if ab { vec![batch, r, c] } else { vec![r, c] };
    let b_shape = |r, c| if bb { vec![batch, r, c] } else { vec![r, c] };
    let sa = if ta { a_shape(k, m) } else { a_shape(m, k) };
    let sb = if tb { b_shape(n, k) } else { b_shape(k, n) };
    let av = rand_vec(sa.iter().product(), 1 + m as u64);
    let bv = rand_vec(sb.iter().product(), 2 + n as u64);
    let a = Tensor::from_slice(&g, &sa, &av).unwrap();
    let b = Tensor::from_slice(&g, &sb, &bv).unwrap();
    let c = gemm(
        &a,
        &b,
        Gemm {
            kernel: Some(kernel),
            ..Gemm::t(ta, tb)
        },
    )
    .unwrap();
    let dims = cpu::matmul::Gemm { m, n, k, ta, tb };
    let want = f32s(&cpu::matmul::matmul(
        &f64s(&av),
        &f64s(&bv),
        batch,
        ab,
        bb,
        dims,
    ));
    let tol = 1e-5 * k as f32 + 1e-5;
    assert_close(
        &c.to_vec().unwrap(),
        &want,
        tol,
        1e-4,
        &format!("{kernel:?} b={batch}({ab},{bb}) m={m} n={n} k={k} ta={ta} tb={tb}"),
    );
}

#[test]
fn all_kernels_all_transposes_awkward_shapes() {
    // Sizes of 1, primes, and sizes not a multiple of any tile.
    let shapes = [
        (1, 1, 1),
        (1, 7, 3),
        (5, 1, 2),
        (13, 17, 11),
        (33, 31, 65),
        (67, 70, 129),
    ];
    for kernel in [MatmulKernel::CpuScalar, MatmulKernel::Tiled] {
        for &(m, n, k) in &shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                check(1, false, false, (m, n, k), ta, tb, kernel);
            }
        }
    }
}

#[test]
fn vec4_kernel_on_multiples_of_four_with_edges() {
    // Multiples of 4 that are not multiples of the 32-wide tile, plus m and n
    // that are not multiples of 4 (allowed along a strided axis: m when A is not
    // transposed, n when B is).
    for &(m, n, k) in &[
        (4, 4, 4),
        (36, 20, 12),
        (100, 68, 132),
        (7, 12, 8),
        (12, 5, 4),
        (9, 37, 16),
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            if (ta && m % 4 != 0) || (!tb && n % 4 != 0) {
                continue;
            }
            check(1, false, false, (m, n, k), ta, tb, MatmulKernel::CpuVec4);
        }
    }
}

#[test]
fn subgroup_kernel_edges_and_transposes() {
    if gpu().subgroup_size() != Some(8) {
        eprintln!("skipped: this adapter has no fixed 8-wide subgroups");
        return;
    }
    for kernel in [MatmulKernel::CpuSubgroup, MatmulKernel::CpuTexture] {
        // n need not be a multiple of 4 when B is transposed; m is free.
        for &(m, n, k) in &[
            (1, 4, 4),
            (7, 12, 8),
            (65, 68, 36),
            (130, 200, 20),
            (64, 64, 64),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                check(1, false, false, (m, n, k), ta, tb, kernel);
            }
        }
        check(1, false, false, (33, 13, 12), false, true, kernel);
        check(1, false, false, (9, 1, 4), true, true, kernel);
    }
}

/// gemm's output on `kernel` as raw bits.
fn product_bits(a: &Tensor, b: &Tensor, ta: bool, tb: bool, kernel: MatmulKernel) -> Vec<u32> {
    let how = Gemm {
        kernel: Some(kernel),
        ..Gemm::t(ta, tb)
    };
    let c = gemm(a, b, how).unwrap().to_vec().unwrap();
    c.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn texture_kernel_is_bit_identical_to_the_subgroup_kernel() {
    // The texture variant only moves op(B) into a texture: same products, same
    // order, so results must agree to the bit (batched B, shared B, split-K,
    // transposes, ragged n), which lets the choice between them never change a
    // number.
    if gpu().subgroup_size() != Some(8) {
        eprintln!("skipped: this adapter has no fixed 8-wide subgroups");
        return;
    }
    let g = gpu();
    let cases: [(&[usize], &[usize], bool, bool); 7] = [
        (&[64, 576], &[576, 32768], false, false),
        (&[70, 36], &[36, 132], false, false),
        (&[36, 70], &[130, 36], true, true),
        (&[3, 20, 12], &[3, 12, 44], false, false),
        (&[3, 20, 12], &[12, 44], false, false),
        (&[16, 4096], &[4096, 24], false, false),
        (&[9, 8], &[13, 8], false, true),
    ];
    for (i, (sa, sb, ta, tb)) in cases.into_iter().enumerate() {
        let a = Tensor::rand_uniform(&g, sa, -1.0, 1.0, 10 + i as u64).unwrap();
        let b = Tensor::rand_uniform(&g, sb, -1.0, 1.0, 20 + i as u64).unwrap();
        let want = product_bits(&a, &b, ta, tb, MatmulKernel::CpuSubgroup);
        let got = product_bits(&a, &b, ta, tb, MatmulKernel::CpuTexture);
        assert_eq!(got, want, "{sa:?} @ {sb:?} (ta={ta}, tb={tb})");
    }
}

#[test]
fn batched_and_broadcast_batches() {
    for kernel in KERNELS {
        for (ab, bb) in [(true, true), (true, false), (false, true)] {
            check(3, ab, bb, (12, 8, 20), false, false, kernel);
            check(3, ab, bb, (12, 8, 20), true, true, kernel);
        }
    }
}

#[test]
fn alpha_beta_accumulate_into_c() {
    let g = gpu();
    let (m, n, k) = (9, 6, 5);
    let av = rand_vec(m * k, 3);
    let bv = rand_vec(k * n, 4);
    let cv = rand_vec(m * n, 5);
    for kernel in [MatmulKernel::CpuScalar, MatmulKernel::Tiled] {
        let a = Tensor::from_slice(&g, &[m, k], &av).unwrap();
        let b = Tensor::from_slice(&g, &[k, n], &bv).unwrap();
        let c = Tensor::from_slice(&g, &[m, n], &cv).unwrap();
        gemm(
            &a,
            &b,
            Gemm {
                c: Some(&c),
                alpha: 0.5,
                beta: 2.0,
                kernel: Some(kernel),
                ..Gemm::default()
            },
        )
        .unwrap();
        // (CpuVec4/CpuSubgroup share the epilogue code paths tested below.)
        let mut want = f64s(&cv);
        let dims = cpu::matmul::Gemm {
            m,
            n,
            k,
            ta: false,
            tb: false,
        };
        cpu::matmul::gemm(&f64s(&av), &f64s(&bv), &mut want, dims, 0.5, 2.0);
        let want = f32s(&want);
        assert_close(
            &c.to_vec().unwrap(),
            &want,
            1e-5,
            1e-5,
            &format!("{kernel:?} gemm"),
        );
    }
}

#[test]
fn beta_zero_ignores_nan_in_output() {
    // Pooled buffers hold stale data; beta = 0 must not read it.
    let g = gpu();
    let a = Tensor::from_slice(&g, &[4, 4], &[1.0; 16]).unwrap();
    let b = Tensor::from_slice(&g, &[4, 4], &[1.0; 16]).unwrap();
    for kernel in KERNELS {
        if !runs_here(kernel) {
            continue;
        }
        let c = condenser::ops::full(&g, &[4, 4], f32::NAN).unwrap();
        gemm(
            &a,
            &b,
            Gemm {
                c: Some(&c),
                kernel: Some(kernel),
                ..Gemm::default()
            },
        )
        .unwrap();
        assert_eq!(c.to_vec().unwrap(), vec![4.0; 16], "{kernel:?}");
    }
}

#[test]
fn large_grid_past_the_workgroup_limit_folds() {
    // With the per-dimension limit lowered to 4, a 7x5 tile grid folds into 3D.
    let g = gpu();
    g.set_max_workgroups_per_dim(4);
    check(
        1,
        false,
        false,
        (200, 152, 8),
        false,
        false,
        MatmulKernel::CpuVec4,
    );
    check(
        1,
        false,
        false,
        (200, 150, 9),
        false,
        true,
        MatmulKernel::CpuScalar,
    );
    check(
        2,
        true,
        true,
        (130, 100, 9),
        false,
        false,
        MatmulKernel::Tiled,
    );
    check(
        1,
        false,
        false,
        (300, 260, 8),
        false,
        false,
        MatmulKernel::CpuSubgroup,
    );
    g.set_max_workgroups_per_dim(u32::MAX);
}

#[test]
fn shape_errors_are_clear() {
    let g = gpu();
    let a = Tensor::zeros(&g, &[3, 4]).unwrap();
    let b = Tensor::zeros(&g, &[5, 6]).unwrap();
    let e = condenser::ops::matmul(&a, &b).unwrap_err().to_string();
    assert!(e.contains("k = 4 vs 5"), "{e}");
    let v = Tensor::zeros(&g, &[2, 3, 4, 5]).unwrap();
    let e = condenser::ops::matmul(&v, &b).unwrap_err().to_string();
    assert!(e.contains("2 or 3 axes"), "{e}");
    let e = gemm(
        &a,
        &Tensor::zeros(&g, &[4, 3]).unwrap(),
        Gemm {
            kernel: Some(MatmulKernel::CpuVec4),
            ..Gemm::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("multiples of 4"), "{e}");
}

#[test]
fn split_k_for_small_outputs_with_long_k() {
    // A conv weight gradient's shape: a small output and a long k are cut into
    // chunks computed as a batch and summed.
    for kernel in KERNELS {
        if !runs_here(kernel) {
            continue;
        }
        check(1, false, false, (8, 12, 8192), false, false, kernel);
        check(1, false, false, (8, 16, 4096), true, false, kernel);
        check(1, false, false, (5, 8, 2052), false, true, kernel);
    }
}

// Gradient checks (forward 1e-4, gradients 2e-3 of the largest component).

#[test]
fn linear_and_matmul() {
    check_op(
        "linear",
        &[input(&[3, 5], 1), input(&[4, 5], 2), input(&[4], 3)],
        &|v| F::linear(&v[0], &v[1], Some(&v[2])).unwrap(),
        &|xs| cpu::conv::linear(&xs[0], &xs[1], Some(&xs[2]), 3, 5, 4),
        FWD,
        GRAD,
    );
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (sa, sb) = (
            if ta { [5, 3] } else { [3, 5] },
            if tb { [4, 5] } else { [5, 4] },
        );
        check_op(
            &format!("matmul ta={ta} tb={tb}"),
            &[input(&sa, 4), input(&sb, 5)],
            &|v| F::matmul(&v[0], &v[1], ta, tb).unwrap(),
            &|xs| {
                let dims = cpu::matmul::Gemm {
                    m: 3,
                    n: 4,
                    k: 5,
                    ta,
                    tb,
                };
                cpu::matmul::matmul(&xs[0], &xs[1], 1, false, false, dims)
            },
            FWD,
            GRAD,
        );
    }
    // A batched left operand with a shared right operand: dB sums over the batch.
    check_op(
        "batched matmul, shared B",
        &[input(&[2, 3, 4], 6), input(&[4, 2], 7)],
        &|v| F::matmul(&v[0], &v[1], false, false).unwrap(),
        &|xs| {
            let dims = cpu::matmul::Gemm {
                m: 3,
                n: 2,
                k: 4,
                ta: false,
                tb: false,
            };
            cpu::matmul::matmul(&xs[0], &xs[1], 2, true, false, dims)
        },
        FWD,
        GRAD,
    );
}

#[test]
fn transposed_c_is_the_product_transposed_per_batch() {
    // tc writes each batch's C as [n, m]: the same sums, only stored
    // transposed, so it must equal the plain product transposed to the bit.
    let g = gpu();
    let cases: [(&[usize], &[usize], bool); 3] = [
        (&[3, 70, 36], &[44, 36], true),
        (&[20, 12], &[12, 8], false),
        (&[2, 9, 8], &[2, 13, 8], true),
    ];
    for kernel in KERNELS {
        if !runs_here(kernel) {
            continue;
        }
        for (i, (sa, sb, tb)) in cases.into_iter().enumerate() {
            let a = Tensor::rand_uniform(&g, sa, -1.0, 1.0, 30 + i as u64).unwrap();
            let b = Tensor::rand_uniform(&g, sb, -1.0, 1.0, 40 + i as u64).unwrap();
            let plain = Gemm {
                kernel: Some(kernel),
                ..Gemm::t(false, tb)
            };
            let c = gemm(&a, &b, plain).unwrap();
            let ct = gemm(&a, &b, Gemm { tc: true, ..plain }).unwrap();
            let (r, m, n) = (
                c.shape().len(),
                c.shape()[c.shape().len() - 2],
                c.shape()[c.shape().len() - 1],
            );
            let mut want_shape = c.shape().to_vec();
            want_shape.swap(r - 2, r - 1);
            assert_eq!(ct.shape(), want_shape.as_slice(), "{kernel:?} {sa:?}");
            let (cv, tv) = (c.to_vec().unwrap(), ct.to_vec().unwrap());
            for bi in 0..cv.len() / (m * n) {
                for row in 0..m {
                    for col in 0..n {
                        let want = cv[(bi * m + row) * n + col].to_bits();
                        let got = tv[(bi * n + col) * m + row].to_bits();
                        assert_eq!(
                            got, want,
                            "{kernel:?} {sa:?} @ {sb:?} at ({bi}, {row}, {col})"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn packed_weights_are_reused_only_while_their_buffer_is_unchanged() {
    // The texture kernel keeps op(B) packed while B's buffer is unchanged (a
    // frozen weight). Every way a buffer can change must make it pack again:
    // an upload, a kernel writing it in place, a copy into it, and the pool
    // handing the same wgpu buffer to a new tensor. The oracle is the
    // subgroup kernel, which reads B from its buffer and sums in the same
    // order (bit-identical, see above): a stale texture shows as other bits.
    let g = gpu();
    if g.subgroup_size() != Some(8) {
        eprintln!("skipped: this adapter has no fixed 8-wide subgroups");
        return;
    }
    g.set_pack_budget(64 << 20);
    let (m, n, k) = (37, 24, 40);
    let a = Tensor::rand_uniform(&g, &[m, k], -1.0, 1.0, 1).unwrap();
    let check = |b: &Tensor, what: &str| {
        let want = product_bits(&a, b, false, true, MatmulKernel::CpuSubgroup);
        let got = product_bits(&a, b, false, true, MatmulKernel::CpuTexture);
        let wrong = got.iter().zip(&want).filter(|(x, y)| x != y).count();
        assert_eq!(wrong, 0, "after {what}: elements differ");
    };
    let stats = || g.pack_stats();
    let mut b = Tensor::rand_uniform(&g, &[n, k], -1.0, 1.0, 2).unwrap();
    check(&b, "a first pack (scratch)");
    check(&b, "a second pack (kept)");
    assert_eq!((stats().fills, stats().hits), (1, 0), "{:?}", stats());
    check(&b, "a third product (reused)");
    assert_eq!(stats().hits, 1, "the kept texture is reused: {:?}", stats());
    // A view of the same buffer with the same contents may reuse it.
    check(&b.reshape(&[n, k]).unwrap(), "a reshape");
    assert_eq!(stats().hits, 2, "{:?}", stats());

    let mut hits = stats().hits;
    let mut changed = |b: &Tensor, what: &str| {
        // Three products: the first must pack the new contents, the second
        // keeps them, the third reuses them; all three right.
        for _ in 0..3 {
            check(b, what);
        }
        assert_eq!(stats().hits, hits + 1, "after {what}: {:?}", stats());
        hits += 1;
    };
    let v = rand_vec(n * k, 3);
    g.write_buffer(b.buffer(), bytemuck::cast_slice(&v))
        .unwrap();
    changed(&b, "an upload into B");
    condenser::ops::elementwise::fill(&b, 0.25).unwrap();
    changed(&b, "a kernel filling B in place");
    let x = Tensor::rand_uniform(&g, &[n, 8], -1.0, 1.0, 4).unwrap();
    let y = Tensor::rand_uniform(&g, &[8, k], -1.0, 1.0, 5).unwrap();
    let acc = Gemm {
        beta: 1.0,
        c: Some(&b),
        ..Gemm::default()
    };
    gemm(&x, &y, acc).unwrap();
    changed(&b, "a product accumulated into B");
    let empty = |r, c| Tensor::zeros(&g, &[r, c]).unwrap();
    let zero_k = Gemm {
        beta: 0.5,
        c: Some(&b),
        ..Gemm::default()
    };
    gemm(&empty(n, 0), &empty(0, k), zero_k).unwrap();
    changed(&b, "an empty product copied into B");
    for seed in 6..9 {
        // The pool hands the freed buffer to the next tensor of its size.
        let reuses = g.pool_stats().reuses;
        drop(b);
        b = Tensor::rand_uniform(&g, &[n, k], -1.0, 1.0, seed).unwrap();
        assert!(g.pool_stats().reuses > reuses, "the pool recycled a buffer");
        changed(&b, "the pool recycling B's buffer");
    }
    // Turned off, the kernel packs into scratch every time.
    g.set_pack_budget(0);
    let before = stats();
    for _ in 0..3 {
        check(&b, "with the cache off");
    }
    let after = stats();
    assert_eq!(
        (after.fills, after.hits, after.bytes),
        (before.fills, before.hits, 0)
    );
    g.set_pack_budget(64 << 20);
}

#[test]
fn packed_weights_stay_within_the_cache_budget() {
    // Room for one packed texture: two weights used in turn evict each other
    // (least recently used first), and every product stays right. A kept
    // bind group would keep an evicted texture alive: each eviction drops
    // them, so no more are kept than one round of products makes.
    let g = gpu();
    if g.subgroup_size() != Some(8) {
        eprintln!("skipped: this adapter has no fixed 8-wide subgroups");
        return;
    }
    let (m, n, k) = (20, 16, 36);
    let a = Tensor::rand_uniform(&g, &[m, k], -1.0, 1.0, 11).unwrap();
    let ws: Vec<Tensor> = (0..2)
        .map(|i| Tensor::rand_uniform(&g, &[n, k], -1.0, 1.0, 12 + i).unwrap())
        .collect();
    // One texture row of rgba32float texels.
    let one = g.scratch_width() as u64 * 16;
    g.set_pack_budget(one);
    for round in 0..4 {
        for w in &ws {
            let want = product_bits(&a, w, false, true, MatmulKernel::CpuSubgroup);
            let got = product_bits(&a, w, false, true, MatmulKernel::CpuTexture);
            assert!(got == want, "round {round}: a product differs");
            assert!(g.pack_stats().bytes <= one, "{:?}", g.pack_stats());
            let kept = g.bind_group_stats().2;
            assert!(kept <= 8, "round {round}: {kept} bind groups kept");
        }
    }
    assert!(
        g.pack_stats().fills >= 3,
        "textures were made and evicted: {:?}",
        g.pack_stats()
    );
    g.set_pack_budget(64 << 20);
}
