//! The three tasks: what a model predicts, its supervised loss and its metrics.

pub mod classification;
pub mod detection;
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
pub struct Predictions {
    pub task: Task,
    pub pred: Vec<u32>,
    pub truth: Vec<u32>,
    /// Classes of the predictions.
    pub classes: usize,
}

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
    for batch in loader.epoch(0) {
        let batch = batch?;
        let out = model.forward(&Var::constant(batch.images), false)?;
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
            _ => Scores {
                primary: classification::agreement(&self.pred, &self.truth),
                extra: Vec::new(),
            },
        }
    }

    /// The fraction of counted positions where two models predict the same class.
    pub fn agreement(&self, other: &Predictions) -> f32 {
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
