//! `condenser compare` and `condenser demo`: several configurations against the
//! same teacher and seeds, a results table (Markdown + CSV) and plots.

use std::path::{Path as FsPath, PathBuf};

use super::aggregate::AggregateSpec;
use super::teacher_cache::TeacherCache;
use super::trainer::{RunConfig, RunResult, run, run_with_cache};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::report::plot::{LineChart, Series};
use crate::report::table;

/// What to compare.
#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// Data, student, schedule, ...; teacher_model names the teacher.
    pub base: RunConfig,
    /// Run names: student, soft, hint, at, nst, logits, affinity (one path, hand-tuned
    /// weight), equal, hand, adaptive, gradnorm, dwa, pcgrad, mgda (all paths).
    pub runs: Vec<String>,
    pub seeds: Vec<u64>,
    /// Paths for the aggregated runs.
    pub all_paths: String,
    /// Epochs for training the teacher when no weights are given.
    pub teacher_epochs: usize,
    /// Bytes of teacher outputs kept for the runs of a seed to share (0: none).
    pub teacher_cache_bytes: u64,
    /// Bytes of teacher outputs past that kept in spill files in the
    /// comparison's `.teacher-cache` folder, removed at the end (0: none).
    pub teacher_cache_disk_bytes: u64,
    pub out_dir: PathBuf,
}

/// Teacher outputs kept per seed by default: a demo's seed needs ~0.8 GiB.
pub const DEFAULT_TEACHER_CACHE_BYTES: u64 = 2 << 30;

pub const DEFAULT_RUNS: &str = "student,soft,hint,at,equal,hand,adaptive,gradnorm,dwa";

/// The configuration of one named run.
pub fn variant(
    base: &RunConfig,
    run_name: &str,
    all_paths: &str,
    seed: u64,
    out: &FsPath,
) -> Result<RunConfig> {
    let mut c = base.clone();
    c.name = run_name.to_string();
    c.seed = seed;
    c.out_dir = out.join(format!("{run_name}-s{seed}"));
    match run_name {
        "student" => {
            c.paths = String::new();
            c.aggregate = AggregateSpec::Equal;
        }
        "soft" | "hint" | "at" | "nst" | "logits" | "affinity" | "reg" => {
            c.paths = run_name.into();
            c.aggregate = AggregateSpec::Fixed(None);
        }
        "equal" | "adaptive" | "gradnorm" | "dwa" | "pcgrad" | "mgda" => {
            c.paths = all_paths.into();
            c.aggregate = run_name.parse()?;
        }
        "hand" | "hand-tuned" | "fixed" => {
            c.paths = all_paths.into();
            c.aggregate = AggregateSpec::Fixed(None);
        }
        other => {
            return Err(Error::Config(format!(
                "unknown run {other:?}; use student, soft, hint, at, nst, logits, affinity, reg, equal, hand, adaptive, gradnorm, dwa, pcgrad, mgda"
            )));
        }
    }
    Ok(c)
}

pub struct CompareOutput {
    pub results: Vec<RunResult>,
    pub teacher: Option<(String, f32, usize)>,
    pub markdown: String,
    /// Where the table, plots and runs are.
    pub out_dir: PathBuf,
    /// How often runs found the teacher's outputs computed by an earlier run.
    pub teacher_cache: super::teacher_cache::CacheStats,
}

impl CompareConfig {
    /// Every run name, seed and resulting configuration checked before anything
    /// is trained: a typo in the last run name must not cost the first runs' hours.
    pub fn validate(&self) -> Result<()> {
        if self.runs.is_empty() {
            return Err(Error::Config(format!(
                "no runs to compare; name some, e.g. --runs {DEFAULT_RUNS}"
            )));
        }
        if self.seeds.is_empty() {
            return Err(Error::Config("no seeds given; e.g. --seeds 0,1,2".into()));
        }
        if let Some(d) = first_duplicate(&self.runs) {
            return Err(Error::Config(format!("run {d:?} is named twice in --runs")));
        }
        if let Some(d) = first_duplicate(&self.seeds) {
            return Err(Error::Config(format!("seed {d} is named twice in --seeds")));
        }
        let teacher = self
            .base
            .teacher_model
            .as_ref()
            .ok_or_else(|| Error::Config("compare needs --teacher-model".into()))?;
        if self.base.teacher_weights.is_none() && self.teacher_epochs == 0 {
            return Err(Error::range(
                "teacher epochs",
                0,
                "at least 1 (or pass --teacher-weights)",
            ));
        }
        let mut base = self.base.clone();
        // Stand-in weights path so that the teacher check passes before it is trained.
        base.teacher_weights
            .get_or_insert_with(|| PathBuf::from(format!("{teacher}.safetensors")));
        for name in &self.runs {
            variant(
                &base,
                name,
                &self.all_paths,
                self.seeds[0],
                FsPath::new("."),
            )?
            .validate()
            .map_err(|e| Error::Config(format!("run {name:?}: {e}")))?;
        }
        Ok(())
    }
}

fn first_duplicate<T: PartialEq + Clone>(v: &[T]) -> Option<T> {
    v.iter()
        .enumerate()
        .find(|(i, x)| v[..*i].contains(x))
        .map(|(_, x)| x.clone())
}

/// The files `compare` writes at the top of its folder.
const OUTPUTS: &[&str] = &["table.md", "table.csv", "results.json"];

/// Locks the comparison's folder; refuses one that holds an earlier comparison
/// unless resuming or overwriting.
fn open_compare_dir(cc: &CompareConfig, out: &FsPath) -> Result<crate::fsutil::DirLock> {
    let lock = crate::fsutil::DirLock::acquire(out)?;
    let mut found: Vec<String> = OUTPUTS
        .iter()
        .filter(|f| out.join(f).exists())
        .map(|f| f.to_string())
        .collect();
    if out.join("teacher").exists() {
        found.push("teacher/".into());
    }
    for seed in &cc.seeds {
        for r in &cc.runs {
            let d = format!("{r}-s{seed}");
            if out.join(&d).exists() {
                found.push(format!("{d}/"));
            }
        }
    }
    if !found.is_empty() && !cc.base.resume && !cc.base.overwrite {
        found.truncate(6);
        return Err(Error::RunExists {
            path: crate::fsutil::shown(out),
            found: found.join(", "),
        });
    }
    Ok(lock)
}

/// Trains the teacher if needed, then every run for every seed; writes
/// table.md, table.csv, results.json, accuracy.png and weights_<run>.png.
pub fn compare(
    gpu: &Gpu,
    cc: &CompareConfig,
    on_result: &mut dyn FnMut(&RunResult),
) -> Result<CompareOutput> {
    cc.validate()?;
    let out_dir = if cc.out_dir.as_os_str().is_empty() {
        crate::fsutil::fresh_dir(FsPath::new("runs/compare"))
    } else {
        cc.out_dir.clone()
    };
    let _lock = open_compare_dir(cc, &out_dir)?;
    let cc = &CompareConfig {
        out_dir: out_dir.clone(),
        ..cc.clone()
    };
    let mut base = cc.base.clone();
    let teacher_arch = base
        .teacher_model
        .clone()
        .ok_or_else(|| Error::Config("compare needs --teacher-model".into()))?;
    let mut teacher_row = None;
    if base.teacher_weights.is_none() {
        let tcfg = RunConfig {
            name: format!("teacher {teacher_arch}"),
            student_model: teacher_arch.clone(),
            teacher_model: None,
            teacher_weights: None,
            paths: String::new(),
            aggregate: AggregateSpec::Equal,
            epochs: cc.teacher_epochs,
            seed: 0,
            out_dir: cc.out_dir.join("teacher"),
            ..base.clone()
        };
        let r = run(gpu, &tcfg)?;
        if r.epochs_done < tcfg.epochs {
            return Err(stopped(&r));
        }
        on_result(&r);
        teacher_row = Some((teacher_arch.clone(), r.test_acc, r.params));
        base.teacher_weights = Some(tcfg.out_dir.join("model.safetensors"));
    }
    let mut results = Vec::new();
    let cache = TeacherCache::with_disk(
        gpu,
        cc.teacher_cache_bytes,
        cc.out_dir.join(".teacher-cache"),
        cc.teacher_cache_disk_bytes,
    );
    for &seed in &cc.seeds {
        // Another seed, other batches: nothing cached for this one applies.
        cache.clear_batches();
        for name in &cc.runs {
            let cfg = variant(&base, name, &cc.all_paths, seed, &cc.out_dir)?;
            let r = run_with_cache(gpu, &cfg, Some(&cache))?;
            if r.epochs_done < cfg.epochs {
                return Err(stopped(&r));
            }
            if teacher_row.is_none() {
                teacher_row = r
                    .teacher_acc
                    .map(|a| (teacher_arch.clone(), a, r.teacher_params));
            }
            on_result(&r);
            results.push(r);
        }
    }
    let rows = table::rows(&results);
    let cols = table::Columns::of(&results);
    let t = teacher_row.as_ref().map(|(n, a, p)| (n.as_str(), *a, *p));
    let md = table::markdown(&rows, t, &cols);
    let io = |p: &FsPath, data: &[u8]| crate::fsutil::write_atomic(p, data);
    io(&cc.out_dir.join("table.md"), md.as_bytes())?;
    io(
        &cc.out_dir.join("table.csv"),
        table::csv(&rows, t, &cols).as_bytes(),
    )?;
    io(
        &cc.out_dir.join("results.json"),
        serde_json::to_string_pretty(&results)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    plots(&results, &cc.out_dir)?;
    if base.task != crate::tasks::Task::Classify {
        prediction_figure(gpu, cc, &base, &teacher_arch)?;
    }
    Ok(CompareOutput {
        results,
        teacher: teacher_row,
        markdown: md,
        out_dir,
        teacher_cache: cache.stats(),
    })
}

/// predictions.png: the teacher, the student alone and the adaptive run (or
/// the last one compared) on the first test images, first seed.
fn prediction_figure(gpu: &Gpu, cc: &CompareConfig, base: &RunConfig, teacher: &str) -> Result<()> {
    use super::showcase::{Shown, dense_figure};
    let Some(weights) = base.teacher_weights.clone() else {
        return Ok(());
    };
    // An ONNX teacher has no weights file to draw it from: its column is left out.
    let onnx = weights
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    let mut shown = Vec::new();
    if !onnx {
        shown.push(Shown {
            title: format!("teacher {teacher}"),
            arch: teacher.to_string(),
            weights,
        });
    }
    let seed = cc.seeds[0];
    let last = cc.runs.iter().rev().find(|r| r.as_str() != "student");
    let pick = ["student", "adaptive"]
        .iter()
        .filter(|r| cc.runs.iter().any(|x| x == *r))
        .map(|r| r.to_string())
        .chain(
            last.filter(|_| !cc.runs.iter().any(|x| x == "adaptive"))
                .cloned(),
        );
    for r in pick {
        shown.push(Shown {
            title: format!("{} {r}", base.student_model),
            arch: base.student_model.clone(),
            weights: cc
                .out_dir
                .join(format!("{r}-s{seed}"))
                .join("model.safetensors"),
        });
    }
    dense_figure(gpu, base, &shown, 6, &cc.out_dir.join("predictions.png"))
}

fn stopped(r: &RunResult) -> Error {
    Error::Config(format!(
        "run {} stopped after {} epochs; continue the comparison with --resume",
        r.name, r.epochs_done
    ))
}

/// accuracy.png: mean test accuracy per epoch of each run (over seeds);
/// weights_<run>.png: each path's weight over training (first seed).
pub fn plots(results: &[RunResult], out: &FsPath) -> Result<()> {
    let mut series: Vec<Series> = Vec::new();
    for row in table::rows(results) {
        let runs: Vec<&RunResult> = results.iter().filter(|r| r.name == row.name).collect();
        let epochs = runs.iter().map(|r| r.curve.len()).min().unwrap_or(0);
        let points = (0..epochs)
            .map(|e| {
                (
                    (e + 1) as f32,
                    100.0 * runs.iter().map(|r| r.curve[e]).sum::<f32>() / runs.len() as f32,
                )
            })
            .collect();
        series.push(Series {
            label: row.name.clone(),
            points,
        });
    }
    let metric = table::Columns::of(results).metric;
    let metric = if metric == "test acc" {
        "test accuracy".to_string()
    } else {
        metric
    };
    LineChart {
        title: format!("Student {metric}"),
        x_label: "epoch".into(),
        y_label: format!("{metric} %"),
        series,
        log_y: false,
    }
    .save(&out.join("accuracy.png"), 900, 520)?;
    let mut done = Vec::new();
    for r in results {
        if done.contains(&r.name)
            || r.path_names.is_empty()
            || !matches!(r.name.as_str(), "adaptive" | "gradnorm" | "dwa" | "mgda")
        {
            continue;
        }
        done.push(r.name.clone());
        let series = r
            .path_names
            .iter()
            .enumerate()
            .map(|(k, n)| Series {
                label: n.clone(),
                points: r
                    .weight_history
                    .iter()
                    .filter_map(|(s, w)| w.get(k).map(|&v| (*s as f32, v)))
                    .collect(),
            })
            .collect();
        LineChart {
            title: format!("Path weights over training: {}", r.name),
            x_label: "step".into(),
            y_label: if r.name == "adaptive" {
                "exp(-alpha)".into()
            } else {
                "weight".into()
            },
            series,
            log_y: true,
        }
        .save(&out.join(format!("weights_{}.png", r.name)), 900, 520)?;
    }
    Ok(())
}
