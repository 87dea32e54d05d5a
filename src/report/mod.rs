//! Figures and reports: what a run reports (`RunResult`), result tables, line
//! charts (plotters), sample grids on a PNG canvas. The last stage of the data
//! flow: it depends on no training code.

pub mod canvas;
pub mod figure;
pub mod grid;
pub mod plot;
pub mod table;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a finished (or checkpointed) run reports.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunResult {
    pub name: String,
    pub test_acc: f32,
    pub agreement: Option<f32>,
    pub teacher_acc: Option<f32>,
    /// The teacher's parameter count (0 without a teacher).
    #[serde(default)]
    pub teacher_params: usize,
    /// Test accuracy after each epoch.
    pub curve: Vec<f32>,
    pub path_names: Vec<String>,
    /// Path weights at each logged step: (step, weights).
    pub weight_history: Vec<(usize, Vec<f32>)>,
    pub params: usize,
    pub seconds: f32,
    /// Epochs trained so far (less than the configured number if stopped early).
    #[serde(default)]
    pub epochs_done: usize,
    /// Where the run's files are.
    #[serde(default)]
    pub out_dir: PathBuf,
    /// What the run trained for: `test_acc` and `curve` hold its main metric
    /// (accuracy, mIoU, mAP).
    #[serde(default)]
    pub task: crate::tasks::Task,
    /// The task's other metrics after the last epoch (pixel accuracy, ...).
    #[serde(default)]
    pub extra: Vec<(String, f32)>,
}
