//! The picture a comparison of a dense task ends with: the first test images
//! with their ground truth and the predictions of the teacher and the
//! students, side by side (report::figure).

use std::path::{Path as FsPath, PathBuf};

use super::trainer::{ModelQuery, RunConfig, input_of, load_model};
use crate::autograd::{Var, no_grad};
use crate::data::loader::{Loader, LoaderConfig};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::report::figure::{Figure, FigureRow, Layer};
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
        let pred = crate::ops::argmax(out.logits.value(), Some(1))?.to_vec_u32()?;
        let hw = test.height * test.width;
        for (i, row) in rows.iter_mut().enumerate() {
            row.panels.push(Layer::Mask(
                pred[i * hw..(i + 1) * hw]
                    .iter()
                    .map(|&v| v as u8)
                    .collect(),
            ));
        }
        titles.push(m.title.clone());
    }
    let fg: Vec<String> = test.mask_classes.iter().skip(1).cloned().collect();
    Figure {
        shape: [test.channels, test.height, test.width],
        titles: &titles,
        rows: &rows,
        classes: &fg,
    }
    .draw()?
    .save_png(out)
}
