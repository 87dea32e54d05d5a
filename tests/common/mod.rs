#![allow(dead_code)]
//! Helpers shared by the GPU tests.

use condenser::Gpu;
use condenser::rng::Rng;

thread_local! {
    static GPU: Gpu = Gpu::new().unwrap_or_else(|e| {
        // Never skip silently: a machine without an adapter fails the GPU tests.
        panic!("GPU tests need an adapter: {e}")
    });
}

/// One device per test thread (devices are not shared across threads).
pub fn gpu() -> Gpu {
    GPU.with(|g| g.clone())
}

pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    Rng::new(seed).vec_uniform(n, -1.0, 1.0)
}

/// Asserts |got - want| <= atol + rtol * |want| elementwise, NaN matching NaN and
/// infinities matching exactly. Reports the worst element.
pub fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= atol + rtol * w.abs()
        };
        if !ok {
            let excess = if g.is_finite() {
                (g - w).abs()
            } else {
                f32::INFINITY
            };
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: element {i} is {} but the reference says {} (atol {atol}, rtol {rtol})",
            got[i], want[i]
        );
    }
}
