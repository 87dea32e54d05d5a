//! Learning-rate schedules, evaluated on the host per step (a fraction of an
//! epoch counts, so warm-up is smooth).

#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// lr * gamma^(floor(epoch / every))
    Step {
        every: usize,
        gamma: f32,
    },
    /// lr * gamma^(number of milestones <= epoch)
    MultiStep {
        milestones: Vec<usize>,
        gamma: f32,
    },
    /// Cosine from lr to `min_lr` over `total` epochs.
    Cosine {
        total: usize,
        min_lr: f32,
    },
}

impl Schedule {
    /// The learning rate at (possibly fractional) `epoch`, with a linear warm-up
    /// from 0 over the first `warmup` epochs.
    pub fn lr(&self, base: f32, epoch: f32, warmup: f32) -> f32 {
        let e = epoch.max(0.0);
        let lr = match self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => {
                base * gamma.powi((e as usize / (*every).max(1)) as i32)
            }
            Schedule::MultiStep { milestones, gamma } => {
                base * gamma.powi(milestones.iter().filter(|&&m| e as usize >= m).count() as i32)
            }
            Schedule::Cosine { total, min_lr } => {
                let t = (e / (*total).max(1) as f32).min(1.0);
                min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f32::consts::PI * t).cos())
            }
        };
        if warmup > 0.0 && e < warmup {
            lr * e / warmup
        } else {
            lr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    #[test]
    fn schedules() {
        let ms = Schedule::MultiStep {
            milestones: vec![60, 120, 160],
            gamma: 0.2,
        };
        assert_eq!(ms.lr(0.1, 0.0, 0.0), 0.1);
        assert!((ms.lr(0.1, 60.0, 0.0) - 0.02).abs() < 1e-7);
        assert!((ms.lr(0.1, 170.0, 0.0) - 0.1 * 0.008).abs() < 1e-7);
        let st = Schedule::Step {
            every: 10,
            gamma: 0.5,
        };
        assert!((st.lr(1.0, 25.0, 0.0) - 0.25).abs() < 1e-7);
        let cos = Schedule::Cosine {
            total: 100,
            min_lr: 0.0,
        };
        assert!((cos.lr(1.0, 50.0, 0.0) - 0.5).abs() < 1e-6);
        assert!(cos.lr(1.0, 100.0, 0.0).abs() < 1e-6);
        assert!(
            (Schedule::Constant.lr(0.4, 0.5, 2.0) - 0.1).abs() < 1e-7,
            "warm-up is linear"
        );
        assert_eq!(Schedule::Constant.lr(0.4, 3.0, 2.0), 0.4);
    }
}
