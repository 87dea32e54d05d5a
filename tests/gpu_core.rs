//! The engine's plumbing: transfers, the buffer pool, the registry's error paths.

mod common;
use common::gpu;
use condenser::gpu::KernelSpec;
use condenser::{DType, Tensor};

#[test]
fn upload_download_round_trip() {
    let g = gpu();
    for n in [1usize, 3, 64, 1001] {
        let v: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
        let t = Tensor::from_slice(&g, &[n], &v).unwrap();
        assert_eq!(t.to_vec().unwrap(), v);
        let u: Vec<u32> = (0..n as u32).map(|i| i * 7).collect();
        let t = Tensor::from_u32(&g, &[n], &u).unwrap();
        assert_eq!(t.dtype(), DType::U32);
        assert_eq!(t.to_vec_u32().unwrap(), u);
        assert!(t.to_vec().is_err(), "reading u32 data as f32 must fail");
    }
    assert_eq!(
        Tensor::zeros(&g, &[5]).unwrap().to_vec().unwrap(),
        vec![0.0; 5]
    );
    assert_eq!(
        condenser::ops::full(&g, &[3], 2.5)
            .unwrap()
            .to_vec()
            .unwrap(),
        vec![2.5; 3]
    );
}

#[test]
fn seeded_random_is_reproducible() {
    let g = gpu();
    let a = Tensor::rand_normal(&g, &[1000], 0.0, 1.0, 42)
        .unwrap()
        .to_vec()
        .unwrap();
    let b = Tensor::rand_normal(&g, &[1000], 0.0, 1.0, 42)
        .unwrap()
        .to_vec()
        .unwrap();
    let c = Tensor::rand_normal(&g, &[1000], 0.0, 1.0, 43)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let mean = a.iter().sum::<f32>() / 1000.0;
    let var = a.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / 1000.0;
    // 1000 samples: the standard error of the mean is ~0.03, of the variance ~0.045.
    assert!(
        mean.abs() < 0.15 && (var - 1.0).abs() < 0.2,
        "mean {mean} var {var}"
    );
    let u = Tensor::rand_uniform(&g, &[1000], 2.0, 3.0, 1)
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(u.iter().all(|&x| (2.0..3.0).contains(&x)));
}

#[test]
fn writes_after_pending_launches_keep_stream_order() {
    // A launch reads `a`; `a` is dropped and its buffer reused by an upload. The
    // upload must not land before the launch has run.
    let g = gpu();
    let a = Tensor::from_slice(&g, &[256], &[2.0; 256]).unwrap();
    let r = condenser::ops::scale(&a, 3.0).unwrap();
    drop(a);
    let b = Tensor::from_slice(&g, &[256], &[-1.0; 256]).unwrap();
    assert_eq!(r.to_vec().unwrap(), vec![6.0; 256]);
    assert_eq!(b.to_vec().unwrap(), vec![-1.0; 256]);
}

#[test]
fn pool_reuses_buffers_and_memory_stays_flat() {
    let g = gpu();
    let x = Tensor::rand_uniform(&g, &[64, 100], -1.0, 1.0, 1).unwrap();
    let w = Tensor::rand_uniform(&g, &[100, 32], -1.0, 1.0, 2).unwrap();
    let step = || {
        let h = condenser::ops::matmul(&x, &w).unwrap();
        let h = condenser::ops::relu(&h).unwrap();
        let p = condenser::ops::softmax(&h, 2.0).unwrap();
        condenser::ops::sum(&p, None).unwrap().item().unwrap()
    };
    step();
    let warm = g.pool_stats();
    for _ in 0..100 {
        step();
    }
    let after = g.pool_stats();
    assert_eq!(
        after.reserved_bytes, warm.reserved_bytes,
        "pool grew: {warm:?} -> {after:?}"
    );
    assert_eq!(after.live_bytes, warm.live_bytes);
    assert!(after.reuses > warm.reuses + 300, "{after:?}");
}

#[test]
fn reshape_checks_element_count() {
    let g = gpu();
    let t = Tensor::zeros(&g, &[2, 6]).unwrap();
    assert_eq!(t.reshape(&[3, 4]).unwrap().shape(), &[3, 4]);
    let e = t.reshape(&[5]).unwrap_err().to_string();
    assert!(e.contains("[2, 6]") && e.contains("[5]"), "{e}");
    let e = Tensor::from_slice(&g, &[2, 2], &[1.0; 3])
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds 4 elements, data has 3"), "{e}");
}

#[test]
fn unknown_kernels_are_errors_not_panics() {
    let g = gpu();
    let t = Tensor::zeros(&g, &[4]).unwrap();
    let e = g
        .launch(
            &KernelSpec::new("softmax", "no_such_entry"),
            &[0u8; 16],
            &[],
            1,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("softmax::no_such_entry"), "{e}");
    let e = g
        .launch(&KernelSpec::new("nope", "main"), &[0u8; 16], &[], 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no shader file named \"nope\""), "{e}");
    // The device still works afterwards.
    assert_eq!(
        condenser::ops::relu(&t).unwrap().to_vec().unwrap(),
        vec![0.0; 4]
    );
}

#[test]
fn too_large_tensors_are_refused_with_the_limit() {
    let g = gpu();
    let limit = g.limits().max_storage_buffer_binding_size;
    let n = (limit / 4 + 1) as usize;
    let e = Tensor::zeros(&g, &[n]).unwrap_err().to_string();
    assert!(e.contains(&limit.to_string()), "{e}");
}

#[test]
fn profiling_times_each_launch() {
    let g = gpu();
    if !g.profile_begin().unwrap() {
        eprintln!("skipped: no timestamp queries on this adapter");
        return;
    }
    let a = Tensor::rand_uniform(&g, &[128, 128], -1.0, 1.0, 1).unwrap();
    let _ = condenser::ops::matmul(&a, &a).unwrap();
    let _ = condenser::ops::relu(&a).unwrap();
    let times = g.profile_end().unwrap();
    assert_eq!(times.len(), 2, "{times:?}");
    assert!(times[0].kernel.starts_with("matmul"), "{times:?}");
    assert!(times.iter().all(|t| t.ms >= 0.0 && t.ms.is_finite()));
}
