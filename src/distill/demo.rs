//! The demo's configuration: the shapes world, sized to finish in under ten
//! minutes on llvmpipe with two cores.

use std::path::Path;

use super::compare::{CompareConfig, DEFAULT_RUNS};
use super::trainer::RunConfig;

/// The demo's comparison, written to `out` (None: a new folder under runs/
/// that holds no earlier demo).
pub fn config(out: Option<&Path>, quick: bool) -> CompareConfig {
    let out = out.map_or_else(
        || crate::fsutil::fresh_dir(Path::new("runs/demo")),
        Path::to_path_buf,
    );
    let out = out.as_path();
    let base = RunConfig {
        data: "shapes".into(),
        image_size: Some(24),
        shapes_count: Some(if quick { 512 } else { 3000 }),
        test_limit: Some(if quick { 256 } else { 750 }),
        teacher_model: Some("cnn32".into()),
        student_model: "cnn4".into(),
        epochs: if quick { 1 } else { 4 },
        batch_size: 64,
        lr: 0.1,
        schedule: crate::optim::ScheduleSpec::Cosine,
        crop_pad: 2,
        flip: true,
        out_dir: out.to_path_buf(),
        progress: !quick,
        ..RunConfig::default()
    };
    CompareConfig {
        out_dir: out.to_path_buf(),
        base,
        runs: DEFAULT_RUNS.split(',').map(String::from).collect(),
        seeds: vec![0],
        all_paths: "soft,hint,at".into(),
        teacher_epochs: if quick { 1 } else { 8 },
    }
}
