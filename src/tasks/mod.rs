//! The three tasks: what a model predicts, its supervised loss and its metrics.

pub mod classification;
pub mod detection;
pub mod replay;
pub mod segmentation;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a model is trained to predict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Task {
    /// One class per image: logits [N, K].
    #[default]
    Classify,
    /// One class per pixel: logits [N, K, H, W] at the input's resolution.
    Segment,
    /// Objects as boxes: class heat-maps, sizes and offsets at stride 4.
    Detect,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Segment => "segment",
            Task::Detect => "detect",
        }
    }

    /// The name of the metric a run of this task reports first (tables, logs).
    pub fn metric(self) -> &'static str {
        match self {
            Task::Classify => "test acc",
            Task::Segment => "mIoU",
            Task::Detect => "mAP",
        }
    }
}

impl std::str::FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Task> {
        match s {
            "classify" | "classification" => Ok(Task::Classify),
            "segment" | "segmentation" => Ok(Task::Segment),
            "detect" | "detection" => Ok(Task::Detect),
            o => Err(Error::Config(format!(
                "unknown task {o:?}: use classify, segment or detect"
            ))),
        }
    }
}

impl From<Task> for String {
    fn from(t: Task) -> String {
        t.name().into()
    }
}

named_setting!(Task);

/// A model's predictions over a loader's batches with the truth they are
/// scored against: one class per image (classification) or per pixel
/// (segmentation, `IGNORE` where unknown).
#[derive(Clone)]
pub struct Predictions {
    pub task: Task,
    /// Classification and segmentation: the predicted and true classes.
    pub pred: Vec<u32>,
    pub truth: Vec<u32>,
    /// Detection: each image's detections and true objects.
    pub dets: Vec<Vec<detection::Detection>>,
    pub objects: Vec<Vec<detection::Truth>>,
    /// Classes of the predictions.
    pub classes: usize,
}

/// A detection counts as the teacher's answer for the agreement when the
/// teacher is at least this sure of it.
pub const TEACHER_CONFIDENT: f64 = 0.3;

/// What a run reports after an epoch: the task's main metric (accuracy,
/// mIoU) and any others (pixel accuracy), by name.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    pub primary: f32,
    pub extra: Vec<(String, f32)>,
}

/// The class maps a model predicts for every batch of `loader` (eval mode, no graph).
pub fn predictions(
    model: &dyn crate::nn::Model,
    loader: &crate::data::loader::Loader,
    classes: usize,
) -> Result<Predictions> {
    use crate::autograd::{Var, no_grad};
    let task = model.task();
    let _ng = no_grad();
    let (mut pred, mut truth) = (Vec::new(), Vec::new());
    let (mut dets, mut objects) = (Vec::new(), Vec::new());
    for batch in loader.epoch(0) {
        let batch = batch?;
        let out = model.forward(&Var::constant(batch.images), false)?;
        if task == Task::Detect {
            let (Some(boxes), Some(truth)) = (&out.boxes, &batch.boxes) else {
                return Err(Error::Config(
                    "detection needs a model with a box head and a data set with boxes".into(),
                ));
            };
            let found =
                detection::decode(out.logits.value(), boxes.value(), detection::MAX_DETECTIONS)?;
            dets.extend(
                found
                    .iter()
                    .map(|d| d.iter().map(detection::Detection::from).collect::<Vec<_>>()),
            );
            objects.extend(
                truth
                    .iter()
                    .map(|t| t.iter().map(detection::Truth::from).collect::<Vec<_>>()),
            );
            continue;
        }
        pred.extend(crate::ops::argmax(out.logits.value(), Some(1))?.to_vec_u32()?);
        let t = match task {
            Task::Classify => &batch.labels,
            _ => batch.masks.as_ref().ok_or_else(|| {
                Error::Config(format!(
                    "{} needs segmentation masks, and the data set has none",
                    task.name()
                ))
            })?,
        };
        truth.extend(t.to_vec_u32()?);
    }
    Ok(Predictions {
        task,
        pred,
        truth,
        dets,
        objects,
        classes,
    })
}

impl Predictions {
    pub fn scores(&self) -> Scores {
        match self.task {
            Task::Segment => {
                let s = segmentation::scores(&self.pred, &self.truth, self.classes);
                Scores {
                    primary: s.miou,
                    extra: vec![("pixel acc".into(), s.pixel_acc)],
                }
            }
            Task::Detect => {
                let (map, map50) = detection::mean_ap(&self.dets, &self.objects, self.classes);
                Scores {
                    primary: map.max(0.0) as f32,
                    extra: vec![("mAP@.5".into(), map50.max(0.0) as f32)],
                }
            }
            Task::Classify => Scores {
                primary: classification::agreement(&self.pred, &self.truth),
                extra: Vec::new(),
            },
        }
    }

    /// How far a student reproduces its teacher (`other`): the fraction of
    /// counted positions where both predict the same class; for detection, the
    /// student's mAP@.5 against the teacher's confident detections as truth.
    pub fn agreement(&self, other: &Predictions) -> f32 {
        if self.task == Task::Detect {
            let teacher: Vec<Vec<detection::Truth>> = other
                .dets
                .iter()
                .map(|ds| {
                    ds.iter()
                        .filter(|d| d.score >= TEACHER_CONFIDENT)
                        .map(|d| detection::Truth {
                            b: d.b,
                            class: d.class,
                            crowd: false,
                        })
                        .collect()
                })
                .collect();
            return detection::mean_ap(&self.dets, &teacher, self.classes)
                .1
                .max(0.0) as f32;
        }
        let ignore = crate::data::IGNORE as u32;
        let (mut same, mut n) = (0usize, 0usize);
        for ((a, b), t) in self.pred.iter().zip(&other.pred).zip(&self.truth) {
            if self.task == Task::Classify || *t != ignore {
                n += 1;
                same += (a == b) as usize;
            }
        }
        same as f32 / n.max(1) as f32
    }
}
