//! The teacher/student trainer, in parts a reader can name: `setup` (data,
//! teacher, student, paths, aggregator, optimiser), `resume` (or a fresh
//! start), `train_epoch` (the steps), `finish_epoch` (evaluation, health check,
//! checkpoint) and `save_model`.
//!
//! Per step: the teacher's forward in eval mode under no_grad (no graph, no
//! gradient memory), the student's forward, CE and path losses, the aggregator's
//! backward, one SGD (or Adam) step over student, regressors and aggregator
//! parameters. Every watched number (teacher outputs, CE, each path, and at log
//! points every parameter) is checked on the device each step for NaN,
//! infinities and runaway magnitudes; the marks are read back only at log
//! points and before a checkpoint, so a diverged state is never saved.

use std::path::{Path as FsPath, PathBuf};
use std::time::Instant;

use super::aggregate::{Aggregator, build_aggregator};
use super::checkpoint::{
    CHECKPOINT, CheckpointMeta, Log, METRICS, MODEL, ONNX_MODEL, as_checkpoint, file_sha256,
    open_run_dir, resolve_out_dir,
};
use super::config::OptimizerKind;
use super::paths::{Path, build_paths, parse_paths};
use super::teacher_cache::TeacherCache;
use crate::autograd::{Var, functional as F, no_grad};
use crate::data::ImageSet;
use crate::data::loader::{Loader, LoaderConfig};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{self, InputSpec, Model, ModelSpec, Module, build_model, safetensors};
use crate::ops::losses::CeConfig;
use crate::optim::{Adam, Optimizer, Schedule, Sgd};
use crate::tasks::replay::StepReplay;
use crate::tasks::{Predictions, Task, predictions};
use crate::tensor::Tensor;

pub use super::checkpoint::RunResult;
pub use super::config::RunConfig;

/// A loss, output or weight larger than this in magnitude counts as diverged
/// (as NaN and infinities do): no trained network has such values, and past
/// it squares overflow f32.
pub const DIVERGED_ABOVE: f32 = 1e18;

/// A model read from a weights file, with the input it expects when the file says.
pub struct Loaded {
    pub model: Box<dyn Model>,
    pub input: Option<InputSpec>,
}

/// The task a model file's metadata names (classification when it names none,
/// as files from PyTorch).
fn task_of(meta: &std::collections::BTreeMap<String, String>) -> Result<Task> {
    meta.get("task").map_or(Ok(Task::Classify), |t| t.parse())
}

/// The task of the model in a weights file.
pub fn file_task(weights: &FsPath) -> Result<Task> {
    task_of(&safetensors::metadata(weights)?)
}

/// What a model file must hold: its architecture, task and shape.
pub struct ModelQuery<'a> {
    pub arch: &'a str,
    pub task: Task,
    pub in_channels: usize,
    pub num_classes: usize,
}

/// A trained model from a weights file. The file's architecture must be
/// `arch` and its task `task` (files that name no task hold classifiers);
/// weights holding NaN or infinities are refused.
pub fn load_model(gpu: &Gpu, q: &ModelQuery, weights: &FsPath) -> Result<Loaded> {
    let ModelQuery {
        arch,
        task,
        in_channels,
        num_classes,
    } = *q;
    let meta = safetensors::metadata(weights)?;
    let file_task = task_of(&meta)?;
    if file_task != task {
        return Err(Error::weights(
            weights,
            format!("holds a model for --task {file_task}, but this is --task {task}"),
            format!("pass --task {file_task}, or the weights of a {task} model"),
        ));
    }
    if let Some(a) = meta.get("arch")
        && a != arch
    {
        return Err(Error::weights(
            weights,
            format!("holds a {a} but the model asked for is {arch}"),
            format!("pass --teacher-model {a} (or --model {a}), or the weights of a {arch}"),
        ));
    }
    let input = InputSpec::from_meta(&meta, weights)?;
    let model = build_model(
        gpu,
        &ModelSpec {
            arch: arch.into(),
            in_channels,
            num_classes,
            task,
        },
        0,
    )?;
    safetensors::load(model.as_ref(), weights)?;
    Ok(Loaded { model, input })
}

struct Teacher {
    model: Box<dyn Model>,
    sha256: String,
}

/// The teacher named by the configuration, checked against the data.
fn load_teacher(
    gpu: &Gpu,
    cfg: &RunConfig,
    train: &ImageSet,
) -> Result<Option<(Teacher, Option<InputSpec>)>> {
    let (Some(arch), Some(w)) = (&cfg.teacher_model, &cfg.teacher_weights) else {
        return Ok(None);
    };
    if is_onnx_teacher(arch, w) {
        let model = load_onnx(gpu, w, &cfg.teacher_features, false, cfg, train)?;
        // The normalisation the file names (condenser's exports and fixtures
        // carry it); else the data's statistics, as for any teacher without one.
        let input = model
            .graph
            .input_norm(train.channels)?
            .map(|(mean, std)| InputSpec {
                channels: train.channels,
                height: train.height,
                width: train.width,
                mean,
                std,
                classes: train.classes.clone(),
            });
        let teacher = Teacher {
            model: Box::new(model),
            sha256: file_sha256(w)?,
        };
        return Ok(Some((teacher, input)));
    }
    let q = ModelQuery {
        arch,
        task: cfg.task,
        in_channels: train.channels,
        num_classes: cfg.num_classes(train)?,
    };
    let loaded = load_model(gpu, &q, w)?;
    if let Some(spec) = &loaded.input {
        spec.check_data(train, w)?;
    }
    let teacher = Teacher {
        model: loaded.model,
        sha256: file_sha256(w)?,
    };
    Ok(Some((teacher, loaded.input)))
}

/// `--teacher-model onnx`, or ONNX weights under any teacher name.
fn is_onnx_teacher(arch: &str, weights: &FsPath) -> bool {
    arch == "onnx"
        || weights
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// An ONNX graph as a teacher or student, checked against the data: image
/// shape, class count and task.
fn load_onnx(
    gpu: &Gpu,
    path: &FsPath,
    features: &str,
    trainable: bool,
    cfg: &RunConfig,
    train: &ImageSet,
) -> Result<crate::onnx::OnnxModel> {
    let opts = crate::onnx::OnnxOptions {
        features: features
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        trainable,
        input_hw: Some((train.height, train.width)),
    };
    let m = crate::onnx::OnnxModel::load(gpu, path, &opts)?;
    let [c, h, w] = m.input_chw;
    let mut diffs = Vec::new();
    if (c, h, w) != (train.channels, train.height, train.width) {
        diffs.push(format!(
            "the graph takes {c}x{h}x{w} images (C x H x W), the data has {}x{}x{}",
            train.channels, train.height, train.width
        ));
    }
    if m.task() != cfg.task {
        diffs.push(format!(
            "its output is for --task {}, this run is --task {}",
            m.task(),
            cfg.task
        ));
    }
    let classes = cfg.num_classes(train)?;
    let probe = m
        .shapes
        .iter()
        .rev()
        .find(|(n, _, _)| *n == m.graph.outputs[0])
        .map(|(_, _, s)| s.clone())
        .unwrap_or_default();
    if probe.get(1).is_some_and(|&k| k != classes) {
        diffs.push(format!(
            "it predicts {} classes, the data has {classes}",
            probe[1]
        ));
    }
    if !diffs.is_empty() {
        return Err(Error::weights(
            path,
            format!("does not fit this data: {}", diffs.join("; ")),
            "pass data of the graph's shape (--image-size for resizable data), or export the graph for this data",
        ));
    }
    Ok(m)
}

/// The student `cfg` names: a built-in architecture, or `onnx:<file>`.
fn build_student(gpu: &Gpu, cfg: &RunConfig, train: &ImageSet) -> Result<Box<dyn Model>> {
    if let Some(path) = cfg.student_model.strip_prefix("onnx:") {
        let m = load_onnx(
            gpu,
            FsPath::new(path),
            &cfg.student_features,
            true,
            cfg,
            train,
        )?;
        return Ok(Box::new(m));
    }
    build_model(
        gpu,
        &ModelSpec {
            arch: cfg.student_model.clone(),
            in_channels: train.channels,
            num_classes: cfg.num_classes(train)?,
            task: cfg.task,
        },
        cfg.seed,
    )
}

/// Everything the steps train or read.
struct Parts<'d> {
    teacher: Option<Teacher>,
    student: Box<dyn Model>,
    paths: Vec<Path>,
    agg: Box<dyn Aggregator>,
    opt: Box<dyn Optimizer>,
    params: Vec<Var>,
    /// The student's first layer (GradNorm's shared weights).
    shared: Var,
    /// What each parameter is, for the health report.
    param_names: Vec<String>,
    input: InputSpec,
    loader: Loader<'d>,
    test_loader: Loader<'d>,
    schedule: Schedule,
    /// The teacher's test predictions, for its accuracy and the agreement.
    teacher_pred: Option<Predictions>,
    teacher_acc: Option<f32>,
    /// Classes the models predict.
    classes: usize,
    /// Teacher outputs shared with the other runs of a comparison.
    cache: Option<&'d TeacherCache>,
    /// What makes this run's batches and test set (see `teacher_cache`).
    batch_context: String,
}

fn build_optimizer(cfg: &RunConfig, params: &[Var]) -> Result<Box<dyn Optimizer>> {
    let p = params.to_vec();
    Ok(match cfg.optimizer {
        OptimizerKind::Sgd => Box::new(Sgd::new(p, cfg.momentum, false, cfg.weight_decay)?),
        OptimizerKind::Adam => Box::new(Adam::new(p, cfg.weight_decay, false)?),
        OptimizerKind::AdamW => Box::new(Adam::new(p, cfg.weight_decay, true)?),
    })
}

fn setup<'d>(
    gpu: &Gpu,
    cfg: &RunConfig,
    train: &'d ImageSet,
    test: &'d ImageSet,
    cache: Option<&'d TeacherCache>,
) -> Result<Parts<'d>> {
    cfg.validate_for(train)?;
    let (teacher, teacher_input) = match load_teacher(gpu, cfg, train)? {
        Some((t, i)) => (Some(t), i),
        None => (None, None),
    };
    // The teacher sees its inputs as it was trained to; the student shares them.
    let input = teacher_input.unwrap_or_else(|| InputSpec::new(train, train.channel_stats()));
    let loader = Loader::new(
        gpu,
        train,
        LoaderConfig {
            batch_size: cfg.batch_size,
            shuffle: true,
            crop_pad: cfg.crop_pad,
            flip: cfg.flip,
            normalize: Some(input.norm()),
            seed: cfg.seed,
            drop_last: train.len() > cfg.batch_size,
        },
    )?;
    let test_loader = Loader::new(gpu, test, LoaderConfig::eval(256, Some(input.norm())))?;
    let kinds = parse_paths(&cfg.paths)?;
    let student = build_student(gpu, cfg, train)?;
    let paths = match &teacher {
        Some(t) => build_paths(
            gpu,
            &kinds,
            &student.feature_channels(),
            &t.model.feature_channels(),
            cfg.layerwise,
            cfg.temperature,
            cfg.seed,
        )?,
        None => Vec::new(),
    };
    let agg = build_aggregator(&cfg.aggregate, &paths, gpu)?;
    let mut named: Vec<(String, Var)> = nn::named_parameters(student.as_ref())
        .into_iter()
        .map(|(n, v)| (format!("student {n}"), v))
        .collect();
    let shared = named
        .first()
        .map(|(_, v)| v.clone())
        .ok_or_else(|| Error::Internal("the student has no parameters".into()))?;
    for p in &paths {
        named.extend(
            nn::named_parameters(p)
                .into_iter()
                .map(|(n, v)| (format!("path {} {n}", p.name), v)),
        );
    }
    named.extend(
        agg.params()
            .into_iter()
            .map(|v| ("the aggregator's weights".to_string(), v)),
    );
    let (param_names, params): (Vec<String>, Vec<Var>) = named.into_iter().unzip();
    let opt = build_optimizer(cfg, &params)?;
    let classes = cfg.num_classes(train)?;
    let batch_context = batch_context(cfg, teacher.as_ref(), &input, train, test);
    let (teacher_acc, teacher_pred) = match &teacher {
        Some(t) => {
            let compute = || predictions(t.model.as_ref(), &test_loader, classes);
            let p = match cache {
                Some(c) => c.test_predictions(&batch_context, compute)?,
                None => compute()?,
            };
            (Some(p.scores().primary), Some(p))
        }
        None => (None, None),
    };
    Ok(Parts {
        teacher,
        student,
        paths,
        agg,
        opt,
        params,
        shared,
        param_names,
        input,
        loader,
        test_loader,
        schedule: cfg.schedule(),
        teacher_pred,
        teacher_acc,
        classes,
        cache,
        batch_context,
    })
}

/// Everything that, with a batch's samples, decides the teacher's outputs on
/// it: the teacher file, the data sets, normalisation and crop padding.
fn batch_context(
    cfg: &RunConfig,
    teacher: Option<&Teacher>,
    input: &InputSpec,
    train: &ImageSet,
    test: &ImageSet,
) -> String {
    format!(
        "teacher {} {:?} task {} data {} size {:?} count {:?} test {:?} train {}x{}x{}x{} test {} norm {:?} pad {}",
        teacher.map_or("-", |t| t.sha256.as_str()),
        cfg.teacher_model,
        cfg.task,
        cfg.data,
        cfg.image_size,
        cfg.shapes_count,
        cfg.test_limit,
        train.len(),
        train.channels,
        train.height,
        train.width,
        test.len(),
        input.norm(),
        cfg.crop_pad,
    )
}

/// The teacher's outputs on a batch (eval mode, no graph), from the
/// comparison's cache when another run already computed them.
fn teacher_outputs(
    p: &StepParts<'_>,
    teacher: &Teacher,
    x: &Var,
    samples: &[crate::data::loader::SampleSpec],
) -> Result<nn::ModelOutput> {
    let compute = || {
        let _ng = no_grad();
        teacher.model.forward(x, false)
    };
    match p.cache {
        Some(c) => c.batch_outputs(p.batch_context, samples, compute),
        None => compute(),
    }
}

/// What a step's forward and backward read of the run's parts (all but the
/// aggregator, which the step changes, so that a replay can name the
/// modules beside it).
struct StepParts<'a> {
    teacher: Option<&'a Teacher>,
    student: &'a dyn Model,
    paths: &'a [Path],
    opt: &'a dyn Optimizer,
    params: &'a [Var],
    shared: &'a Var,
    cache: Option<&'a TeacherCache>,
    batch_context: &'a str,
    classes: usize,
}

/// A step's losses: the teacher's logits (where paths use the teacher), the
/// supervised loss and each path's.
#[derive(Clone)]
struct StepLosses {
    teacher: Option<Var>,
    ce: Var,
    paths: Vec<Var>,
}

/// One batch's forward passes, losses and the aggregator's backward (the
/// gradients, before the update).
fn forward_backward(
    cfg: &RunConfig,
    p: &StepParts<'_>,
    agg: &mut dyn Aggregator,
    batch: &crate::data::loader::Batch,
    ce_cfg: CeConfig,
) -> Result<StepLosses> {
    let x = Var::constant(batch.images.clone());
    // Without paths the teacher is only there for the agreement metric.
    let t_out = match p.teacher.filter(|_| !p.paths.is_empty()) {
        Some(t) => Some(teacher_outputs(p, t, &x, &batch.samples)?),
        None => None,
    };
    let s_out = p.student.forward(&x, true)?;
    let ce = supervised_loss(cfg.task, &s_out, batch, ce_cfg, p.classes)?;
    // Per-pixel labels (their ignored pixels) matter to segmentation's soft path only.
    let pixel_labels = batch.masks.as_ref().filter(|_| cfg.task == Task::Segment);
    let losses: Vec<Var> = match &t_out {
        Some(t) => p
            .paths
            .iter()
            .map(|path| path.loss(&s_out, t, pixel_labels, true))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    p.opt.zero_grad();
    agg.backward(&ce, &losses, p.params, p.shared)?;
    Ok(StepLosses {
        teacher: t_out.map(|t| t.logits),
        ce,
        paths: losses,
    })
}

/// The optimiser's parameters as a module (for a replay's identity: the
/// aggregator's weights belong to no model).
struct Trainables<'a>(&'a [Var]);

impl Module for Trainables<'_> {
    fn visit(&self, _prefix: &str, f: &mut dyn FnMut(String, nn::Entry)) {
        for p in self.0 {
            f(String::new(), nn::Entry::Param(p));
        }
    }
}

/// The batch tensors a replayed step reads (each batch is copied into
/// them) and the step's replay (`tasks::replay`).
struct StaticStep {
    batch: crate::data::loader::Batch,
    replay: StepReplay<StepLosses>,
}

impl StaticStep {
    fn new(batch: &crate::data::loader::Batch) -> Result<StaticStep> {
        let like = |t: &Tensor| Tensor::empty(t.gpu(), t.shape(), t.dtype());
        Ok(StaticStep {
            batch: crate::data::loader::Batch {
                images: like(&batch.images)?,
                labels: like(&batch.labels)?,
                masks: batch.masks.as_ref().map(like).transpose()?,
                boxes: None,
                samples: Vec::new(),
            },
            replay: StepReplay::new(),
        })
    }

    /// Copies `batch` into the step's tensors; false where its shapes differ.
    fn load(&mut self, batch: &crate::data::loader::Batch) -> Result<bool> {
        let s = &mut self.batch;
        let same = |a: &Tensor, b: &Tensor| a.shape() == b.shape() && a.dtype() == b.dtype();
        let masks_fit = match (&s.masks, &batch.masks) {
            (Some(a), Some(b)) => same(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same(&s.images, &batch.images) || !same(&s.labels, &batch.labels) || !masks_fit {
            return Ok(false);
        }
        s.images.copy_from(&batch.images)?;
        s.labels.copy_from(&batch.labels)?;
        if let (Some(a), Some(b)) = (&s.masks, &batch.masks) {
            a.copy_from(b)?;
        }
        s.boxes = batch.boxes.clone();
        s.samples = batch.samples.clone();
        Ok(true)
    }
}

/// A step's losses and gradients: replayed from a capture where the
/// aggregator allows it and the batch fits the step's tensors (see
/// `tasks::replay`; detection's host-made targets and the comparison's
/// cached teacher outputs differ every step, so those steps never replay),
/// else recorded as usual.
fn step_losses(
    cfg: &RunConfig,
    p: &StepParts<'_>,
    agg: &mut dyn Aggregator,
    batch: &crate::data::loader::Batch,
    ce_cfg: CeConfig,
    fixed: &mut Option<StaticStep>,
) -> Result<StepLosses> {
    let agg_key = agg.replay_key().filter(|_| crate::tasks::replay::enabled());
    let Some(agg_key) = agg_key else {
        return forward_backward(cfg, p, agg, batch, ce_cfg);
    };
    if fixed.is_none() {
        *fixed = Some(StaticStep::new(batch)?);
    }
    let st = fixed.as_mut().expect("just made");
    // Steps that never repeat (host-made targets, cached teacher outputs)
    // run on the batch itself: no copy into the fixed tensors.
    if st.replay.off().is_some() || !st.load(batch)? {
        return forward_backward(cfg, p, agg, batch, ce_cfg);
    }
    let b = &st.batch;
    let mut key = vec![
        b.images.buffer().id(),
        b.labels.buffer().id(),
        b.masks.as_ref().map_or(0, |m| m.buffer().id()),
    ];
    key.extend(agg_key);
    // The aggregator's parameters (and the rest, again) by their buffers;
    // their gradients are the step's own: `Trainables` reads them when due.
    let trainables = Trainables(p.params);
    let mut modules: Vec<&dyn Module> = vec![p.student as &dyn Module, &trainables];
    if let Some(t) = p.teacher {
        modules.push(t.model.as_ref() as &dyn Module);
    }
    modules.extend(p.paths.iter().map(|x| x as &dyn Module));
    let gpu = b.images.gpu().clone();
    let parts = crate::tasks::replay::StepParts {
        key: &key,
        modules: &modules,
    };
    st.replay
        .step(&gpu, parts, || forward_backward(cfg, p, agg, b, ce_cfg))
}

/// Device-side marks of the first step at which a watched number went bad.
struct Health {
    marks: Tensor,
    labels: Vec<String>,
    paths: usize,
}

impl Health {
    const TEACHER: usize = 0;
    const CE: usize = 1;

    fn new(gpu: &Gpu, parts: &Parts<'_>) -> Result<Health> {
        let mut labels = vec![
            "the teacher's outputs".to_string(),
            "the cross-entropy loss".to_string(),
        ];
        labels.extend(
            parts
                .paths
                .iter()
                .map(|p| format!("the {} path's loss", p.name)),
        );
        labels.extend(
            parts
                .param_names
                .iter()
                .map(|n| format!("the parameter {n}")),
        );
        let marks = Tensor::from_u32(gpu, &[labels.len()], &vec![0; labels.len()])?;
        Ok(Health {
            marks,
            labels,
            paths: parts.paths.len(),
        })
    }

    fn mark(&self, slot: usize, v: &Tensor, step: usize) -> Result<()> {
        crate::ops::health::mark_bad(&self.marks, slot, v, step, DIVERGED_ABOVE)
    }

    fn mark_step(
        &self,
        step: usize,
        teacher: Option<&Var>,
        ce: &Var,
        losses: &[Var],
    ) -> Result<()> {
        if let Some(t) = teacher {
            self.mark(Self::TEACHER, t.value(), step)?;
        }
        self.mark(Self::CE, ce.value(), step)?;
        for (k, l) in losses.iter().enumerate() {
            self.mark(2 + k, l.value(), step)?;
        }
        Ok(())
    }

    fn mark_params(&self, step: usize, params: &[Var]) -> Result<()> {
        for (i, p) in params.iter().enumerate() {
            self.mark(2 + self.paths + i, p.value(), step)?;
        }
        Ok(())
    }

    /// Fails, naming the first number that went bad and where to go from here.
    fn check(&self, cfg: &RunConfig, steps_per_epoch: usize, saved_epochs: usize) -> Result<()> {
        let marks = self.marks.to_vec_u32()?;
        let Some((slot, &m)) = marks
            .iter()
            .enumerate()
            .filter(|(_, m)| **m != 0)
            .min_by_key(|(i, m)| (**m, *i))
        else {
            return Ok(());
        };
        let step = (m - 1) as usize;
        let last = if saved_epochs > 0 {
            format!(
                "{} holds the last good state (after epoch {saved_epochs}); nothing diverged was saved",
                crate::fsutil::shown(&cfg.out_dir.join(CHECKPOINT))
            )
        } else {
            "no checkpoint had been written yet".to_string()
        };
        Err(Error::Diverged(format!(
            "training diverged: {} became NaN, infinite or larger than {DIVERGED_ABOVE:e} at step {step} \
             (epoch {}). Lower the learning rate (it is --lr {}), check the input data and the \
             teacher, then start again with --overwrite; {last}",
            self.labels[slot],
            step / steps_per_epoch.max(1),
            short_number(cfg.lr)
        )))
    }
}

/// Where a run starts: epoch, result so far, and the log's valid length.
struct Start {
    epoch: usize,
    result: RunResult,
    log_bytes: u64,
}

fn resume(cfg: &RunConfig, parts: &mut Parts<'_>, gpu: &Gpu) -> Result<Option<Start>> {
    let ckpt = cfg.out_dir.join(CHECKPOINT);
    if !(cfg.resume && ckpt.exists()) {
        return Ok(None);
    }
    let sha = parts.teacher.as_ref().map(|t| t.sha256.as_str());
    let meta = CheckpointMeta::read(&ckpt, cfg, sha)?;
    if meta.epoch > cfg.epochs {
        return Err(Error::checkpoint(
            &ckpt,
            format!(
                "holds {} epochs, more than --epochs {}",
                meta.epoch, cfg.epochs
            ),
            "resume with the run's own number of epochs",
        ));
    }
    let load = |m: &dyn Module, prefix| {
        safetensors::load_prefixed(m, &ckpt, prefix).map_err(as_checkpoint)
    };
    load(parts.student.as_ref(), "student")?;
    for p in &parts.paths {
        load(p, "paths")?;
    }
    let opt_state = safetensors::load_tensors(gpu, &ckpt, "optim.").map_err(as_checkpoint)?;
    let state_error = |e: Error| {
        Error::checkpoint(
            &ckpt,
            format!("its saved state does not fit this run: {e}"),
            "pass --overwrite (without --resume) to start over",
        )
    };
    parts.opt.load_state(&opt_state).map_err(state_error)?;
    parts
        .agg
        .load_state(&meta.aggregator)
        .map_err(state_error)?;
    Ok(Some(Start {
        epoch: meta.epoch,
        result: meta.result,
        log_bytes: meta.log_bytes,
    }))
}

/// Runs one configuration to the end (or from its checkpoint with `resume`).
pub fn run(gpu: &Gpu, cfg: &RunConfig) -> Result<RunResult> {
    run_with_cache(gpu, cfg, None)
}

/// `run`, sharing the teacher's outputs through `cache` with other runs
/// (those of one comparison).
pub fn run_with_cache(
    gpu: &Gpu,
    cfg: &RunConfig,
    cache: Option<&TeacherCache>,
) -> Result<RunResult> {
    let t0 = Instant::now();
    cfg.validate()?;
    let mut cfg = cfg.clone();
    resolve_out_dir(&mut cfg)?;
    let lock = open_run_dir(&cfg)?;
    let result = run_locked(gpu, &cfg, t0, cache);
    if result.is_err() {
        // A fresh run that failed before logging anything leaves no trace
        // (its empty log would make the next attempt ask for --overwrite).
        let log = cfg.out_dir.join(METRICS);
        if lock.created() && std::fs::metadata(&log).is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(&log);
        }
        lock.discard_if_unused();
    }
    result
}

fn run_locked(
    gpu: &Gpu,
    cfg: &RunConfig,
    t0: Instant,
    cache: Option<&TeacherCache>,
) -> Result<RunResult> {
    let (train, test) = cfg.load_data()?;
    let mut parts = setup(gpu, cfg, &train, &test, cache)?;
    let start = match resume(cfg, &mut parts, gpu)? {
        Some(s) => s,
        None => Start {
            epoch: 0,
            result: RunResult {
                name: if cfg.name.is_empty() {
                    cfg.aggregate.to_string()
                } else {
                    cfg.name.clone()
                },
                path_names: parts.paths.iter().map(|p| p.name.clone()).collect(),
                params: nn::param_count(parts.student.as_ref()),
                task: cfg.task,
                ..RunResult::default()
            },
            log_bytes: 0,
        },
    };
    let mut result = start.result;
    result.out_dir = cfg.out_dir.clone();
    result.teacher_acc = parts.teacher_acc;
    result.teacher_params = parts
        .teacher
        .as_ref()
        .map_or(0, |t| nn::param_count(t.model.as_ref()));
    let seconds_before = result.seconds;
    let mut log = Log::open(&cfg.out_dir.join(METRICS), start.log_bytes)?;
    let health = Health::new(gpu, &parts)?;
    let steps_per_epoch = parts.loader.batches_per_epoch();
    let bar = progress_bar(
        cfg,
        &result.name,
        start.epoch * steps_per_epoch,
        steps_per_epoch,
    );
    let last = cfg
        .stop_after
        .map_or(cfg.epochs, |n| (start.epoch + n).min(cfg.epochs));
    for epoch in start.epoch..last {
        let means = train_epoch(cfg, &mut parts, &health, &mut log, &mut result, epoch, &bar)?;
        parts.agg.end_epoch(&means);
        result.seconds = seconds_before + t0.elapsed().as_secs_f32();
        finish_epoch(cfg, &parts, &health, &mut log, &mut result, epoch)?;
    }
    bar.finish_and_clear();
    result.seconds = seconds_before + t0.elapsed().as_secs_f32();
    if result.epochs_done == cfg.epochs && (last > start.epoch || !cfg.out_dir.join(MODEL).exists())
    {
        save_model(cfg, &parts, &result)?;
    }
    Ok(result)
}

fn progress_bar(
    cfg: &RunConfig,
    name: &str,
    done: usize,
    per_epoch: usize,
) -> indicatif::ProgressBar {
    if !cfg.progress {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new((cfg.epochs * per_epoch) as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>14} [{bar:30}] {pos}/{len} {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b.set_prefix(name.to_string());
    b.set_position(done as u64);
    b
}

fn named_values(names: &[String], v: &[f32]) -> serde_json::Value {
    names
        .iter()
        .cloned()
        .zip(v.iter().map(|&x| serde_json::json!(x)))
        .collect::<serde_json::Map<String, serde_json::Value>>()
        .into()
}

/// One epoch of steps; returns the mean of each path's logged losses.
fn train_epoch(
    cfg: &RunConfig,
    parts: &mut Parts<'_>,
    health: &Health,
    log: &mut Log,
    result: &mut RunResult,
    epoch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    let steps_per_epoch = parts.loader.batches_per_epoch();
    let ce_cfg = CeConfig {
        label_smoothing: cfg.label_smoothing,
        ignore_index: (cfg.task == Task::Segment).then_some(crate::data::IGNORE as u32),
    };
    let mut sums = vec![0f32; parts.paths.len()];
    let mut samples = 0usize;
    let mut t_log = Instant::now();
    // The batch tensors replayed steps read; dropped with the epoch, so that
    // evaluation and the next epoch find the pool as before.
    let mut fixed: Option<StaticStep> = None;
    for (b, batch) in parts.loader.epoch(epoch).enumerate() {
        let batch = batch?;
        let step = epoch * steps_per_epoch + b;
        let lr = parts.schedule.lr(
            cfg.lr,
            epoch as f32 + b as f32 / steps_per_epoch as f32,
            cfg.warmup_epochs,
        );
        let p = StepParts {
            teacher: parts.teacher.as_ref(),
            student: parts.student.as_ref(),
            paths: &parts.paths,
            opt: parts.opt.as_ref(),
            params: &parts.params,
            shared: &parts.shared,
            cache: parts.cache,
            batch_context: &parts.batch_context,
            classes: parts.classes,
        };
        let out = step_losses(cfg, &p, parts.agg.as_mut(), &batch, ce_cfg, &mut fixed)?;
        health.mark_step(step, out.teacher.as_ref(), &out.ce, &out.paths)?;
        parts.opt.step(lr)?;
        let (ce, losses) = (out.ce, out.paths);
        if step.is_multiple_of(cfg.log_every) || b + 1 == steps_per_epoch {
            health.mark_params(step, &parts.params)?;
            health.check(cfg, steps_per_epoch, epoch)?;
            let ce_v = ce.value().item()?;
            let lv: Vec<f32> = losses
                .iter()
                .map(|l| l.value().item())
                .collect::<Result<_>>()?;
            for (s, v) in sums.iter_mut().zip(&lv) {
                *s += v;
            }
            samples += 1;
            let w = parts.agg.weights()?;
            let ips =
                (cfg.log_every * cfg.batch_size) as f32 / t_log.elapsed().as_secs_f32().max(1e-6);
            t_log = Instant::now();
            result.weight_history.push((step, w.clone()));
            log.write(serde_json::json!({
                "type": "step", "step": step, "epoch": epoch, "lr": lr, "ce": ce_v,
                "losses": named_values(&result.path_names, &lv),
                "weights": named_values(&result.path_names, &w),
                "images_per_s": ips,
            }))?;
            bar.set_message(format!(
                "ce {ce_v:.3} acc {:.3}",
                result.curve.last().copied().unwrap_or(0.0)
            ));
        }
        bar.inc(1);
    }
    Ok(sums.iter().map(|s| s / samples.max(1) as f32).collect())
}

/// The task's own loss on the batch's truth: cross-entropy on image labels
/// or on pixels (ignoring `IGNORE`), or the detection loss on box targets.
fn supervised_loss(
    task: Task,
    out: &nn::ModelOutput,
    batch: &crate::data::loader::Batch,
    ce: CeConfig,
    classes: usize,
) -> Result<Var> {
    let missing = |what: &str| Error::Internal(format!("a {task} batch came without {what}"));
    match task {
        Task::Classify => F::cross_entropy(&out.logits, &batch.labels, ce),
        Task::Segment => F::cross_entropy(
            &out.logits,
            batch.masks.as_ref().ok_or_else(|| missing("masks"))?,
            ce,
        ),
        Task::Detect => {
            let boxes = batch.boxes.as_ref().ok_or_else(|| missing("boxes"))?;
            let reg = out.boxes.as_ref().ok_or_else(|| missing("a box head"))?;
            let sh = out.logits.shape();
            let targets = crate::tasks::detection::render_targets(boxes, classes, (sh[2], sh[3]));
            crate::tasks::detection::loss(&out.logits, reg, &targets)
        }
    }
}

/// After an epoch: test accuracy and agreement, a health check of every
/// parameter, then the checkpoint (student, regressors, optimiser and
/// aggregator state, result so far, the log's length).
fn finish_epoch(
    cfg: &RunConfig,
    parts: &Parts<'_>,
    health: &Health,
    log: &mut Log,
    result: &mut RunResult,
    epoch: usize,
) -> Result<()> {
    let steps_per_epoch = parts.loader.batches_per_epoch();
    let last_step = (epoch + 1) * steps_per_epoch - 1;
    health.mark_params(last_step, &parts.params)?;
    health.check(cfg, steps_per_epoch, epoch)?;
    let pred = predictions(parts.student.as_ref(), &parts.test_loader, parts.classes)?;
    let scores = pred.scores();
    let acc = scores.primary;
    let agreement = parts.teacher_pred.as_ref().map(|tp| pred.agreement(tp));
    result.curve.push(acc);
    result.test_acc = acc;
    result.agreement = agreement;
    result.epochs_done = epoch + 1;
    result.extra = scores.extra.clone();
    let mut entry = serde_json::json!({"type": "epoch", "epoch": epoch, "test_acc": acc,
        "agreement": agreement, "teacher_acc": parts.teacher_acc});
    if cfg.task != Task::Classify {
        entry["metric"] = cfg.task.metric().into();
        for (k, v) in &scores.extra {
            entry[k.replace(' ', "_")] = (*v).into();
        }
    }
    log.write(entry)?;
    let log_bytes = log.sync()?;
    let mut tensors: Vec<(String, Tensor)> = parts
        .opt
        .state()
        .into_iter()
        .map(|(k, v)| (format!("optim.{k}"), v))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut modules: Vec<(&str, &dyn Module)> =
        vec![("student", parts.student.as_ref() as &dyn Module)];
    for p in &parts.paths {
        modules.push(("paths", p as &dyn Module));
    }
    let meta = CheckpointMeta {
        epoch: epoch + 1,
        config: cfg.clone(),
        aggregator: parts.agg.state()?,
        result: result.clone(),
        log_bytes,
        teacher_sha256: parts.teacher.as_ref().map(|t| t.sha256.clone()),
    };
    let ckpt = cfg.out_dir.join(CHECKPOINT);
    safetensors::save_checkpoint(
        &ckpt,
        &modules,
        &tensors,
        &[
            (CheckpointMeta::KEY, meta.to_json()),
            ("arch", cfg.student_model.clone()),
        ],
    )
    .map_err(as_checkpoint)
}

/// The trained student alone, loadable as a teacher, by `eval` or by PyTorch:
/// with its architecture, the input it expects and its normalisation.
fn save_model(cfg: &RunConfig, parts: &Parts<'_>, result: &RunResult) -> Result<()> {
    let mut meta = vec![
        ("arch", cfg.student_model.clone()),
        ("task", cfg.task.to_string()),
        ("data", cfg.data.clone()),
        (nn::input::KEY, parts.input.to_json()),
        ("test_acc", result.test_acc.to_string()),
        ("epochs", result.epochs_done.to_string()),
    ];
    if let Some(a) = result.agreement {
        meta.push(("agreement", a.to_string()));
    }
    safetensors::save(parts.student.as_ref(), &cfg.out_dir.join(MODEL), &meta)?;
    save_onnx(cfg, parts)
}

/// The student as ONNX beside its weights (`model.onnx`), for deployment.
/// A model whose forward pass has no ONNX form gets a warning, not a failed run.
fn save_onnx(cfg: &RunConfig, parts: &Parts<'_>) -> Result<()> {
    let i = &parts.input;
    let opts = crate::onnx::export::ExportOptions {
        fold_bn: false,
        norm: Some(i.norm()),
    };
    let path = cfg.out_dir.join(ONNX_MODEL);
    let chw = [i.channels, i.height, i.width];
    match crate::onnx::export::save(parts.student.as_ref(), chw, &path, &opts, true) {
        Err(Error::Config(why)) => {
            eprintln!("warning: no {ONNX_MODEL} for this run: {why}");
            Ok(())
        }
        other => other,
    }
}

/// The normalisation and input shape of a model file, or, for files that do
/// not carry them (older runs, PyTorch exports), the statistics of `fallback`
/// with a warning on stderr.
pub fn input_of(
    weights: &FsPath,
    fallback: impl FnOnce() -> Result<ImageSet>,
) -> Result<InputSpec> {
    let meta = safetensors::metadata(weights)?;
    if let Some(spec) = InputSpec::from_meta(&meta, weights)? {
        return Ok(spec);
    }
    let set = fallback()?;
    eprintln!(
        "warning: {} does not say how its inputs were normalised; using the statistics of {} \
         ({} images) as training would have",
        crate::fsutil::shown(weights),
        set.name,
        set.len()
    );
    Ok(InputSpec::new(&set, set.channel_stats()))
}

/// Where the model file of a run in `dir` is.
pub fn model_path(dir: &FsPath) -> PathBuf {
    dir.join(MODEL)
}

/// A number as a user would type it: plain where that is short, else in
/// exponent form (1e30, not 31 digits).
fn short_number(v: f32) -> String {
    let plain = v.to_string();
    if plain.len() <= 10 {
        plain
    } else {
        format!("{v:e}")
    }
}
