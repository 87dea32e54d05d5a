//! A run's configuration (`RunConfig`, from flags or a TOML file): parsed once,
//! checked against the valid range of every field before anything is trained,
//! and compared by meaning when a checkpoint is resumed.

use std::path::{Path as FsPath, PathBuf};

use serde::{Deserialize, Serialize};

use super::aggregate::AggregateSpec;
use super::paths::parse_paths;
use crate::data::{DataOptions, ImageSet, MAX_SIDE, Split, load};
use crate::error::{Error, Result};
use crate::optim::{Schedule, ScheduleSpec};
use crate::tasks::Task;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// A name for tables and plots.
    pub name: String,
    /// classify, segment or detect.
    pub task: Task,
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
    /// Tensors of an ONNX teacher the feature paths attach to, comma-separated,
    /// early to late (empty: the last map at each resolution).
    pub teacher_features: String,
    /// `cnn8`, `resnet8x4`, ... or `onnx:<file.onnx>` (a graph trained as is).
    pub student_model: String,
    /// The same as `teacher_features` for an ONNX student.
    pub student_features: String,
    /// Distillation paths: `soft,hint,at,nst,logits` (empty: none).
    pub paths: String,
    /// equal, fixed[:w,..], adaptive, gradnorm, dwa, pcgrad, mgda.
    pub aggregate: AggregateSpec,
    /// One path per stage for feature paths at several stages.
    pub layerwise: bool,
    pub temperature: f32,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    /// sgd, adam or adamw
    pub optimizer: OptimizerKind,
    /// constant, cosine, step:<every>:<gamma>, multistep:<m1>,<m2>..:<gamma>
    pub schedule: ScheduleSpec,
    pub warmup_epochs: f32,
    pub crop_pad: usize,
    pub flip: bool,
    pub label_smoothing: f32,
    pub seed: u64,
    /// Output folder; empty: a new folder under runs/ that holds no earlier run.
    pub out_dir: PathBuf,
    /// Read losses back and log every this many steps.
    pub log_every: usize,
    /// Continue from the checkpoint in `out_dir`.
    pub resume: bool,
    /// Replace a run that `out_dir` already holds.
    pub overwrite: bool,
    /// Progress bars on the terminal.
    pub progress: bool,
    /// Stop cleanly after this many epochs of this session, as an interruption
    /// would (the checkpoint allows `resume`); for time-boxed sessions and tests.
    #[serde(skip)]
    pub stop_after: Option<usize>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            name: String::new(),
            task: Task::Classify,
            data: "shapes".into(),
            data_dir: None,
            train_limit: None,
            test_limit: None,
            image_size: None,
            shapes_count: None,
            teacher_model: None,
            teacher_weights: None,
            teacher_features: String::new(),
            student_model: "cnn8".into(),
            student_features: String::new(),
            paths: String::new(),
            aggregate: AggregateSpec::Equal,
            layerwise: false,
            temperature: 4.0,
            epochs: 10,
            batch_size: 64,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 5e-4,
            optimizer: OptimizerKind::Sgd,
            schedule: ScheduleSpec::Cosine,
            warmup_epochs: 0.0,
            crop_pad: 0,
            flip: false,
            label_smoothing: 0.0,
            seed: 0,
            out_dir: PathBuf::new(),
            log_every: 10,
            resume: false,
            overwrite: false,
            progress: true,
            stop_after: None,
        }
    }
}

/// The optimiser a run uses, parsed once from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum OptimizerKind {
    Sgd,
    Adam,
    AdamW,
}

impl std::str::FromStr for OptimizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::AdamW),
            o => Err(Error::Config(format!(
                "unknown optimizer {o:?}: use sgd, adam or adamw"
            ))),
        }
    }
}

impl From<OptimizerKind> for String {
    fn from(o: OptimizerKind) -> String {
        match o {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        }
        .into()
    }
}

named_setting!(OptimizerKind);

/// Fields that change how a run is carried out, never what it computes:
/// ignored when a checkpoint's configuration is compared with this run's.
const NOT_COMPARED: &[&str] = &[
    "name",
    "out_dir",
    "resume",
    "overwrite",
    "progress",
    // Compared by content (a hash kept in the checkpoint), not by path.
    "teacher_weights",
];

/// A config value for a message: floats as the f32 they are.
fn show(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(f) if v.is_f64() => (f as f32).to_string(),
        _ => v.to_string(),
    }
}

fn in_range(what: &str, v: f32, ok: bool, range: &str) -> Result<()> {
    if ok && v.is_finite() {
        Ok(())
    } else {
        Err(Error::range(what, v, range))
    }
}

impl RunConfig {
    pub fn from_toml(path: &FsPath) -> Result<RunConfig> {
        let text = crate::fsutil::read_text(path, 1 << 20)?;
        toml::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", crate::fsutil::shown(path))))
    }

    /// Every field against its valid range, before any data is read or any
    /// model built; the error names the field, the value and the range.
    pub fn validate(&self) -> Result<()> {
        let count = |what: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::range(what, v, format!("{lo}..={hi}")))
            }
        };
        count("epochs", self.epochs, 1, 100_000)?;
        count("batch size", self.batch_size, 1, 65_536)?;
        count("log every", self.log_every, 1, usize::MAX)?;
        for (what, v) in [
            ("train limit", self.train_limit),
            ("test limit", self.test_limit),
            ("shapes count", self.shapes_count),
        ] {
            if let Some(v) = v {
                count(what, v, 1, usize::MAX)?;
            }
        }
        if let Some(s) = self.image_size {
            count("image size", s, 1, MAX_SIDE)?;
        }
        if let Some(s) = self.stop_after {
            count("stop after (epochs)", s, 1, usize::MAX)?;
        }
        in_range("lr", self.lr, self.lr > 0.0, "a finite number > 0")?;
        in_range(
            "momentum",
            self.momentum,
            (0.0..1.0).contains(&self.momentum),
            "0 <= momentum < 1",
        )?;
        in_range(
            "weight decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "a finite number >= 0",
        )?;
        in_range(
            "warmup epochs",
            self.warmup_epochs,
            self.warmup_epochs >= 0.0 && self.warmup_epochs <= self.epochs as f32,
            &format!("0..={} (the number of epochs)", self.epochs),
        )?;
        in_range(
            "label smoothing",
            self.label_smoothing,
            (0.0..1.0).contains(&self.label_smoothing),
            "0 <= smoothing < 1",
        )?;
        in_range(
            "temperature",
            self.temperature,
            self.temperature > 0.0 && self.temperature <= 1000.0,
            "0 < T <= 1000",
        )?;
        let paths = parse_paths(&self.paths)?;
        match (&self.teacher_model, &self.teacher_weights, paths.is_empty()) {
            (Some(_), None, _) => Err(Error::Config(
                "--teacher-model needs --teacher-weights (train one with `condenser train`)".into(),
            )),
            (None, Some(_), _) => Err(Error::Config(
                "--teacher-weights needs --teacher-model".into(),
            )),
            (None, None, false) => Err(Error::Config(format!(
                "paths {:?} need a teacher (--teacher-model, --teacher-weights)",
                self.paths
            ))),
            _ => Ok(()),
        }
    }

    /// The classes the models of this run predict: the image classes (also
    /// the object classes of detection), or for segmentation the mask classes
    /// (background included).
    pub fn num_classes(&self, train: &ImageSet) -> Result<usize> {
        match self.task {
            Task::Classify => Ok(train.num_classes()),
            Task::Segment if train.masks.is_none() => Err(Error::data(
                &train.name,
                "has no segmentation masks, which --task segment needs",
                "use a data set with masks: shapes, or voc:<folder> (Pascal VOC layout)",
            )),
            Task::Segment => Ok(train.mask_classes.len()),
            Task::Detect if train.boxes.is_none() => Err(Error::data(
                &train.name,
                "has no boxes, which --task detect needs",
                "use a data set with boxes: shapes-scenes, or coco:<folder> (COCO JSON)",
            )),
            Task::Detect => Ok(train.num_classes()),
        }
    }

    /// Checks that need the data: the crop must leave part of the image.
    pub fn validate_for(&self, train: &ImageSet) -> Result<()> {
        self.num_classes(train)?;
        let stride = crate::nn::dense::DETECT_STRIDE;
        if self.task == Task::Detect
            && !(train.height.is_multiple_of(stride) && train.width.is_multiple_of(stride))
        {
            return Err(Error::range(
                "image size for detection",
                format!("{}x{}", train.height, train.width),
                format!(
                    "sides divisible by {stride} (the heads work at stride {stride}); pass --image-size"
                ),
            ));
        }
        let side = train.height.min(train.width);
        if self.crop_pad > side / 2 {
            return Err(Error::range(
                "crop padding",
                self.crop_pad,
                format!(
                    "0..={} for {side}-pixel images (at most half the side)",
                    side / 2
                ),
            ));
        }
        Ok(())
    }

    /// The learning-rate schedule of this run.
    pub fn schedule(&self) -> Schedule {
        self.schedule.build(self.epochs)
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

    /// The training and test splits; they must hold images of one shape.
    pub fn load_data(&self) -> Result<(ImageSet, ImageSet)> {
        let train = load(
            &self.data,
            Split::Train,
            &self.data_options(self.train_limit),
        )?;
        let test = load(&self.data, Split::Test, &self.data_options(self.test_limit))?;
        let shape = |s: &ImageSet| (s.channels, s.height, s.width);
        if shape(&train) != shape(&test) {
            return Err(Error::data(
                &self.data,
                format!(
                    "the training images are {:?} and the test images {:?} (C, H, W)",
                    shape(&train),
                    shape(&test)
                ),
                "both splits must come from the same data set",
            ));
        }
        if train.classes != test.classes {
            return Err(Error::data(
                &self.data,
                "the training and test splits name different classes",
                "both splits must come from the same data set",
            ));
        }
        Ok((train, test))
    }

    /// The fields in which a checkpoint's configuration differs from this one,
    /// compared by meaning (paths made canonical), as `field: was -> now`.
    pub fn differences(&self, saved: &RunConfig) -> Vec<String> {
        let (a, b) = (saved.canonical(), self.canonical());
        let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (a, b) else {
            return vec!["the configurations could not be compared".into()];
        };
        let mut out = Vec::new();
        for (k, now) in &b {
            if NOT_COMPARED.contains(&k.as_str()) {
                continue;
            }
            let was = a.get(k).unwrap_or(&serde_json::Value::Null);
            // More epochs continue a run whose schedule does not depend on them.
            if k == "epochs" && !self.schedule.depends_on_epochs() {
                continue;
            }
            if was != now {
                out.push(format!("{k}: checkpoint {}, now {}", show(was), show(now)));
            }
        }
        out
    }

    fn canonical(&self) -> serde_json::Value {
        let canon = |p: &FsPath| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let mut c = self.clone();
        c.data_dir = c.data_dir.as_deref().map(canon);
        for prefix in ["folder:", "voc:", "coco:"] {
            if let Some(root) = c.data.strip_prefix(prefix) {
                c.data = format!("{prefix}{}", canon(FsPath::new(root)).display());
            }
        }
        serde_json::to_value(&c).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::{AggregateSpec, RunConfig, ScheduleSpec};

    #[test]
    fn the_shipped_config_parses_and_typos_are_refused() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/distill-fmnist.toml"
        ));
        let c = RunConfig::from_toml(path).unwrap();
        assert_eq!(
            (c.student_model.as_str(), &c.aggregate, c.epochs),
            ("cnn8", &AggregateSpec::Adaptive, 4)
        );
        let bad: Result<RunConfig, _> = toml::from_str("epoch = 3");
        assert!(bad.unwrap_err().to_string().contains("unknown field"));
        let ok: ScheduleSpec = "multistep:60,120:0.2".parse().unwrap();
        assert_eq!(
            String::from(ok.clone()).parse::<ScheduleSpec>().unwrap(),
            ok
        );
        for s in [
            "sometimes",
            "step:0:0.5",
            "step:3:-1",
            "multistep:120,60:0.2",
            "step:2:nan",
        ] {
            let e = s.parse::<ScheduleSpec>().unwrap_err().to_string();
            assert!(e.contains("bad schedule"), "{s}");
            // The same in a TOML file: refused when it is read.
            let e = toml::from_str::<RunConfig>(&format!("schedule = {s:?}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("bad schedule"), "{s}: {e}");
        }
        // Names are parsed once, when read: a bad one never reaches a run.
        for (text, want) in [
            ("optimizer = \"sgdd\"", "unknown optimizer"),
            ("aggregate = \"fixed:1,-2\"", "fixed path weight = -2"),
            ("aggregate = \"fixed:1,inf\"", "fixed path weight = inf"),
        ] {
            let e = toml::from_str::<RunConfig>(text).unwrap_err().to_string();
            assert!(e.contains(want), "want {want:?} in: {e}");
        }
    }

    #[test]
    fn out_of_range_fields_are_refused_with_their_range() {
        let d = RunConfig::default;
        let cases: Vec<(RunConfig, &str)> = vec![
            (RunConfig { epochs: 0, ..d() }, "epochs = 0"),
            (
                RunConfig {
                    batch_size: 0,
                    ..d()
                },
                "batch size = 0",
            ),
            (
                RunConfig {
                    log_every: 0,
                    ..d()
                },
                "log every = 0",
            ),
            (
                RunConfig {
                    momentum: 5.0,
                    ..d()
                },
                "momentum = 5",
            ),
            (
                RunConfig {
                    warmup_epochs: -1.0,
                    ..d()
                },
                "warmup epochs = -1",
            ),
            (RunConfig { lr: 0.0, ..d() }, "lr = 0"),
            (
                RunConfig {
                    lr: f32::NAN,
                    ..d()
                },
                "lr = NaN",
            ),
            (
                RunConfig {
                    weight_decay: -1e-4,
                    ..d()
                },
                "weight decay",
            ),
            (
                RunConfig {
                    temperature: 0.0,
                    ..d()
                },
                "temperature = 0",
            ),
            (
                RunConfig {
                    label_smoothing: 1.0,
                    ..d()
                },
                "label smoothing = 1",
            ),
            (
                RunConfig {
                    train_limit: Some(0),
                    ..d()
                },
                "train limit = 0",
            ),
            (
                RunConfig {
                    image_size: Some(100_000),
                    ..d()
                },
                "image size = 100000",
            ),
            (
                RunConfig {
                    paths: "soft".into(),
                    ..d()
                },
                "need a teacher",
            ),
        ];
        for (c, want) in cases {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(want), "want {want:?} in: {e}");
        }
        RunConfig::default().validate().unwrap();
    }

    #[test]
    fn differences_name_the_fields_and_ignore_how_a_run_is_carried_out() {
        let a = RunConfig::default();
        let b = RunConfig {
            lr: 0.1,
            name: "other".into(),
            progress: false,
            out_dir: "/elsewhere".into(),
            teacher_weights: Some("/moved/t.safetensors".into()),
            ..a.clone()
        };
        assert_eq!(
            b.differences(&a),
            vec!["lr: checkpoint 0.05, now 0.1".to_string()]
        );
        let c = RunConfig {
            epochs: 20,
            schedule: ScheduleSpec::Constant,
            ..a.clone()
        };
        let a_const = RunConfig {
            schedule: ScheduleSpec::Constant,
            ..a.clone()
        };
        assert!(
            c.differences(&a_const).is_empty(),
            "more epochs of a constant schedule continue the run"
        );
        let d = RunConfig {
            epochs: 20,
            ..a.clone()
        };
        assert_eq!(
            d.differences(&a).len(),
            1,
            "a cosine schedule depends on the epochs"
        );
    }
}
