//! Training health marks against src/cpu/health.rs. Exact: the kernel compares
//! bits and writes integers, so GPU and reference must agree to the value.

mod common;
use common::{gpu, rand_vec};
use condenser::Tensor;
use condenser::cpu::health as reference;
use condenser::ops::health::mark_bad;
use condenser::rng::Rng;

#[test]
fn marks_the_first_bad_step_of_each_slot() {
    let g = gpu();
    let slots = 5;
    let marks = Tensor::from_u32(&g, &[slots], &vec![0; slots]).unwrap();
    let mut want = vec![0u32; slots];
    let mut rng = Rng::new(3);
    // Sizes: one value (a loss), odd sizes, and past one workgroup and 65535 of them.
    let sizes = [1usize, 7, 255, 257, 1000, 17_000_000];
    for step in 0..12u32 {
        let slot = step as usize % slots;
        let n = sizes[step as usize % sizes.len()];
        let mut v = rand_vec(n, step as u64);
        // Poison one element at a random place on some steps: NaN, +-inf, too large.
        let poison = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -3e20, 0.5];
        let bad = poison[rng.below(poison.len())];
        let at = rng.below(n);
        if step % 3 != 0 {
            v[at] = bad;
        }
        let t = Tensor::from_slice(&g, &[n], &v).unwrap();
        mark_bad(&marks, slot, &t, step as usize, 1e18).unwrap();
        reference::mark_bad(&mut want, slot, &v, step, 1e18);
        assert_eq!(
            marks.to_vec_u32().unwrap(),
            want,
            "after step {step} ({n} values, {bad} at {at})"
        );
    }
    // The poisoned steps did mark something (the test exercised the bad path).
    assert!(want.iter().any(|&m| m != 0), "{want:?}");
}

#[test]
fn healthy_values_leave_no_mark_and_bounds_count() {
    let g = gpu();
    let marks = Tensor::from_u32(&g, &[2], &[0, 0]).unwrap();
    let v = Tensor::from_slice(&g, &[4], &[1e17, -1e17, 0.0, f32::MIN_POSITIVE]).unwrap();
    mark_bad(&marks, 0, &v, 5, 1e18).unwrap();
    mark_bad(&marks, 1, &v, 6, 1e16).unwrap();
    assert_eq!(marks.to_vec_u32().unwrap(), vec![0, 7]);
    // Out-of-range slot: an error, not an out-of-bounds write.
    assert!(mark_bad(&marks, 2, &v, 0, 1.0).is_err());
}
