//! The trainer's promises: resume is exact for every aggregator and optimiser
//! (also after a kill mid-epoch), a finished run resumes to its own numbers, a
//! run folder is never taken over or shared, a teacher is recognised by its
//! content, and divergence is caught before anything non-finite is saved.

mod common;
use std::path::{Path, PathBuf};

use common::gpu;
use condenser::distill::trainer::{RunConfig, run};
use condenser::fsutil::DirLock;
use condenser::nn::safetensors;

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("condenser-rel-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tiny(out: &Path) -> RunConfig {
    RunConfig {
        data: "shapes".into(),
        image_size: Some(12),
        shapes_count: Some(192),
        test_limit: Some(64),
        student_model: "cnn4".into(),
        epochs: 3,
        batch_size: 32,
        lr: 0.05,
        schedule: "cosine".parse().unwrap(),
        out_dir: out.to_path_buf(),
        progress: false,
        log_every: 2,
        ..RunConfig::default()
    }
}

/// A small teacher, trained once per test that needs one.
fn teacher(dir: &Path) -> PathBuf {
    let cfg = RunConfig {
        student_model: "cnn8".into(),
        epochs: 1,
        ..tiny(&dir.join("teacher"))
    };
    run(&gpu(), &cfg).unwrap();
    dir.join("teacher/model.safetensors")
}

fn distill(dir: &Path, teacher: &Path, name: &str) -> RunConfig {
    RunConfig {
        teacher_model: Some("cnn8".into()),
        teacher_weights: Some(teacher.to_path_buf()),
        paths: "soft,hint,at".into(),
        out_dir: dir.join(name),
        ..tiny(dir)
    }
}

/// metrics.jsonl without its timings, which differ from run to run.
fn log_without_timing(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}"));
            v.as_object_mut().unwrap().remove("images_per_s");
            v
        })
        .collect()
}

#[test]
fn resume_is_exact_for_every_aggregator_and_optimizer() {
    let g = gpu();
    let dir = tmp("exact");
    let t = teacher(&dir);
    let cases = [
        ("equal", "sgd"),
        ("fixed", "sgd"),
        ("adaptive", "sgd"),
        ("gradnorm", "sgd"),
        ("dwa", "sgd"),
        ("pcgrad", "sgd"),
        ("mgda", "sgd"),
        ("adaptive", "adam"),
        ("equal", "adamw"),
    ];
    for (agg, opt) in cases {
        let cfg = |name: &str| RunConfig {
            aggregate: agg.parse().unwrap(),
            optimizer: opt.parse().unwrap(),
            lr: if opt == "sgd" { 0.05 } else { 0.003 },
            ..distill(&dir, &t, &format!("{agg}-{opt}-{name}"))
        };
        let whole = run(&g, &cfg("whole")).unwrap();
        // Interrupted after two epochs, with the leftovers of a kill during the
        // third: half an epoch of log lines and a torn temporary checkpoint.
        let part = cfg("part");
        let stopped = run(
            &g,
            &RunConfig {
                stop_after: Some(2),
                ..part.clone()
            },
        )
        .unwrap();
        assert_eq!(stopped.epochs_done, 2);
        assert!(
            !part.out_dir.join("model.safetensors").exists(),
            "a stopped run has no final model"
        );
        let log = part.out_dir.join("metrics.jsonl");
        let mut text = std::fs::read_to_string(&log).unwrap();
        text.push_str("{\"type\":\"step\",\"step\":13,\"ce\":1.0}\n{\"type\":\"st");
        std::fs::write(&log, text).unwrap();
        let stale = part.out_dir.join(".checkpoint.safetensors.tmp4242");
        std::fs::write(&stale, b"torn").unwrap();

        let resumed = run(
            &g,
            &RunConfig {
                resume: true,
                ..part.clone()
            },
        )
        .unwrap();
        let what = format!("{agg} with {opt}");
        assert_eq!(resumed.curve, whole.curve, "{what}: accuracy per epoch");
        assert_eq!(
            resumed.weight_history, whole.weight_history,
            "{what}: path weights"
        );
        assert_eq!(
            std::fs::read(part.out_dir.join("model.safetensors")).unwrap(),
            std::fs::read(cfg("whole").out_dir.join("model.safetensors")).unwrap(),
            "{what}: final weights must be byte-identical"
        );
        assert_eq!(
            log_without_timing(&log),
            log_without_timing(&cfg("whole").out_dir.join("metrics.jsonl")),
            "{what}: the log must hold each step once"
        );
        assert!(!stale.exists(), "{what}: stale temporary file left");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_finished_run_resumes_to_its_own_numbers() {
    let g = gpu();
    let dir = tmp("finished");
    let t = teacher(&dir);
    let cfg = RunConfig {
        epochs: 1,
        ..distill(&dir, &t, "done")
    };
    let first = run(&g, &cfg).unwrap();
    let model = cfg.out_dir.join("model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    let again = run(
        &g,
        &RunConfig {
            resume: true,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_eq!(again.test_acc, first.test_acc);
    assert!(again.test_acc > 0.0);
    assert_eq!(again.agreement, first.agreement);
    assert_eq!(again.curve, first.curve);
    assert_eq!(
        std::fs::read(&model).unwrap(),
        bytes,
        "the model file must not change"
    );
    let meta = safetensors::metadata(&model).unwrap();
    assert_eq!(meta["test_acc"], first.test_acc.to_string());
    // Killed between the last checkpoint and the model file: resume writes it.
    std::fs::remove_file(&model).unwrap();
    run(
        &g,
        &RunConfig {
            resume: true,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_eq!(std::fs::read(&model).unwrap(), bytes);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_folder_is_never_taken_over_or_shared() {
    let g = gpu();
    let dir = tmp("folder");
    let cfg = RunConfig {
        epochs: 1,
        ..tiny(&dir.join("r"))
    };
    run(&g, &cfg).unwrap();
    let model = std::fs::read(dir.join("r/model.safetensors")).unwrap();
    let e = run(
        &g,
        &RunConfig {
            lr: 0.1,
            ..cfg.clone()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("already holds a run") && e.contains("--overwrite"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(dir.join("r/model.safetensors")).unwrap(),
        model,
        "refused run changed files"
    );
    // A run that uses the folder's model as its teacher may not write there.
    let e = run(
        &g,
        &RunConfig {
            teacher_model: Some("cnn4".into()),
            teacher_weights: Some(dir.join("r/./model.safetensors")),
            paths: "soft".into(),
            overwrite: true,
            ..cfg.clone()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("teacher's weights") && e.contains("would write"),
        "{e}"
    );
    assert!(dir.join("r/model.safetensors").exists());
    // Another process holding the folder: refused at once, naming it.
    let lock = DirLock::acquire(&dir.join("r")).unwrap();
    let e = run(
        &g,
        &RunConfig {
            overwrite: true,
            ..cfg.clone()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("in use") && e.contains(&format!("pid {}", std::process::id())),
        "{e}"
    );
    drop(lock);
    let r = run(
        &g,
        &RunConfig {
            overwrite: true,
            lr: 0.1,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_eq!(r.curve.len(), 1);
    // The default output folder never lands on an earlier run.
    let here = std::env::current_dir().unwrap();
    let cwd = dir.join("cwd");
    std::fs::create_dir_all(cwd.join("runs/cnn4")).unwrap();
    std::env::set_current_dir(&cwd).unwrap();
    let r = run(
        &g,
        &RunConfig {
            out_dir: PathBuf::new(),
            ..cfg.clone()
        },
    );
    std::env::set_current_dir(here).unwrap();
    assert_eq!(r.unwrap().out_dir, PathBuf::from("runs/cnn4-2"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_teacher_is_recognised_by_content_not_path() {
    let g = gpu();
    let dir = tmp("teacher");
    let t = teacher(&dir);
    let cfg = RunConfig {
        stop_after: Some(1),
        ..distill(&dir, &t, "d")
    };
    run(&g, &cfg).unwrap();
    // The same teacher under another spelling and another place: accepted.
    let copy = dir.join("copy.safetensors");
    std::fs::copy(&t, &copy).unwrap();
    let moved = RunConfig {
        teacher_weights: Some(dir.join("teacher/../copy.safetensors")),
        resume: true,
        ..cfg.clone()
    };
    run(&g, &moved).unwrap();
    // A different teacher at the same path: refused, saying what differs.
    let other = RunConfig {
        student_model: "cnn8".into(),
        epochs: 1,
        seed: 9,
        ..tiny(&dir.join("other"))
    };
    run(&g, &other).unwrap();
    std::fs::copy(dir.join("other/model.safetensors"), &copy).unwrap();
    let e = run(
        &g,
        &RunConfig {
            lr: 0.07,
            epochs: 3,
            ..moved.clone()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("different configuration")
            && e.contains("teacher")
            && e.contains("lr: checkpoint 0.05, now 0.07"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn divergence_is_caught_and_never_saved() {
    let g = gpu();
    let dir = tmp("diverge");
    let cfg = RunConfig {
        lr: 1e38,
        schedule: "constant".parse().unwrap(),
        ..tiny(&dir.join("d"))
    };
    let e = run(&g, &cfg).unwrap_err().to_string();
    assert!(
        e.contains("training diverged") && e.contains("at step") && e.contains("no checkpoint"),
        "{e}"
    );
    // The learning rate as a user would type it again.
    assert!(e.contains("--lr 1e38"), "{e}");
    assert!(
        !dir.join("d/checkpoint.safetensors").exists() && !dir.join("d/model.safetensors").exists()
    );
    // NaN teacher weights are refused when loaded.
    let t = teacher(&dir);
    let bytes = std::fs::read(&t).unwrap();
    let meta = safetensors::metadata(&t).unwrap();
    assert!(
        meta.contains_key("input"),
        "a model file carries its input spec: {meta:?}"
    );
    let mut poisoned = bytes.clone();
    let n = poisoned.len();
    poisoned[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    let bad = dir.join("nan.safetensors");
    std::fs::write(&bad, poisoned).unwrap();
    let e = run(&g, &distill(&dir, &bad, "n")).unwrap_err().to_string();
    assert!(
        e.contains("nan.safetensors") && e.contains("NaN") && e.contains("weights file"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compare_refuses_an_earlier_comparison_and_resumes_to_its_numbers() {
    use condenser::distill::compare::{CompareConfig, compare};
    let g = gpu();
    let dir = tmp("compare");
    let cc = CompareConfig {
        base: RunConfig {
            teacher_model: Some("cnn8".into()),
            epochs: 1,
            ..tiny(&dir)
        },
        runs: vec!["student".into(), "soft".into()],
        seeds: vec![0],
        all_paths: "soft,hint,at".into(),
        teacher_epochs: 1,
        teacher_cache_bytes: 1 << 30,
        teacher_cache_disk_bytes: 0,
        out_dir: dir.clone(),
    };
    let first = compare(&g, &cc, &mut |_| {}).unwrap();
    assert!(first.results.iter().all(|r| r.test_acc > 0.0));
    let e = compare(&g, &cc, &mut |_| {}).err().unwrap().to_string();
    assert!(
        e.contains("already holds a run") && e.contains("table.md"),
        "{e}"
    );
    let mut again = cc.clone();
    again.base.resume = true;
    let second = compare(&g, &again, &mut |_| {}).unwrap();
    assert_eq!(
        second.markdown, first.markdown,
        "a finished comparison resumes to its table"
    );
    assert_eq!(second.teacher.map(|t| t.1), first.teacher.map(|t| t.1));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A comparison's runs share the teacher's outputs per (seed, step); the
/// results must be bit-identical to computing them in every run.
#[test]
fn compare_with_shared_teacher_outputs_matches_computing_them_per_run() {
    use condenser::distill::compare::{CompareConfig, compare};
    let g = gpu();
    let dir = tmp("compare-cache");
    let weights = teacher(&dir);
    let run_compare = |name: &str, budget: (u64, u64)| {
        let out = dir.join(name);
        let cc = CompareConfig {
            base: RunConfig {
                teacher_model: Some("cnn8".into()),
                teacher_weights: Some(weights.clone()),
                epochs: 2,
                ..tiny(&out)
            },
            runs: vec![
                "student".into(),
                "soft".into(),
                "hint".into(),
                "adaptive".into(),
            ],
            seeds: vec![0, 1],
            all_paths: "soft,hint,at".into(),
            teacher_epochs: 1,
            teacher_cache_bytes: budget.0,
            teacher_cache_disk_bytes: budget.1,
            out_dir: out.clone(),
        };
        let r = compare(&g, &cc, &mut |_| {}).unwrap();
        (r, out)
    };
    let (plain, plain_dir) = run_compare("plain", (0, 0));
    let (shared, shared_dir) = run_compare("shared", (1 << 30, 0));
    assert_eq!(
        (plain.teacher_cache.hits, plain.teacher_cache.misses),
        (0, 0)
    );
    // Per seed: "soft" computes every step, "hint" and "adaptive" reuse them.
    let steps = 2 * (192 / 32) as u64;
    assert_eq!(shared.teacher_cache.misses, 2 * steps);
    assert_eq!(shared.teacher_cache.hits, 2 * 2 * steps);
    // Nothing fits device memory (1 byte): every batch goes to a spill file,
    // and the later runs read them back.
    let (spilled, spilled_dir) = run_compare("spilled", (1, 1 << 30));
    let st = spilled.teacher_cache;
    assert_eq!(
        (st.misses, st.hits, st.disk_hits),
        (2 * steps, 4 * steps, 4 * steps)
    );
    assert_eq!((st.entries, st.disk_entries), (0, steps as usize));
    // Spill files for half a seed's batches: the other half is computed.
    let per_batch = shared.teacher_cache.bytes / shared.teacher_cache.entries as u64;
    let (half, half_dir) = run_compare("half", (1, per_batch * steps / 2));
    let st = half.teacher_cache;
    assert_eq!(st.disk_entries, steps as usize / 2);
    assert_eq!((st.hits, st.disk_hits), (2 * steps, 2 * steps));
    // (No count of misses: the later runs' computed steps, which follow one
    // another here, may replay a captured step without asking the cache.)
    for other in [&shared, &spilled, &half] {
        for (a, b) in plain.results.iter().zip(&other.results) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.test_acc.to_bits(), b.test_acc.to_bits(), "{}", a.name);
            assert_eq!(a.curve, b.curve, "{}", a.name);
            assert_eq!(a.weight_history, b.weight_history, "{}", a.name);
        }
    }
    for seed in [0, 1] {
        for run in ["soft", "hint", "adaptive"] {
            let f = format!("{run}-s{seed}/model.safetensors");
            for other in [&shared_dir, &spilled_dir, &half_dir] {
                assert_eq!(
                    std::fs::read(plain_dir.join(&f)).unwrap(),
                    std::fs::read(other.join(&f)).unwrap(),
                    "{f} in {}",
                    other.display()
                );
            }
        }
    }
    // The spill files go when the comparison ends.
    assert!(!spilled_dir.join(".teacher-cache").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
