//! The binary's behaviour when the environment is wrong, and the pipeline cache.
//! Each case runs the binary as a child process with its own environment.

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

#[test]
fn pipeline_cache_is_written_and_reused() {
    let dir = std::env::temp_dir().join(format!("condenser-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = || {
        let out = condenser()
            .args(["bench", "--quick", "--runs", "1", "--filter", "matmul_64"])
            .env("CONDENSER_CACHE_DIR", &dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run();
    let files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        // Adapters without PIPELINE_CACHE write nothing.
        Err(_) => return,
    };
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
        n += 1;
    }
    assert!(n >= 5, "{text}");
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
fn quick_demo_writes_table_and_plots() {
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
        "| student",
        "| soft",
        "| adaptive",
        "| gradnorm",
        "| dwa",
    ] {
        assert!(text.contains(row), "{row} missing from:\n{text}");
    }
    for f in [
        "table.md",
        "table.csv",
        "accuracy.png",
        "weights_adaptive.png",
        "weights_gradnorm.png",
    ] {
        assert!(dir.join(f).exists(), "{f} not written");
    }
    let png = image::open(dir.join("accuracy.png")).unwrap();
    assert_eq!((png.width(), png.height()), (900, 520));
    std::fs::remove_dir_all(&dir).unwrap();
}
