//! The teacher/student trainer. One configuration (`RunConfig`, from the CLI or
//! a TOML file) describes a run: data, teacher (optional: without one the
//! student trains alone), student, paths, aggregation, schedule, seed, output.
//!
//! Per step: the teacher's forward in eval mode under no_grad (no graph, no
//! gradient memory), the student's forward, CE and path losses, the aggregator's
//! backward, one SGD (or Adam) step over student, regressors and aggregator
//! parameters. Every epoch: test accuracy, teacher-student agreement, a
//! checkpoint written atomically (`--resume` continues from it). A JSON-lines
//! log holds losses, weights, lr and images/s; everything is seeded.

use std::io::Write;
use std::path::{Path as FsPath, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::aggregate::{AggregateSpec, build_aggregator};
use super::paths::{build_paths, parse_paths};
use crate::autograd::{Var, functional as F, no_grad};
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::{DataOptions, ImageSet, Split, load};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{self, Model, ModelSpec, Module, build_model, safetensors};
use crate::ops::losses::CeConfig;
use crate::optim::{Adam, Optimizer, Schedule, Sgd};
use crate::tasks::classification::checked_loss;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// A name for tables and plots.
    pub name: String,
    pub data: String,
    pub data_dir: Option<PathBuf>,
    /// Training images to use (None: all).
    pub train_limit: Option<usize>,
    pub test_limit: Option<usize>,
    /// Image side for the shapes world and image folders.
    pub image_size: Option<usize>,
    /// Images of the shapes world's training split.
    pub shapes_count: Option<usize>,
    pub teacher_model: Option<String>,
    pub teacher_weights: Option<PathBuf>,
    pub student_model: String,
    /// Distillation paths: `soft,hint,at,nst,logits` (empty: none).
    pub paths: String,
    /// equal, fixed[:w,..], adaptive, gradnorm, dwa, pcgrad, mgda.
    pub aggregate: String,
    /// One path per stage for feature paths at several stages.
    pub layerwise: bool,
    pub temperature: f32,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    /// sgd or adam
    pub optimizer: String,
    /// constant, cosine, step:<every>:<gamma>, multistep:<m1>,<m2>..:<gamma>
    pub schedule: String,
    pub warmup_epochs: f32,
    pub crop_pad: usize,
    pub flip: bool,
    pub label_smoothing: f32,
    pub seed: u64,
    pub out_dir: PathBuf,
    /// Read losses back and log every this many steps.
    pub log_every: usize,
    pub resume: bool,
    /// Progress bars on the terminal.
    pub progress: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            name: String::new(),
            data: "shapes".into(),
            data_dir: None,
            train_limit: None,
            test_limit: None,
            image_size: None,
            shapes_count: None,
            teacher_model: None,
            teacher_weights: None,
            student_model: "cnn8".into(),
            paths: String::new(),
            aggregate: "equal".into(),
            layerwise: false,
            temperature: 4.0,
            epochs: 10,
            batch_size: 64,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 5e-4,
            optimizer: "sgd".into(),
            schedule: "cosine".into(),
            warmup_epochs: 0.0,
            crop_pad: 0,
            flip: false,
            label_smoothing: 0.0,
            seed: 0,
            out_dir: PathBuf::from("runs/run"),
            log_every: 10,
            resume: false,
            progress: true,
        }
    }
}

impl RunConfig {
    pub fn from_toml(path: &FsPath) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        toml::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    pub fn schedule(&self) -> Result<Schedule> {
        let s = self.schedule.as_str();
        let bad = || {
            Error::Invalid(format!(
                "bad schedule {s:?}: use constant, cosine, step:<every>:<gamma> or multistep:<m1>,<m2>:<gamma>"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        Ok(match parts[..] {
            ["constant"] => Schedule::Constant,
            ["cosine"] => Schedule::Cosine {
                total: self.epochs,
                min_lr: 0.0,
            },
            ["step", every, gamma] => Schedule::Step {
                every: every.parse().map_err(|_| bad())?,
                gamma: gamma.parse().map_err(|_| bad())?,
            },
            ["multistep", ms, gamma] => Schedule::MultiStep {
                milestones: ms
                    .split(',')
                    .map(|m| m.parse().map_err(|_| bad()))
                    .collect::<Result<_>>()?,
                gamma: gamma.parse().map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        })
    }

    fn data_options(&self, limit: Option<usize>) -> DataOptions {
        DataOptions {
            data_dir: self.data_dir.clone(),
            limit,
            size: self.image_size,
            seed: 0,
            count: self.shapes_count,
        }
    }

    pub fn load_data(&self) -> Result<(ImageSet, ImageSet)> {
        Ok((
            load(
                &self.data,
                Split::Train,
                &self.data_options(self.train_limit),
            )?,
            load(&self.data, Split::Test, &self.data_options(self.test_limit))?,
        ))
    }
}

/// What a finished run reports.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub name: String,
    pub test_acc: f32,
    pub agreement: Option<f32>,
    pub teacher_acc: Option<f32>,
    /// Test accuracy after each epoch.
    pub curve: Vec<f32>,
    pub path_names: Vec<String>,
    /// Path weights at each logged step: (step, weights).
    pub weight_history: Vec<(usize, Vec<f32>)>,
    pub params: usize,
    pub seconds: f32,
}

/// A trained model with the data shape it expects, from a weights file.
pub fn load_model(
    gpu: &Gpu,
    arch: &str,
    weights: &FsPath,
    in_channels: usize,
    num_classes: usize,
) -> Result<Box<dyn Model>> {
    let meta = safetensors::metadata(weights)?;
    if let Some(a) = meta.get("arch")
        && a != arch
    {
        return Err(Error::data(
            weights,
            format!("holds a {a} but the model asked for is {arch}"),
            format!("pass --teacher-model {a}, or the weights of a {arch}"),
        ));
    }
    let m = build_model(
        gpu,
        &ModelSpec {
            arch: arch.into(),
            in_channels,
            num_classes,
        },
        0,
    )?;
    safetensors::load(m.as_ref(), weights)?;
    Ok(m)
}

/// Argmax predictions of a model on a loader (eval mode, no graph).
fn predictions(model: &dyn Model, loader: &Loader) -> Result<(Vec<u32>, Vec<u32>)> {
    let _ng = no_grad();
    let (mut pred, mut labels) = (Vec::new(), Vec::new());
    for b in loader.epoch(0) {
        let b = b?;
        let out = model.forward(&Var::constant(b.images), false)?;
        pred.extend(crate::ops::argmax(out.logits.value(), Some(1))?.to_vec_u32()?);
        labels.extend(b.labels.to_vec_u32()?);
    }
    Ok((pred, labels))
}

fn accuracy(p: &[u32], l: &[u32]) -> f32 {
    p.iter().zip(l).filter(|(a, b)| a == b).count() as f32 / l.len().max(1) as f32
}

struct Log {
    file: std::fs::File,
}

impl Log {
    fn open(path: &FsPath, append: bool) -> Result<Log> {
        let io = |e| Error::Io {
            path: path.display().to_string(),
            source: e,
        };
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(path)
            .map_err(io)?;
        Ok(Log { file })
    }
    fn write(&mut self, v: serde_json::Value) -> Result<()> {
        writeln!(self.file, "{v}").map_err(|e| Error::Io {
            path: "metrics.jsonl".into(),
            source: e,
        })
    }
}

/// Runs one configuration to the end (or from its checkpoint with `resume`).
pub fn run(gpu: &Gpu, cfg: &RunConfig) -> Result<RunResult> {
    let t0 = Instant::now();
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(Error::Invalid(
            "epochs and batch size must be at least 1".into(),
        ));
    }
    let (train, test) = cfg.load_data()?;
    let norm = train.channel_stats();
    let (cin, classes) = (train.channels, train.num_classes());
    let loader = Loader::new(
        gpu,
        &train,
        LoaderConfig {
            batch_size: cfg.batch_size,
            shuffle: true,
            crop_pad: cfg.crop_pad,
            flip: cfg.flip,
            normalize: Some(norm.clone()),
            seed: cfg.seed,
            drop_last: train.len() > cfg.batch_size,
        },
    )?;
    let test_loader = Loader::new(gpu, &test, LoaderConfig::eval(256, Some(norm.clone())))?;

    let teacher = match (&cfg.teacher_model, &cfg.teacher_weights) {
        (Some(arch), Some(w)) => Some(load_model(gpu, arch, w, cin, classes)?),
        (Some(_), None) => {
            return Err(Error::Invalid(
                "--teacher-model needs --teacher-weights (train one with `condenser train`)".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(Error::Invalid(
                "--teacher-weights needs --teacher-model".into(),
            ));
        }
        (None, None) => None,
    };
    let kinds = parse_paths(&cfg.paths)?;
    if teacher.is_none() && !kinds.is_empty() {
        return Err(Error::Invalid(format!(
            "paths {:?} need a teacher (--teacher-model, --teacher-weights)",
            cfg.paths
        )));
    }
    let student = build_model(
        gpu,
        &ModelSpec {
            arch: cfg.student_model.clone(),
            in_channels: cin,
            num_classes: classes,
        },
        cfg.seed,
    )?;
    let paths = match &teacher {
        Some(t) => build_paths(
            gpu,
            &kinds,
            &student.feature_channels(),
            &t.feature_channels(),
            cfg.layerwise,
            cfg.temperature,
            cfg.seed,
        )?,
        None => Vec::new(),
    };
    let spec: AggregateSpec = cfg.aggregate.parse()?;
    let mut agg = build_aggregator(&spec, &paths, gpu)?;
    let mut params = nn::parameters(student.as_ref());
    let shared = params
        .first()
        .cloned()
        .ok_or_else(|| Error::Invalid("the student has no parameters".into()))?;
    for p in &paths {
        params.extend(nn::parameters(p));
    }
    params.extend(agg.params());
    let mut opt: Box<dyn Optimizer> = match cfg.optimizer.as_str() {
        "sgd" => Box::new(Sgd::new(
            params.clone(),
            cfg.momentum,
            false,
            cfg.weight_decay,
        )?),
        "adam" => Box::new(Adam::new(params.clone(), cfg.weight_decay, false)?),
        "adamw" => Box::new(Adam::new(params.clone(), cfg.weight_decay, true)?),
        o => {
            return Err(Error::Invalid(format!(
                "unknown optimizer {o:?}: use sgd, adam or adamw"
            )));
        }
    };
    let schedule = cfg.schedule()?;
    let ce_cfg = CeConfig {
        label_smoothing: cfg.label_smoothing,
        ignore_index: None,
    };
    let path_names: Vec<String> = paths.iter().map(|p| p.name.clone()).collect();

    // The teacher's test predictions, once.
    let (teacher_acc, teacher_pred) = match &teacher {
        Some(t) => {
            let (p, l) = predictions(t.as_ref(), &test_loader)?;
            (Some(accuracy(&p, &l)), Some(p))
        }
        None => (None, None),
    };

    let ckpt = cfg.out_dir.join("checkpoint.safetensors");
    let mut start_epoch = 0;
    let mut result = RunResult {
        name: if cfg.name.is_empty() {
            cfg.aggregate.clone()
        } else {
            cfg.name.clone()
        },
        test_acc: 0.0,
        agreement: None,
        teacher_acc,
        curve: Vec::new(),
        path_names: path_names.clone(),
        weight_history: Vec::new(),
        params: nn::param_count(student.as_ref()),
        seconds: 0.0,
    };
    if cfg.resume && ckpt.exists() {
        let meta = safetensors::metadata(&ckpt)?;
        let saved: RunConfig = serde_json::from_str(
            meta.get("config").map(String::as_str).unwrap_or("{}"),
        )
        .map_err(|e| {
            Error::data(
                &ckpt,
                format!("bad config in checkpoint: {e}"),
                "delete it to start over",
            )
        })?;
        if (RunConfig {
            epochs: cfg.epochs,
            resume: cfg.resume,
            progress: cfg.progress,
            ..saved.clone()
        }) != *cfg
        {
            return Err(Error::data(
                &ckpt,
                "was written by a different configuration",
                "use another --out directory, or drop --resume to start over",
            ));
        }
        safetensors::load_prefixed(student.as_ref(), &ckpt, "student")?;
        for p in &paths {
            safetensors::load_prefixed(p, &ckpt, "paths")?;
        }
        opt.load_state(&safetensors::load_tensors(gpu, &ckpt, "optim.")?)?;
        let agg_state: Vec<f32> =
            serde_json::from_str(meta.get("aggregator").map(String::as_str).unwrap_or("[]"))
                .unwrap_or_default();
        agg.load_state(&agg_state)?;
        let prev: RunResult = serde_json::from_str::<serde_json::Value>(
            meta.get("result").map(String::as_str).unwrap_or("{}"),
        )
        .ok()
        .and_then(|v| {
            Some(RunResult {
                curve: serde_json::from_value(v.get("curve")?.clone()).ok()?,
                weight_history: serde_json::from_value(v.get("weight_history")?.clone()).ok()?,
                ..result.clone()
            })
        })
        .unwrap_or(result.clone());
        result = prev;
        start_epoch = meta.get("epoch").and_then(|e| e.parse().ok()).unwrap_or(0);
    }
    let mut log = Log::open(&cfg.out_dir.join("metrics.jsonl"), start_epoch > 0)?;

    let steps_per_epoch = loader.batches_per_epoch();
    let bar = if cfg.progress {
        let b = indicatif::ProgressBar::new((cfg.epochs * steps_per_epoch) as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>14} [{bar:30}] {pos}/{len} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.set_prefix(result.name.clone());
        b.set_position((start_epoch * steps_per_epoch) as u64);
        b
    } else {
        indicatif::ProgressBar::hidden()
    };

    for epoch in start_epoch..cfg.epochs {
        let mut sums = vec![0f32; paths.len()];
        let mut samples = 0usize;
        let mut t_log = Instant::now();
        for (b, batch) in loader.epoch(epoch).enumerate() {
            let batch = batch?;
            let step = epoch * steps_per_epoch + b;
            let lr = schedule.lr(
                cfg.lr,
                epoch as f32 + b as f32 / steps_per_epoch as f32,
                cfg.warmup_epochs,
            );
            let x = Var::constant(batch.images);
            // Without paths the teacher is only there for the agreement metric.
            let t_out = match teacher.as_ref().filter(|_| !paths.is_empty()) {
                Some(t) => {
                    let _ng = no_grad();
                    Some(t.forward(&x, false)?)
                }
                None => None,
            };
            let s_out = student.forward(&x, true)?;
            let ce = F::cross_entropy(&s_out.logits, &batch.labels, ce_cfg)?;
            let losses: Vec<Var> = match &t_out {
                Some(t) => paths
                    .iter()
                    .map(|p| p.loss(&s_out, t, true))
                    .collect::<Result<_>>()?,
                None => Vec::new(),
            };
            opt.zero_grad();
            agg.backward(&ce, &losses, &params, &shared)?;
            opt.step(lr)?;
            if step % cfg.log_every.max(1) == 0 || b + 1 == steps_per_epoch {
                let ce_v = checked_loss(&ce, step)?;
                let mut lv = Vec::new();
                for l in &losses {
                    lv.push(checked_loss(l, step)?);
                }
                for (s, v) in sums.iter_mut().zip(&lv) {
                    *s += v;
                }
                samples += 1;
                let w = agg.weights()?;
                let ips = (cfg.log_every.max(1) * cfg.batch_size) as f32
                    / t_log.elapsed().as_secs_f32().max(1e-6);
                t_log = Instant::now();
                result.weight_history.push((step, w.clone()));
                log.write(serde_json::json!({
                    "type": "step", "step": step, "epoch": epoch, "lr": lr, "ce": ce_v,
                    "losses": path_names.iter().cloned().zip(lv.iter().map(|&x| serde_json::json!(x))).collect::<serde_json::Map<String, serde_json::Value>>(),
                    "weights": path_names.iter().cloned().zip(w.iter().map(|&x| serde_json::json!(x))).collect::<serde_json::Map<String, serde_json::Value>>(),
                    "images_per_s": ips,
                }))?;
                bar.set_message(format!(
                    "ce {ce_v:.3} acc {:.3}",
                    result.curve.last().copied().unwrap_or(0.0)
                ));
            }
            bar.inc(1);
        }
        let means: Vec<f32> = sums.iter().map(|s| s / samples.max(1) as f32).collect();
        agg.end_epoch(&means);
        let (pred, labels) = predictions(student.as_ref(), &test_loader)?;
        let acc = accuracy(&pred, &labels);
        let agreement = teacher_pred.as_ref().map(|tp| accuracy(&pred, tp));
        result.curve.push(acc);
        result.test_acc = acc;
        result.agreement = agreement;
        log.write(serde_json::json!({"type": "epoch", "epoch": epoch, "test_acc": acc, "agreement": agreement, "teacher_acc": teacher_acc}))?;
        // Checkpoint: student, regressors, optimiser and aggregator state, config.
        let mut tensors: Vec<(String, crate::Tensor)> = opt
            .state()
            .into_iter()
            .map(|(k, v)| (format!("optim.{k}"), v))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let mut modules: Vec<(&str, &dyn Module)> =
            vec![("student", student.as_ref() as &dyn Module)];
        for p in &paths {
            modules.push(("paths", p as &dyn Module));
        }
        let meta = [
            ("epoch", (epoch + 1).to_string()),
            ("config", serde_json::to_string(cfg).unwrap_or_default()),
            (
                "aggregator",
                serde_json::to_string(&agg.state()?).unwrap_or_default(),
            ),
            ("result", serde_json::to_string(&result).unwrap_or_default()),
            ("arch", cfg.student_model.clone()),
        ];
        safetensors::save_checkpoint(&ckpt, &modules, &tensors, &meta)?;
    }
    bar.finish_and_clear();
    // The trained student alone, loadable as a teacher or by PyTorch.
    safetensors::save(
        student.as_ref(),
        &cfg.out_dir.join("model.safetensors"),
        &[
            ("arch", cfg.student_model.clone()),
            ("data", cfg.data.clone()),
            ("test_acc", result.test_acc.to_string()),
        ],
    )?;
    result.seconds += t0.elapsed().as_secs_f32();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::RunConfig;

    #[test]
    fn the_shipped_config_parses_and_typos_are_refused() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/distill-fmnist.toml"
        ));
        let c = RunConfig::from_toml(path).unwrap();
        assert_eq!(
            (c.student_model.as_str(), c.aggregate.as_str(), c.epochs),
            ("cnn8", "adaptive", 4)
        );
        assert!(c.schedule().is_ok());
        let bad: Result<RunConfig, _> = toml::from_str("epoch = 3");
        assert!(bad.unwrap_err().to_string().contains("unknown field"));
        let c = RunConfig {
            schedule: "multistep:60,120:0.2".into(),
            ..RunConfig::default()
        };
        assert!(c.schedule().is_ok());
        let c = RunConfig {
            schedule: "sometimes".into(),
            ..RunConfig::default()
        };
        assert!(
            c.schedule()
                .unwrap_err()
                .to_string()
                .contains("bad schedule")
        );
    }
}
