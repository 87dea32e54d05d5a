//! Development probe: train a small CNN on Fashion-MNIST and print the curve.
use condenser::Gpu;
use condenser::autograd::{Var, no_grad};
use condenser::data::loader::{Loader, LoaderConfig};
use condenser::data::{DataOptions, Split, load};
use condenser::nn::{self, ModelSpec, build_model};
use condenser::ops::losses::CeConfig;
use condenser::optim::{Adam, Optimizer, Sgd};
use condenser::tasks::classification::{evaluate, train_step};

fn main() -> condenser::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let arch = a.get(1).cloned().unwrap_or("cnn8".into());
    let lr: f32 = a.get(2).map_or(0.05, |v| v.parse().unwrap());
    let n: usize = a.get(3).map_or(5000, |v| v.parse().unwrap());
    let adam = a.get(4).is_some_and(|v| v == "adam");
    let g = Gpu::new()?;
    let train = load(
        "fashion-mnist",
        Split::Train,
        &DataOptions {
            limit: Some(n),
            ..Default::default()
        },
    )?;
    let test = load(
        "fashion-mnist",
        Split::Test,
        &DataOptions {
            limit: Some(1000),
            ..Default::default()
        },
    )?;
    let norm = Some(train.channel_stats());
    let cfg = LoaderConfig {
        batch_size: 64,
        shuffle: true,
        crop_pad: 0,
        flip: false,
        normalize: norm.clone(),
        seed: 1,
        drop_last: true,
    };
    let loader = Loader::new(&g, &train, cfg)?;
    let tl = Loader::new(&g, &test, LoaderConfig::eval(250, norm))?;
    let m = build_model(
        &g,
        &ModelSpec {
            arch,
            in_channels: 1,
            num_classes: 10,
        },
        1,
    )?;
    let mut opt: Box<dyn Optimizer> = if adam {
        Box::new(Adam::new(nn::parameters(m.as_ref()), 0.0, false)?)
    } else {
        Box::new(Sgd::new(nn::parameters(m.as_ref()), 0.9, true, 5e-4)?)
    };
    let mut step = 0;
    for epoch in 0..3 {
        let mut sum = 0.0;
        let mut cnt = 0;
        for b in loader.epoch(epoch) {
            let b = b?;
            let loss = train_step(
                m.as_ref(),
                opt.as_mut(),
                &Var::constant(b.images),
                &b.labels,
                lr,
                CeConfig::default(),
            )?;
            step += 1;
            if step % 10 == 0 {
                sum += loss.value().item()?;
                cnt += 1;
            }
        }
        // train-mode accuracy on the test set
        let acc_train_bn = {
            let _ng = no_grad();
            let mut right = 0;
            let mut tot = 0;
            for b in tl.epoch(0) {
                let b = b?;
                let o = m.forward(&Var::constant(b.images), true)?;
                let p = condenser::ops::argmax(o.logits.value(), Some(1))?.to_vec_u32()?;
                let l = b.labels.to_vec_u32()?;
                right += p.iter().zip(&l).filter(|(a, b)| a == b).count();
                tot += l.len();
            }
            right as f32 / tot as f32
        };
        println!(
            "epoch {epoch}: mean loss {:.3}, test acc (eval BN) {:.3}, (batch BN) {:.3}",
            sum / cnt as f32,
            evaluate(m.as_ref(), &tl)?,
            acc_train_bn
        );
    }
    Ok(())
}
