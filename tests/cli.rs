//! The binary's behaviour when the environment is wrong, and the pipeline cache.
//! Each case runs the binary as a child process with its own environment.

mod common;
use std::process::Command;

fn condenser() -> Command {
    Command::new(env!("CARGO_BIN_EXE_condenser"))
}

#[test]
fn no_adapter_is_a_clear_error_not_a_panic() {
    // No Metal on Linux: the adapter search comes back empty.
    let out = condenser()
        .arg("info")
        .env("WGPU_BACKEND", "metal")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if cfg!(target_os = "macos") {
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no GPU adapter found") && err.contains("mesa-vulkan-drivers"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn unknown_adapter_name_lists_the_adapters() {
    let out = condenser()
        .arg("info")
        .env("CONDENSER_ADAPTER", "no-such-adapter-xyz")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no-such-adapter-xyz") && err.contains("adapters found"),
        "{err}"
    );
}

/// One quick bench run of the cases matching `filter`, with its caches
/// (pipelines, autotune winners) in `dir`; it must succeed.
/// Fails the test with the command's stderr unless it succeeded.
fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bench_with_cache(dir: &std::path::Path, filter: &str) {
    let out = condenser()
        .args(["bench", "--quick", "--runs", "1", "--filter", filter])
        .env("CONDENSER_CACHE_DIR", dir)
        .env_remove("CONDENSER_AUTOTUNE")
        .output()
        .unwrap();
    assert_ok(&out);
}

#[test]
fn autotune_winners_are_written_once_and_reused() {
    let dir = std::env::temp_dir().join(format!("condenser-tune-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = || bench_with_cache(&dir, "matmul_256");
    run();
    let files: Vec<_> = match std::fs::read_dir(dir.join("autotune")) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        // No two bit-identical matmul variants on this adapter: nothing to tune.
        Err(_) => {
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
    };
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("matmul:b1:m256:n256:k256:t000\t"), "{text}");
    let stamp = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
    // A second run finds the winner and tunes nothing, so it writes nothing.
    run();
    let again = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
    assert_eq!(stamp, again, "the second run tuned again");
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), text);
    // A damaged cache is ignored and rewritten, never fatal.
    std::fs::write(&files[0], b"\x00garbage").unwrap();
    run();
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.starts_with("# condenser autotune v1"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pipeline_cache_is_written_and_reused() {
    let dir = std::env::temp_dir().join(format!("condenser-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = || bench_with_cache(&dir, "matmul_64");
    run();
    // Regular files only: the autotuner keeps its own subfolder.
    let files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(d) => d
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect(),
        // Adapters without PIPELINE_CACHE write nothing.
        Err(_) => return,
    };
    if files.is_empty() {
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    assert_eq!(files.len(), 1, "{files:?}");
    let first = std::fs::metadata(&files[0]).unwrap().len();
    assert!(first > 0);
    run();
    assert!(std::fs::metadata(&files[0]).unwrap().len() >= first);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_json_has_the_documented_fields() {
    let out = condenser()
        .args(["bench", "--quick", "--json", "--runs", "2"])
        .output()
        .unwrap();
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for f in ["name", "shape", "median_ms", "adapter"] {
            assert!(v.get(f).is_some(), "{f} missing in {line}");
        }
        let rates = ["gflops", "gbps", "images_per_s"]
            .iter()
            .filter(|k| v.get(**k).is_some())
            .count();
        assert_eq!(rates, 1, "{line}");
        // Step rows report this thread's CPU time per step (Linux), which one
        // thread cannot spend faster than the wall clock.
        let step = v.get("images_per_s").is_some();
        if step && cfg!(target_os = "linux") {
            let host = v["host_ms"].as_f64().unwrap_or(-1.0);
            let wall = v["median_ms"].as_f64().unwrap();
            assert!(host > 0.0 && host <= wall + 0.01, "{line}");
        }
        n += 1;
    }
    assert!(n >= 5, "{text}");
    // Batch norm, the replayed step, the distillation step and student
    // inference have rows of their own.
    for case in [
        "bn_fwd_",
        "bn_bwd_",
        "train_step_",
        "replay_step_",
        "kd_step_",
        "infer_",
    ] {
        assert!(text.contains(case), "no {case} row in {text}");
    }
}

#[test]
fn bench_profile_breaks_a_step_down_by_kernel() {
    let out = condenser()
        .args([
            "bench",
            "--quick",
            "--runs",
            "1",
            "--filter",
            "kd_step",
            "--profile",
        ])
        .output()
        .unwrap();
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    // A header with the launch count and device time, then one line per kernel
    // entry with its share; the teacher's convolutions are among them.
    assert!(
        text.contains("launches,") && text.contains("ms of device time"),
        "{text}"
    );
    assert!(
        text.contains("conv::im2col") && text.contains('%'),
        "{text}"
    );
    assert!(text.contains("kd_step_"), "{text}");
}

#[test]
fn data_show_writes_a_grid_and_reports_missing_data() {
    let dir = std::env::temp_dir().join(format!("condenser-cli-data-{}", std::process::id()));
    let png = dir.join("grid.png");
    let out = condenser()
        .args(["data", "show", "--data", "shapes", "--count", "8", "--out"])
        .arg(&png)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_ok(&out);
    assert!(
        text.contains("6 classes") && text.contains("hexagon"),
        "{text}"
    );
    let img = image::open(&png).unwrap();
    assert!(img.width() > 100 && img.height() > 50);

    let out = condenser()
        .args(["data", "show", "--data", "fashion-mnist", "--data-dir"])
        .arg(dir.join("nothing-here"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("nothing-here") && err.contains("apt-get install dataset-fashion-mnist"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn quick_demo_writes_a_table_and_plots_per_task() {
    let dir = std::env::temp_dir().join(format!("condenser-demo-{}", std::process::id()));
    let out = condenser()
        .args(["demo", "--quick", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "| teacher (cnn32)",
        "| run | test acc % (mean +- std) |",
        "| run | mIoU % (mean +- std) | pixel acc % |",
        "| run | mAP % (mean +- std) | mAP@.5 % |",
        "| student",
        "| soft",
        "| affinity",
        "| reg",
        "| adaptive",
        "| gradnorm",
        "| dwa",
    ] {
        assert!(text.contains(row), "{row} missing from:\n{text}");
    }
    for (task, files) in [
        (
            "classify",
            &[
                "accuracy.png",
                "weights_adaptive.png",
                "weights_gradnorm.png",
            ][..],
        ),
        (
            "segment",
            &["accuracy.png", "weights_dwa.png", "predictions.png"][..],
        ),
        (
            "detect",
            &["accuracy.png", "weights_adaptive.png", "predictions.png"][..],
        ),
    ] {
        for f in ["table.md", "table.csv", "results.json"]
            .iter()
            .chain(files)
        {
            assert!(dir.join(task).join(f).exists(), "{task}/{f} not written");
        }
    }
    let png = image::open(dir.join("classify/accuracy.png")).unwrap();
    assert_eq!((png.width(), png.height()), (900, 520));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs the binary in `cwd`, killing it after `secs` (a hang is a failure).
fn run_in(
    cwd: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
    secs: u64,
) -> (Option<i32>, String, String) {
    let mut cmd = condenser();
    cmd.args(args).current_dir(cwd);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed().as_secs() > secs {
            child.kill().unwrap();
            panic!("condenser {args:?} hung for {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!e.contains("panicked"), "{args:?} panicked: {e}");
    (out.status.code(), o, e)
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn cli_tmp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("condenser-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny training run's flags (shapes world, one epoch).
const TINY: &[&str] = &[
    "--data",
    "shapes",
    "--image-size",
    "12",
    "--train-limit",
    "96",
    "--test-limit",
    "40",
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--quiet",
];

/// Arguments, environment, and what the error must say.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn hostile_inputs_get_clear_errors_not_panics_or_hangs() {
    let dir = cli_tmp("hostile");
    let fifo = dir.join("fifo.toml");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let fifo = fifo.to_str().unwrap();
    // An image folder: classes, no masks, no boxes.
    for c in ["a", "b"] {
        std::fs::create_dir_all(dir.join("imgs").join(c)).unwrap();
        for i in 0..12 {
            image::RgbImage::from_pixel(8, 8, image::Rgb([i, 2, 3]))
                .save(dir.join("imgs").join(c).join(format!("x{i}.png")))
                .unwrap();
        }
    }
    let cases: Vec<Case> = vec![
        (vec!["data", "show", "--limit", "0"], vec![], "--limit = 0"),
        (
            vec!["bench", "--filter", "no_such_case"],
            vec![],
            "no bench case's name contains \"no_such_case\"",
        ),
        (vec!["data", "show", "--count", "0"], vec![], "--count = 0"),
        (
            vec!["data", "show", "--data", "shapes", "--size", "100000"],
            vec![],
            "image size = 100000",
        ),
        (
            vec!["train", "--model", "cnn100000", "--out", "m"],
            vec![],
            "cnn width = 100000",
        ),
        (
            vec!["train", "--image-size", "100000", "--out", "m"],
            vec![],
            "image size = 100000",
        ),
        (
            vec!["train", "--config", fifo],
            vec![],
            "not a regular file",
        ),
        (
            vec![
                "distill",
                "--teacher-model",
                "cnn8",
                "--teacher-weights",
                "/dev/zero",
                "--paths",
                "soft",
                "--out",
                "z",
            ],
            vec![],
            "not a regular file",
        ),
        (vec!["train", "--lr=-1", "--out", "m"], vec![], "lr = -1"),
        (
            vec!["train", "--out", "fifo.toml"],
            vec![],
            "is a file, not a folder",
        ),
        (
            vec!["info"],
            vec![("CONDENSER_KERNELS", "bogus")],
            "CONDENSER_KERNELS",
        ),
        (
            vec!["compare", "--teacher-model", "cnn8", "--seeds", "0,0"],
            vec![],
            "seed 0 is named twice",
        ),
        (
            vec![
                "compare",
                "--teacher-model",
                "cnn8",
                "--runs",
                "student,soft,adaptve",
            ],
            vec![],
            "unknown run \"adaptve\"",
        ),
        (
            vec!["compare", "--teacher-model", "cnn8", "--runs", ","],
            vec![],
            "no runs to compare",
        ),
        (
            vec!["compare", "--teacher-model", "cnn8", "--runs", "soft,soft"],
            vec![],
            "named twice",
        ),
        (
            vec!["train", "--task", "paint", "--out", "m"],
            vec![],
            "unknown task \"paint\"",
        ),
        (
            vec!["demo", "--task", "paint"],
            vec![],
            "unknown task \"paint\"",
        ),
        (
            vec![
                "train",
                "--task",
                "segment",
                "--data",
                "folder:imgs",
                "--out",
                "m",
            ],
            vec![],
            "has no segmentation masks",
        ),
        (
            vec![
                "train",
                "--task",
                "detect",
                "--data",
                "folder:imgs",
                "--out",
                "m",
            ],
            vec![],
            "has no boxes",
        ),
        (
            vec![
                "train",
                "--task",
                "detect",
                "--data",
                "shapes-scenes",
                "--image-size",
                "30",
                "--out",
                "m",
            ],
            vec![],
            "sides divisible by 4",
        ),
        (
            vec![
                "train",
                "--task",
                "segment",
                "--data",
                "voc:/nonexistent",
                "--out",
                "m",
            ],
            vec![],
            "is not a folder",
        ),
        (
            vec![
                "distill",
                "--task",
                "detect",
                "--data",
                "shapes",
                "--teacher-model",
                "cnn8",
                "--teacher-weights",
                "/nonexistent.safetensors",
                "--paths",
                "affinity,reg",
                "--out",
                "m",
            ],
            vec![],
            "nonexistent.safetensors",
        ),
    ];
    for (args, envs, want) in cases {
        let (code, _, err) = run_in(&dir, &args, &envs, 60);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
    }
    // Nothing was trained or written by the refused commands.
    assert!(!dir.join("runs").exists() && !dir.join("m").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn runs_are_never_overwritten_and_models_carry_their_normalisation() {
    let dir = cli_tmp("runs");
    let train = |extra: &[&str]| {
        let mut a = vec!["train", "--model", "cnn4"];
        a.extend_from_slice(TINY);
        a.extend_from_slice(extra);
        run_in(&dir, &a, &[], 300)
    };
    // Default folders: a new one per run.
    let (code, out, err) = train(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("runs/cnn4/model.safetensors"), "{out}");
    let (code, out, err) = train(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("runs/cnn4-2/model.safetensors"), "{out}");
    // An explicit folder holding a run: refused, unchanged.
    let before = std::fs::read(dir.join("runs/cnn4/model.safetensors")).unwrap();
    let (code, _, err) = train(&["--out", "runs/cnn4"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("already holds a run") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("runs/cnn4/model.safetensors")).unwrap(),
        before
    );
    // The student may not be written over its own teacher.
    let mut a = vec![
        "distill",
        "--teacher-model",
        "cnn4",
        "--teacher-weights",
        "runs/cnn4/model.safetensors",
        "--student-model",
        "cnn4",
        "--paths",
        "soft",
        "--out",
        "runs/cnn4",
        "--overwrite",
    ];
    a.extend_from_slice(TINY);
    let (code, _, err) = run_in(&dir, &a, &[], 120);
    assert_eq!(code, Some(1));
    assert!(err.contains("teacher's weights"), "{err}");
    // eval reads the normalisation from the file: the same test images score
    // the same whatever --limit says about the training split.
    let (code, out, err) = train(&["--out", "runs/cnn4", "--overwrite"]);
    assert_eq!(code, Some(0), "{err}");
    let acc_train = out
        .split("test accuracy ")
        .nth(1)
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .to_string();
    let eval = |model: &str| {
        let a = vec![
            "eval",
            "--model",
            model,
            "--weights",
            "runs/cnn4/model.safetensors",
            "--data",
            "shapes",
            "--size",
            "12",
            "--limit",
            "40",
        ];
        run_in(&dir, &a, &[], 120)
    };
    let (code, out, err) = eval("cnn4");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("test split (40 images)") && out.contains(&format!("accuracy {acc_train}%")),
        "{out} vs {acc_train}"
    );
    let (code, _, err) = eval("cnn8");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("holds a cnn4") && !err.contains("data set error"),
        "{err}"
    );
    let (code, _, err) = run_in(
        &dir,
        &[
            "eval",
            "--model",
            "cnn4",
            "--weights",
            "runs/cnn4/model.safetensors",
            "--data",
            "shapes",
            "--size",
            "16",
        ],
        &[],
        120,
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("takes 3x12x12 images"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `train --model cnn4 --out <out>` with TINY's flags, some values changed.
fn tiny_train(out: &str, changes: &[(&str, &str)]) -> Vec<String> {
    let mut a: Vec<String> = ["train", "--model", "cnn4", "--out", out]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(TINY.iter().map(|s| s.to_string()));
    for (flag, v) in changes {
        let i = a.iter().position(|x| x == flag).expect("a flag TINY sets");
        a[i + 1] = v.to_string();
    }
    a
}

/// Runs `run_b` (the arguments of run "b" in `dir`) again with `--resume`
/// and checks that it ends with the weights of the uninterrupted run "a".
fn resume_to_the_same_weights(dir: &std::path::Path, mut run_b: Vec<String>, how: &str) {
    run_b.push("--resume".into());
    let (code, _, err) = run_in(dir, &refs(&run_b), &[], 300);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read(dir.join("a/model.safetensors")).unwrap(),
        std::fs::read(dir.join("b/model.safetensors")).unwrap(),
        "{how} must equal uninterrupted"
    );
}

#[test]
fn kill_9_then_resume_gives_the_uninterrupted_weights_and_a_second_run_is_refused() {
    let dir = cli_tmp("kill");
    // Longer than TINY so that the kill lands inside a later epoch.
    let args = |out: &str| tiny_train(out, &[("--epochs", "4"), ("--train-limit", "1920")]);
    let (code, _, err) = run_in(&dir, &refs(&args("a")), &[], 300);
    assert_eq!(code, Some(0), "{err}");
    let mut child = condenser()
        .args(args("b"))
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = dir.join("b/checkpoint.safetensors");
    let t0 = std::time::Instant::now();
    while !ckpt.exists() && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // While it runs, a second run on the same folder is refused at once.
    let (code, _, err) = run_in(&dir, &refs(&args("b")), &[("CONDENSER_NOTHING", "")], 60);
    let still_running = child.try_wait().unwrap().is_none();
    eprintln!("still running when the second run tried: {still_running}");
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    if still_running {
        assert_eq!(code, Some(1));
        assert!(
            err.contains("in use by another condenser run") && err.contains("pid"),
            "{err}"
        );
    }
    resume_to_the_same_weights(&dir, args("b"), "killed and resumed");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A write that fails part-way (here a file-size limit, EFBIG: what a full
/// disk does to a write, without needing one) stops the run with an error
/// that names the file and says what to do, leaves no torn or temporary
/// file behind, and `--resume` then finishes the run to the same weights.
#[test]
fn a_write_that_fails_midway_leaves_nothing_torn_and_resume_finishes_the_run() {
    let dir = cli_tmp("fsize");
    let args = |out: &str| tiny_train(out, &[]);
    let (code, _, err) = run_in(&dir, &refs(&args("a")), &[], 300);
    assert_eq!(code, Some(0), "{err}");
    let ckpt_len = std::fs::metadata(dir.join("a/checkpoint.safetensors"))
        .unwrap()
        .len();
    // bash counts the limit in KiB; the checkpoint must not fit, the log must.
    let limit_kib = 8;
    assert!(
        ckpt_len > limit_kib * 1024,
        "checkpoint of {ckpt_len} bytes fits"
    );
    let script = format!("trap '' XFSZ; ulimit -f {limit_kib}; exec \"$0\" \"$@\"");
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_condenser"))
        .args(args("b"))
        .current_dir(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("checkpoint.safetensors") && err.contains("free space"),
        "{err}"
    );
    let left: Vec<String> = std::fs::read_dir(dir.join("b"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter()
            .all(|n| !n.contains(".tmp") && !n.ends_with(".safetensors")),
        "a torn or temporary file was left: {left:?}"
    );
    resume_to_the_same_weights(&dir, args("b"), "resumed after a failed write");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn onnx_teachers_and_students_distil_export_and_inspect_from_the_cli() {
    let dir = cli_tmp("onnx");
    let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let teacher = fx.join("teacher_shapes.onnx").display().to_string();
    let student = format!("onnx:{}", fx.join("student_shapes.onnx").display());
    // TINY at the fixtures' 24-pixel size, with the ONNX teacher.
    let tiny = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "distill",
            "--teacher-model",
            "onnx",
            "--teacher-weights",
            &teacher,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(
            TINY.iter()
                .map(|s| if *s == "12" { "24" } else { s }.to_string()),
        );
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    // A PyTorch teacher (not a condenser architecture) into a built-in student.
    let args = tiny(&[
        "--student-model",
        "cnn4",
        "--paths",
        "soft,hint,at",
        "--aggregate",
        "adaptive",
        "--out",
        "a",
    ]);
    let (code, out, err) = run_in(&dir, &refs(&args), &[], 300);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("agreement with teacher"), "{out}");
    assert!(dir.join("a/model.safetensors").exists() && dir.join("a/model.onnx").exists());

    // An ONNX student too, its feature taps picked by name.
    let args = tiny(&[
        "--student-model",
        &student,
        "--teacher-features",
        "/7/Mul_output_0,/11/Relu_output_0",
        "--paths",
        "soft,hint",
        "--out",
        "b",
    ]);
    let (code, out, err) = run_in(&dir, &refs(&args), &[], 300);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("1430 params"),
        "PyTorch's count of the student: {out}"
    );

    // Its trained weights back out as ONNX, folded; never over an existing file.
    let export = [
        "export",
        "--model",
        &student,
        "--weights",
        "b/model.safetensors",
        "--out",
        "b/folded.onnx",
        "--fold-bn",
    ];
    let (code, out, err) = run_in(&dir, &export, &[], 120);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, _, err) = run_in(&dir, &export, &[], 120);
    assert_ne!(code, Some(0));
    assert!(err.contains("--overwrite"), "{err}");
    let (code, out, err) = run_in(&dir, &["inspect", "b/folded.onnx"], &[], 120);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("opset 17") && out.contains("[1, 6]"), "{out}");
    assert!(!out.contains("BatchNormalization"), "folded: {out}");

    // A run never writes over the ONNX files it reads, nor over a model.onnx
    // already in its folder unless told to.
    std::fs::create_dir_all(dir.join("e")).unwrap();
    std::fs::copy(fx.join("student_shapes.onnx"), dir.join("e/model.onnx")).unwrap();
    let own = format!("onnx:{}", dir.join("e/model.onnx").display());
    let (code, _, err) = run_in(
        &dir,
        &refs(&tiny(&[
            "--student-model",
            &own,
            "--paths",
            "soft",
            "--out",
            "e",
        ])),
        &[],
        120,
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("student's graph") && err.contains("would write"),
        "{err}"
    );
    let (code, _, err) = run_in(
        &dir,
        &refs(&tiny(&[
            "--student-model",
            "cnn4",
            "--paths",
            "soft",
            "--out",
            "e",
        ])),
        &[],
        120,
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("model.onnx") && err.contains("--overwrite"),
        "{err}"
    );
    let kept = std::fs::read(dir.join("e/model.onnx")).unwrap();
    assert_eq!(
        kept,
        std::fs::read(fx.join("student_shapes.onnx")).unwrap(),
        "untouched"
    );

    // Refusals before any training: an unknown operator, data of the wrong shape.
    let dims = [None, Some(3), Some(24), Some(24)];
    std::fs::write(
        dir.join("erf.onnx"),
        common::onnx::one_node("Erf", &dims, &[], &[]),
    )
    .unwrap();
    let args = tiny(&["--out", "c"]);
    let mut args = args;
    let at = args.iter().position(|a| *a == teacher).unwrap();
    args[at] = "erf.onnx".into();
    let (code, _, err) = run_in(&dir, &refs(&args), &[], 120);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("Erf") && err.contains("the_node") && err.contains("opset 17"),
        "{err}"
    );
    assert!(!dir.join("c").exists(), "a refused run leaves no folder");
    let mut args = tiny(&["--out", "d"]);
    let at = args.iter().position(|a| a == "24").unwrap();
    args[at] = "12".into();
    let (code, _, err) = run_in(&dir, &refs(&args), &[], 120);
    assert_ne!(code, Some(0));
    assert!(err.contains("3x24x24") && err.contains("3x12x12"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
