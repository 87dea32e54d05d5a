//! Per-kernel GPU time of one training step (development aid).
use condenser::autograd::Var;
use condenser::nn::{self, ModelSpec, build_model};
use condenser::ops::losses::CeConfig;
use condenser::optim::Sgd;
use condenser::tasks::classification::train_step;
use condenser::{Gpu, Tensor};
use std::collections::BTreeMap;

fn main() -> condenser::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arch = args.get(1).cloned().unwrap_or("cnn8".into());
    let (c, s, b) = (
        args.get(2).map_or(1, |v| v.parse().unwrap()),
        args.get(3).map_or(28, |v| v.parse().unwrap()),
        64,
    );
    let g = Gpu::new()?;
    let m = build_model(
        &g,
        &ModelSpec {
            arch: arch.clone(),
            in_channels: c,
            num_classes: 10,
            task: condenser::tasks::Task::Classify,
        },
        0,
    )?;
    let mut opt = Sgd::new(nn::parameters(m.as_ref()), 0.9, false, 5e-4)?;
    let x = Var::constant(Tensor::rand_uniform(&g, &[b, c, s, s], -1.0, 1.0, 1)?);
    let lab = Tensor::from_u32(&g, &[b], &(0..b as u32).map(|i| i % 10).collect::<Vec<_>>())?;
    for _ in 0..2 {
        train_step(m.as_ref(), &mut opt, &x, &lab, 0.01, CeConfig::default())?;
    }
    g.sync()?;
    let t0 = std::time::Instant::now();
    for _ in 0..3 {
        train_step(m.as_ref(), &mut opt, &x, &lab, 0.01, CeConfig::default())?;
    }
    g.sync()?;
    println!(
        "{arch}: wall {:.1} ms/step",
        t0.elapsed().as_secs_f64() * 1e3 / 3.0
    );
    g.profile_begin()?;
    train_step(m.as_ref(), &mut opt, &x, &lab, 0.01, CeConfig::default())?;
    let prof = g.profile_end()?;
    let mut by: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for k in &prof {
        let e = by.entry(k.kernel.clone()).or_default();
        e.0 += k.ms;
        e.1 += 1;
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    let total: f64 = prof.iter().map(|k| k.ms).sum();
    println!("{} launches, {:.1} ms GPU", prof.len(), total);
    for (k, (ms, n)) in v.iter().take(15) {
        println!("{ms:8.2} ms {n:4}x {k}");
    }
    Ok(())
}
