//! The demo's configurations: one comparison per task on the built-in shapes
//! world, each sized for a few minutes on llvmpipe with two cores (README,
//! section Demo, says how long each takes).

use std::path::Path;

use super::compare::{CompareConfig, DEFAULT_RUNS};
use super::trainer::RunConfig;
use crate::optim::ScheduleSpec;
use crate::tasks::Task;

/// The tasks `demo` runs without --task, in order.
pub const TASKS: [Task; 3] = [Task::Classify, Task::Segment, Task::Detect];

/// The runs of a task's demo and the paths of its aggregated runs.
pub fn runs_and_paths(task: Task) -> (&'static str, &'static str) {
    match task {
        Task::Classify => (DEFAULT_RUNS, "soft,hint,at"),
        Task::Segment => (
            "student,soft,hint,at,affinity,equal,hand,adaptive,gradnorm,dwa",
            "soft,hint,at,affinity",
        ),
        Task::Detect => (
            "student,soft,hint,at,reg,equal,hand,adaptive,gradnorm,dwa",
            "soft,hint,at,reg",
        ),
    }
}

/// The demo's comparison for `task`, written to `out`.
pub fn config(out: &Path, quick: bool, task: Task) -> CompareConfig {
    let q = |quick_v, full_v| if quick { quick_v } else { full_v };
    let common = RunConfig {
        task,
        crop_pad: 2,
        flip: true,
        out_dir: out.to_path_buf(),
        progress: !quick,
        schedule: ScheduleSpec::Cosine,
        ..RunConfig::default()
    };
    let (base, teacher_epochs) = match task {
        Task::Classify => (
            RunConfig {
                data: "shapes".into(),
                image_size: Some(24),
                shapes_count: Some(q(512, 1500)),
                test_limit: Some(q(256, 750)),
                teacher_model: Some("cnn32".into()),
                student_model: "cnn4".into(),
                epochs: q(1, 4),
                batch_size: 64,
                lr: 0.1,
                ..common
            },
            q(1, 8),
        ),
        Task::Segment => (
            RunConfig {
                data: "shapes".into(),
                image_size: Some(24),
                shapes_count: Some(q(256, 600)),
                test_limit: Some(q(64, 150)),
                teacher_model: Some("cnn16".into()),
                student_model: "cnn8".into(),
                epochs: q(1, 2),
                batch_size: 16,
                optimizer: super::config::OptimizerKind::Adam,
                lr: 0.01,
                ..common
            },
            q(1, 8),
        ),
        Task::Detect => (
            RunConfig {
                data: "shapes-scenes".into(),
                image_size: Some(48),
                shapes_count: Some(q(256, 500)),
                test_limit: Some(q(64, 100)),
                teacher_model: Some("cnn16".into()),
                student_model: "cnn8".into(),
                epochs: q(1, 2),
                // Batches of 8: twice the steps of 16 for the same work, and
                // on these budgets the steps are what the heads lack.
                batch_size: 8,
                optimizer: super::config::OptimizerKind::Adam,
                lr: 0.003,
                ..common
            },
            q(1, 8),
        ),
    };
    let (runs, paths) = runs_and_paths(task);
    CompareConfig {
        out_dir: out.to_path_buf(),
        base,
        runs: runs.split(',').map(String::from).collect(),
        seeds: vec![0],
        all_paths: paths.into(),
        teacher_epochs,
        teacher_cache_bytes: super::compare::DEFAULT_TEACHER_CACHE_BYTES,
        teacher_cache_disk_bytes: 0,
    }
}
