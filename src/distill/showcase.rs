//! The picture a comparison of a dense task ends with: the first test images
//! with their ground truth and the predictions of the teacher and the
//! students, side by side (report::figure).

use std::path::{Path as FsPath, PathBuf};

use super::trainer::{ModelQuery, RunConfig, input_of, load_model};
use crate::autograd::{Var, no_grad};
use crate::data::loader::{Loader, LoaderConfig};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::report::figure::{Figure, FigureRow, Layer, ScoredBox};
use crate::tasks::Task;

/// A model to show: its column title, architecture and weights.
pub struct Shown {
    pub title: String,
    pub arch: String,
    pub weights: PathBuf,
}

/// Draws the first `count` test images of `cfg`'s data with the truth and each
/// model's predictions to `out` (PNG).
pub fn dense_figure(
    gpu: &Gpu,
    cfg: &RunConfig,
    models: &[Shown],
    count: usize,
    out: &FsPath,
) -> Result<()> {
    let (train, test) = cfg.load_data()?;
    let test = test.take(count);
    let classes = cfg.num_classes(&train)?;
    let truth = |i: usize| -> Result<Layer> {
        match cfg.task {
            Task::Segment => Ok(Layer::Mask(
                test.mask(i)
                    .ok_or_else(|| Error::Internal("a segmentation set without masks".into()))?
                    .to_vec(),
            )),
            Task::Detect => Ok(Layer::Boxes(
                test.boxes
                    .as_ref()
                    .ok_or_else(|| Error::Internal("a detection set without boxes".into()))?[i]
                    .iter()
                    .map(ScoredBox::from)
                    .collect(),
            )),
            t => Err(Error::Config(format!("no figure for --task {t}"))),
        }
    };
    let mut rows: Vec<FigureRow> = (0..test.len())
        .map(|i| {
            Ok(FigureRow {
                image: test.image(i).to_vec(),
                panels: vec![truth(i)?],
            })
        })
        .collect::<Result<_>>()?;
    let mut titles = vec!["truth".to_string()];
    for m in models {
        let input = input_of(&m.weights, || Ok(train.clone()))?;
        let q = ModelQuery {
            arch: &m.arch,
            task: cfg.task,
            in_channels: train.channels,
            num_classes: classes,
        };
        let model = load_model(gpu, &q, &m.weights)?.model;
        let loader = Loader::new(gpu, &test, LoaderConfig::eval(count, Some(input.norm())))?;
        let batch = loader.batch(0, 0)?;
        let _ng = no_grad();
        let out = model.forward(&Var::constant(batch.images), false)?;
        for (row, layer) in rows.iter_mut().zip(layers(&out, &test)?) {
            row.panels.push(layer);
        }
        titles.push(m.title.clone());
    }
    let fg: Vec<String> = match cfg.task {
        Task::Segment => test.mask_classes.iter().skip(1).cloned().collect(),
        _ => test.classes.clone(),
    };
    Figure {
        shape: [test.channels, test.height, test.width],
        titles: &titles,
        rows: &rows,
        classes: &fg,
    }
    .draw()?
    .save_png(out)
}

/// Detections drawn per image: the most confident, at most this many.
const SHOWN_DETECTIONS: usize = 10;
/// ... and only those at least this sure.
const SHOWN_SCORE: f32 = 0.3;

/// What a model's outputs show over each image: the class map, or the
/// confident detections.
fn layers(out: &crate::nn::ModelOutput, test: &crate::data::ImageSet) -> Result<Vec<Layer>> {
    match &out.boxes {
        Some(reg) => Ok(crate::tasks::detection::decode(
            out.logits.value(),
            reg.value(),
            SHOWN_DETECTIONS,
        )?
        .into_iter()
        .map(|d| Layer::Boxes(d.into_iter().filter(|b| b.score >= SHOWN_SCORE).collect()))
        .collect()),
        None => {
            let pred = crate::ops::argmax(out.logits.value(), Some(1))?.to_vec_u32()?;
            let hw = test.height * test.width;
            Ok(pred
                .chunks(hw)
                .map(|m| Layer::Mask(m.iter().map(|&v| v as u8).collect()))
                .collect())
        }
    }
}
