//! The benchmark students (src/nn/mobile.rs) against PyTorch rebuilds of
//! RepDistiller's definitions (tests/onnx/make_fixtures.py, `students`): the
//! same parameter and buffer names and shapes, the parameter counts the
//! distillation papers publish, and the same logits for the same weights.
//! Weights and input come from a formula both sides compute (no weight files).
//! Tolerance: logits within 1e-4 of their largest magnitude (f32 sums in
//! another order than PyTorch's).

mod common;
use std::path::Path;

use common::gpu;
use condenser::Tensor;
use condenser::autograd::{Var, no_grad};
use condenser::nn::{self, Entry, ModelSpec, Module, build_model};
use condenser::tasks::Task;

/// tests/onnx/make_fixtures.py `formula`, in Rust.
fn formula(name: &str, shape: &[usize]) -> Vec<f32> {
    let mut seed: u64 = 2166136261;
    for b in name.bytes() {
        seed = ((seed ^ b as u64) * 16777619) & 0xFFFF_FFFF;
    }
    let n: usize = shape.iter().product();
    let last = name.rsplit('.').next().unwrap_or("");
    (1..=n as u64)
        .map(|i| {
            let mut h = (seed + i * 2654435761) & 0xFFFF_FFFF;
            h ^= h >> 15;
            h = (h * 2246822519) & 0xFFFF_FFFF;
            h ^= h >> 13;
            let u = h as f64 / 4294967296.0;
            let v = match last {
                "running_var" => 0.5 + u,
                "running_mean" | "bias" => (u - 0.5) * 0.2,
                "weight" if shape.len() == 1 => 0.5 + u,
                "weight" => (u * 2.0 - 1.0) * (3.0 / (n / shape[0]) as f64).sqrt(),
                _ => u * 2.0 - 1.0,
            };
            v as f32
        })
        .collect()
}

/// Writes the formula's weights for `m` as a safetensors file and loads them.
fn fill(m: &dyn Module, dir: &Path) {
    let mut data: Vec<(String, Vec<usize>, Vec<u8>, bool)> = Vec::new();
    m.visit("", &mut |name, e| match e {
        Entry::Param(v) => data.push((
            name.clone(),
            v.shape().to_vec(),
            bytes(&formula(&name, v.shape())),
            false,
        )),
        Entry::Buffer(t) => data.push((
            name.clone(),
            t.shape().to_vec(),
            bytes(&formula(&name, t.shape())),
            false,
        )),
        Entry::Counter(_) => data.push((name, vec![], 0i64.to_le_bytes().to_vec(), true)),
    });
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, s, b, int)| {
            let dt = if *int {
                safetensors::Dtype::I64
            } else {
                safetensors::Dtype::F32
            };
            (
                n.clone(),
                safetensors::tensor::TensorView::new(dt, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let path = dir.join("w.safetensors");
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    nn::safetensors::load(m, &path).unwrap();
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn spec(arch: &str, classes: usize) -> ModelSpec {
    ModelSpec {
        arch: arch.into(),
        in_channels: 3,
        num_classes: classes,
        task: Task::Classify,
    }
}

#[test]
fn benchmark_students_match_their_pytorch_definitions() {
    let g = gpu();
    let dir = std::env::temp_dir().join(format!("condenser-students-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Published sizes (CRD's tables, millions, to two decimals as printed there).
    for (arch, published_centi_m) in [("mobilenetv2", 81), ("shufflenetv2", 135), ("vgg8", 396)] {
        let fx: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(format!("tests/fixtures/students/{arch}.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let count = nn::param_count(build_model(&g, &spec(arch, 100), 0).unwrap().as_ref());
        assert_eq!(
            count as u64,
            fx["params_100"].as_u64().unwrap(),
            "{arch}: PyTorch's count"
        );
        assert_eq!(
            count / 10_000,
            published_centi_m,
            "{arch}: {count} vs the published size"
        );

        let m = build_model(&g, &spec(arch, 10), 0).unwrap();
        let mut ours = Vec::new();
        m.visit("", &mut |name, e| {
            let shape = match e {
                Entry::Param(v) => v.shape().to_vec(),
                Entry::Buffer(t) => t.shape().to_vec(),
                Entry::Counter(_) => vec![],
            };
            ours.push((name, shape));
        });
        let mut theirs: Vec<(String, Vec<usize>)> = fx["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let s = p[1]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect();
                (p[0].as_str().unwrap().to_string(), s)
            })
            .collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{arch}: names and shapes");

        fill(m.as_ref(), &dir);
        let x =
            Tensor::from_slice(&g, &[2, 3, 32, 32], &formula("input", &[2, 3, 32, 32])).unwrap();
        let _ng = no_grad();
        let got = m
            .forward(&Var::constant(x), false)
            .unwrap()
            .logits
            .value()
            .to_vec()
            .unwrap();
        let want: Vec<f32> = fx["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 1e-4 * scale,
            "{arch}: worst {worst} vs scale {scale}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
