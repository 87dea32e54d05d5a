//! Learning-rate schedules, evaluated on the host per step (a fraction of an
//! epoch counts, so warm-up is smooth).

use crate::error::{Error, Result};

/// A schedule as the user names it: `constant`, `cosine`, `step:<every>:<gamma>`
/// or `multistep:<m1>,<m2>..:<gamma>`; parsed once (flags, TOML) and written
/// back under the same name.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ScheduleSpec {
    Constant,
    Cosine,
    Step { every: usize, gamma: f32 },
    MultiStep { milestones: Vec<usize>, gamma: f32 },
}

impl ScheduleSpec {
    /// The schedule of a run of `epochs` epochs.
    pub fn build(&self, epochs: usize) -> Schedule {
        match self {
            ScheduleSpec::Constant => Schedule::Constant,
            ScheduleSpec::Cosine => Schedule::Cosine {
                total: epochs,
                min_lr: 0.0,
            },
            ScheduleSpec::Step { every, gamma } => Schedule::Step {
                every: *every,
                gamma: *gamma,
            },
            ScheduleSpec::MultiStep { milestones, gamma } => Schedule::MultiStep {
                milestones: milestones.clone(),
                gamma: *gamma,
            },
        }
    }

    /// Whether the learning rate at an epoch depends on the total number of epochs.
    pub fn depends_on_epochs(&self) -> bool {
        matches!(self, ScheduleSpec::Cosine)
    }
}

impl std::str::FromStr for ScheduleSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Config(format!(
                "bad schedule {s:?}: use constant, cosine, step:<every>:<gamma> or \
                 multistep:<m1>,<m2>:<gamma> (every and milestones whole epochs >= 1, \
                 increasing; 0 < gamma <= 1)"
            ))
        };
        let gamma = |g: &str| {
            g.parse::<f32>()
                .ok()
                .filter(|g| g.is_finite() && *g > 0.0 && *g <= 1.0)
                .ok_or_else(bad)
        };
        let parts: Vec<&str> = s.split(':').collect();
        Ok(match parts[..] {
            ["constant"] => ScheduleSpec::Constant,
            ["cosine"] => ScheduleSpec::Cosine,
            ["step", every, g] => ScheduleSpec::Step {
                every: every.parse().ok().filter(|&e| e >= 1).ok_or_else(bad)?,
                gamma: gamma(g)?,
            },
            ["multistep", ms, g] => {
                let milestones: Vec<usize> = ms
                    .split(',')
                    .map(|m| m.trim().parse().ok().filter(|&m| m >= 1).ok_or_else(bad))
                    .collect::<Result<_>>()?;
                if milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(bad());
                }
                ScheduleSpec::MultiStep {
                    milestones,
                    gamma: gamma(g)?,
                }
            }
            _ => return Err(bad()),
        })
    }
}

impl From<ScheduleSpec> for String {
    fn from(s: ScheduleSpec) -> String {
        let list = |v: &[usize]| {
            v.iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match s {
            ScheduleSpec::Constant => "constant".into(),
            ScheduleSpec::Cosine => "cosine".into(),
            ScheduleSpec::Step { every, gamma } => format!("step:{every}:{gamma}"),
            ScheduleSpec::MultiStep { milestones, gamma } => {
                format!("multistep:{}:{gamma}", list(&milestones))
            }
        }
    }
}

named_setting!(ScheduleSpec);

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
