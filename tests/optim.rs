//! Optimiser kernels against the PyTorch update rules written out on the host.
//!
//! Tolerance: each update is a handful of f32 operations per element; after 3
//! steps the GPU and the f64 host values agree to ~1e-6: 1e-5 absolute.

mod common;
use common::{assert_close, gpu, rand_vec};
use condenser::Tensor;
use condenser::autograd::Var;
use condenser::optim::{Adam, Optimizer, Sgd};

fn setup(n: usize) -> (Var, Vec<f64>, Vec<Vec<f64>>) {
    let g = gpu();
    let w0 = rand_vec(n, 1);
    let w = Var::leaf(Tensor::from_slice(&g, &[n], &w0).unwrap(), true);
    let grads: Vec<Vec<f64>> = (0..3)
        .map(|s| rand_vec(n, 10 + s).iter().map(|&v| v as f64).collect())
        .collect();
    (w, w0.iter().map(|&v| v as f64).collect(), grads)
}

fn set_grad(w: &Var, g: &[f64]) {
    let v: Vec<f32> = g.iter().map(|&x| x as f32).collect();
    w.set_grad(Some(
        Tensor::from_slice(w.value().gpu(), w.shape(), &v).unwrap(),
    ));
}

#[test]
fn sgd_momentum_nesterov_weight_decay() {
    for (momentum, nesterov, wd) in [(0.0, false, 0.0), (0.9, false, 5e-4), (0.9, true, 1e-2)] {
        let n = 37;
        let (w, mut want, grads) = setup(n);
        let mut opt = Sgd::new(vec![w.clone()], momentum, nesterov, wd).unwrap();
        let mut buf = vec![0f64; n];
        let lr = 0.1;
        for g in &grads {
            set_grad(&w, g);
            opt.step(lr).unwrap();
            for i in 0..n {
                let mut d = g[i] + wd as f64 * want[i];
                if momentum != 0.0 {
                    buf[i] = momentum as f64 * buf[i] + d;
                    d = if nesterov {
                        d + momentum as f64 * buf[i]
                    } else {
                        buf[i]
                    };
                }
                want[i] -= lr as f64 * d;
            }
        }
        let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        assert_close(
            &w.value().to_vec().unwrap(),
            &want32,
            1e-5,
            0.0,
            &format!("sgd m={momentum} nesterov={nesterov} wd={wd}"),
        );
    }
}

#[test]
fn adam_and_adamw() {
    for (wd, decoupled) in [(0.0, false), (1e-2, false), (1e-2, true)] {
        let n = 29;
        let (w, mut want, grads) = setup(n);
        let mut opt = Adam::new(vec![w.clone()], wd, decoupled).unwrap();
        let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8f64, 0.01f64);
        let (mut m, mut v) = (vec![0f64; n], vec![0f64; n]);
        for (t, g) in grads.iter().enumerate() {
            set_grad(&w, g);
            opt.step(lr as f32).unwrap();
            let t = t as i32 + 1;
            for i in 0..n {
                let mut gi = g[i];
                if decoupled {
                    want[i] -= lr * wd as f64 * want[i];
                } else {
                    gi += wd as f64 * want[i];
                }
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let mh = m[i] / (1.0 - b1.powi(t));
                let vh = v[i] / (1.0 - b2.powi(t));
                want[i] -= lr * mh / (vh.sqrt() + eps);
            }
        }
        let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        assert_close(
            &w.value().to_vec().unwrap(),
            &want32,
            1e-5,
            0.0,
            &format!("adam wd={wd} decoupled={decoupled}"),
        );
    }
}

#[test]
fn parameters_without_gradients_are_left_alone_and_bad_rates_refused() {
    let (w, w0, _) = setup(5);
    let mut opt = Sgd::new(vec![w.clone()], 0.9, false, 0.1).unwrap();
    opt.step(0.1).unwrap();
    let w032: Vec<f32> = w0.iter().map(|&v| v as f32).collect();
    assert_eq!(w.value().to_vec().unwrap(), w032);
    assert!(
        opt.step(f32::NAN)
            .unwrap_err()
            .to_string()
            .contains("learning rate")
    );
    assert!(Sgd::new(vec![], -1.0, false, 0.0).is_err());
}

/// Weights and optimiser state after 3 steps of `make`'s optimiser over
/// parameters of `sizes` (the one at `idle` never gets a gradient).
fn grouped_run(
    make: &dyn Fn(Vec<Var>) -> Box<dyn Optimizer>,
    sizes: &[usize],
    idle: usize,
) -> Vec<Vec<f32>> {
    let g = gpu();
    let params: Vec<Var> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            Var::leaf(
                Tensor::from_slice(&g, &[n], &rand_vec(n, 100 + i as u64)).unwrap(),
                true,
            )
        })
        .collect();
    let mut opt = make(params.clone());
    for step in 0..3u64 {
        for (i, p) in params.iter().enumerate() {
            if i != idle {
                let v = rand_vec(sizes[i], 1000 * step + i as u64);
                p.set_grad(Some(Tensor::from_slice(&g, p.shape(), &v).unwrap()));
            }
        }
        opt.step(0.05).unwrap();
    }
    let mut out: Vec<Vec<f32>> = params.iter().map(|p| p.value().to_vec().unwrap()).collect();
    out.extend(opt.state().iter().map(|(_, t)| t.to_vec().unwrap()));
    out
}

/// optim_multi.wgsl's grouped launches (up to 5 SGD or 4 Adam parameters
/// each) against a launch per parameter: the same bits, for sizes that are
/// not whole workgroups, one of 274 workgroups, a parameter without a
/// gradient (first, in the middle, last), and more parameters than a launch
/// takes.
#[test]
fn grouped_updates_match_one_launch_per_parameter_to_the_bit() {
    let sizes = [1, 3, 37, 256, 257, 4, 1000, 2, 70_001, 9, 512, 33, 5];
    type Make = Box<dyn Fn(Vec<Var>) -> Box<dyn Optimizer>>;
    let mut makes: Vec<(Make, String)> = Vec::new();
    for (m, nesterov, wd) in [(0.0, false, 0.0), (0.9, false, 5e-4), (0.9, true, 1e-2)] {
        makes.push((
            Box::new(move |p| Box::new(Sgd::new(p, m, nesterov, wd).unwrap())),
            format!("sgd m={m} nesterov={nesterov} wd={wd}"),
        ));
    }
    for (wd, decoupled) in [(0.0, false), (1e-2, false), (1e-2, true)] {
        makes.push((
            Box::new(move |p| Box::new(Adam::new(p, wd, decoupled).unwrap())),
            format!("adam wd={wd} decoupled={decoupled}"),
        ));
    }
    for (make, what) in &makes {
        // A parameter listed twice is updated twice, one launch after the other.
        let twice = |p: Vec<Var>| {
            let mut p = p;
            p.insert(2, p[1].clone());
            make(p)
        };
        condenser::optim::multi::set_multi_tensor(false);
        let single = grouped_run(&twice, &sizes, 4);
        condenser::optim::multi::set_multi_tensor(true);
        assert_eq!(
            grouped_run(&twice, &sizes, 4),
            single,
            "{what}, listed twice"
        );
        for idle in [4, 0, sizes.len() - 1] {
            condenser::optim::multi::set_multi_tensor(false);
            let single = grouped_run(make.as_ref(), &sizes, idle);
            condenser::optim::multi::set_multi_tensor(true);
            let grouped = grouped_run(make.as_ref(), &sizes, idle);
            assert_eq!(grouped, single, "{what}, idle parameter {idle}");
            // The idle parameter kept its first values.
            let w0 = rand_vec(sizes[idle], 100 + idle as u64);
            assert_eq!(grouped[idle], w0, "{what}: idle parameter {idle} moved");
        }
    }
}
