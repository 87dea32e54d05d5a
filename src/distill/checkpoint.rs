//! A run's folder and its checkpoint: the folder is locked for the run's
//! lifetime, never taken over from an earlier run without `resume` or
//! `overwrite`, and cleaned of what a killed run left; the checkpoint holds
//! everything a resumed run needs to continue exactly as an uninterrupted one.

use std::io::Write;
use std::path::{Path as FsPath, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::RunConfig;
use crate::error::{Error, Result};
use crate::fsutil::{DirLock, io_error, shown};
use crate::nn::safetensors;
pub use crate::report::RunResult;

pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const MODEL: &str = "model.safetensors";
/// The same model as ONNX, written beside it.
pub const ONNX_MODEL: &str = "model.onnx";
pub const METRICS: &str = "metrics.jsonl";

/// Chooses the output folder when the configuration names none: a new folder
/// under runs/ that holds no earlier run.
pub fn resolve_out_dir(cfg: &mut RunConfig) -> Result<()> {
    if !cfg.out_dir.as_os_str().is_empty() {
        return Ok(());
    }
    if cfg.resume {
        return Err(Error::Config(
            "--resume needs --out <the folder of the run to continue>".into(),
        ));
    }
    let stem = if cfg.name.is_empty() {
        cfg.student_model.clone()
    } else {
        cfg.name
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-")
    };
    cfg.out_dir = crate::fsutil::fresh_dir(&PathBuf::from("runs").join(stem));
    Ok(())
}

/// The files of an earlier run in `dir`.
fn run_files(dir: &FsPath) -> Vec<&'static str> {
    [CHECKPOINT, MODEL, ONNX_MODEL, METRICS]
        .into_iter()
        .filter(|f| dir.join(f).exists())
        .collect()
}

fn same_file(a: &FsPath, b: &FsPath) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Locks the run's folder and makes it ready: refuses to take over an earlier
/// run unless told to, refuses to write over the teacher's weights, clears
/// what `overwrite` replaces and the temporary files of a killed run.
pub fn open_run_dir(cfg: &RunConfig) -> Result<DirLock> {
    let dir = &cfg.out_dir;
    // The files a run reads that it must never write over: the teacher, and
    // the graph an ONNX student starts from.
    let inputs = [
        ("teacher's weights", cfg.teacher_weights.clone()),
        (
            "student's graph",
            cfg.student_model.strip_prefix("onnx:").map(PathBuf::from),
        ),
    ];
    for (what, file) in inputs {
        if let Some(t) = file
            && [CHECKPOINT, MODEL, ONNX_MODEL]
                .iter()
                .any(|f| same_file(&t, &dir.join(f)))
        {
            return Err(Error::Config(format!(
                "{} ({what}) is a file this run would write; choose another --out",
                shown(&t)
            )));
        }
    }
    let lock = DirLock::acquire(dir)?;
    let found = run_files(dir);
    if !found.is_empty() && !cfg.resume && !cfg.overwrite {
        return Err(Error::RunExists {
            path: shown(dir),
            found: found.join(", "),
        });
    }
    if cfg.resume && !dir.join(CHECKPOINT).exists() && dir.join(MODEL).exists() {
        return Err(Error::checkpoint(
            dir.join(CHECKPOINT),
            format!(
                "does not exist, but {} does: the folder holds a finished model, not a run to resume",
                MODEL
            ),
            "pass --overwrite instead of --resume to replace it, or choose another --out",
        ));
    }
    if cfg.overwrite && !cfg.resume {
        for f in found {
            std::fs::remove_file(dir.join(f)).map_err(|e| io_error(&dir.join(f), e))?;
        }
    }
    crate::fsutil::remove_stale_temps(dir)?;
    Ok(lock)
}

/// SHA-256 of a file's bytes, in hex: a teacher is recognised by its content.
pub fn file_sha256(path: &FsPath) -> Result<String> {
    let (mut f, _) = crate::fsutil::open_regular(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| io_error(path, e))?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The metadata a checkpoint carries besides its tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Epochs completed.
    pub epoch: usize,
    pub config: RunConfig,
    pub aggregator: serde_json::Value,
    pub result: RunResult,
    /// The length of metrics.jsonl when the checkpoint was written: lines past
    /// it belong to an interrupted epoch and are dropped on resume.
    pub log_bytes: u64,
    pub teacher_sha256: Option<String>,
}

impl CheckpointMeta {
    pub const KEY: &'static str = "checkpoint";

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }

    /// Reads a checkpoint's metadata and checks that this configuration (and
    /// teacher) may resume it; the error names every field that differs.
    pub fn read(
        path: &FsPath,
        cfg: &RunConfig,
        teacher_sha: Option<&str>,
    ) -> Result<CheckpointMeta> {
        let meta = safetensors::metadata(path).map_err(as_checkpoint)?;
        let text = meta.get(Self::KEY).ok_or_else(|| {
            Error::checkpoint(
                path,
                "has no run metadata (written by another version of condenser, or not a checkpoint)",
                "resume is not possible: pass --overwrite to start the run again",
            )
        })?;
        let saved: CheckpointMeta = serde_json::from_str(text).map_err(|e| {
            Error::checkpoint(
                path,
                format!("its run metadata is malformed ({e})"),
                "pass --overwrite to start the run again",
            )
        })?;
        let mut diffs = cfg.differences(&saved.config);
        if saved.teacher_sha256.as_deref() != teacher_sha {
            diffs.push(match (&saved.teacher_sha256, teacher_sha) {
                (Some(_), Some(_)) => "teacher: the weights file's content differs from the teacher this run was started with".into(),
                (Some(_), None) => "teacher: the run had a teacher, this one has none".into(),
                (None, _) => "teacher: the run had no teacher, this one has one".into(),
            });
        }
        if !diffs.is_empty() {
            return Err(Error::checkpoint(
                path,
                format!(
                    "was written by a different configuration:\n    {}",
                    diffs.join("\n    ")
                ),
                "resume with the run's own settings, choose another --out, or pass --overwrite \
                 (without --resume) to start over",
            ));
        }
        Ok(saved)
    }
}

/// A weights-file error met while reading a checkpoint, labelled as such.
pub fn as_checkpoint(e: Error) -> Error {
    match e {
        Error::Weights { path, msg, hint } => Error::Checkpoint { path, msg, hint },
        other => other,
    }
}

/// The run's JSON-lines log. Each checkpoint records its length; a resumed run
/// cuts what an interrupted epoch appended after that.
pub struct Log {
    file: std::fs::File,
    path: PathBuf,
}

impl Log {
    pub fn open(path: &FsPath, keep_bytes: u64) -> Result<Log> {
        let io = |e| io_error(path, e);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > keep_bytes {
            file.set_len(keep_bytes).map_err(io)?;
        }
        Ok(Log {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn write(&mut self, v: serde_json::Value) -> Result<()> {
        writeln!(self.file, "{v}").map_err(|e| io_error(&self.path, e))
    }

    /// Flushes to disk and returns the length, for the checkpoint.
    pub fn sync(&mut self) -> Result<u64> {
        let io = |e| io_error(&self.path, e);
        self.file.sync_data().map_err(io)?;
        Ok(self.file.metadata().map_err(io)?.len())
    }
}
