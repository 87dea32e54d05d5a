//! ONNX import: ONNX's own node test cases (tests/fixtures/onnx/node, made by
//! tests/onnx/make_fixtures.py from the onnx package) run through the importer
//! with each case's own tolerances (numpy's |got - want| <= atol + rtol |want|),
//! and whole networks exported from PyTorch matched within 1e-4 relative.

mod common;
use std::path::{Path, PathBuf};

use common::gpu;
use condenser::Tensor;
use condenser::autograd::{Var, functional as F, no_grad};
use condenser::nn::{Model, Module};
use condenser::onnx::graph::{self, HostData, HostTensor};
use condenser::onnx::{OnnxModel, OnnxOptions, proto};
use condenser::tasks::Task;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn read_pb(path: &Path) -> HostTensor {
    let bytes = std::fs::read(path).unwrap();
    let t: proto::TensorProto = proto::decode(&bytes).unwrap();
    graph::host_tensor(&t).unwrap()
}

/// (rtol, atol) from the case's tol.json.
fn tolerances(dir: &Path) -> (f64, f64) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tol.json")).unwrap()).unwrap();
    (v["rtol"].as_f64().unwrap(), v["atol"].as_f64().unwrap())
}

/// Runs one node case: Ok(()) when it matches, Err(the importer's error) when
/// condenser refuses it; panics on a wrong answer.
fn run_case(dir: &Path) -> Result<(), String> {
    let g = gpu();
    let graph = graph::load(&dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let names: Vec<String> = graph.inputs.iter().map(|i| i.name.clone()).collect();
    let outputs = graph.outputs.len();
    let model = OnnxModel::bare(&g, graph).map_err(|e| e.to_string())?;
    let inputs = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), read_pb(&dir.join(format!("input_{i}.pb")))))
        .collect();
    let got = model.evaluate(inputs).map_err(|e| e.to_string())?;
    let (rtol, atol) = tolerances(dir);
    for (i, got) in got.iter().enumerate().take(outputs) {
        let want = read_pb(&dir.join(format!("output_{i}.pb")));
        assert_eq!(got.shape, want.shape, "{}: output {i} shape", dir.display());
        match (&got.data, &want.data) {
            (HostData::I64(a), HostData::I64(b)) => assert_eq!(a, b, "{}", dir.display()),
            _ => {
                let (a, b) = (got.as_f32(), want.as_f32());
                for (k, (&x, &y)) in a.iter().zip(&b).enumerate() {
                    let ok = (x.is_nan() && y.is_nan())
                        || x == y
                        || ((x - y).abs() as f64) <= atol + rtol * (y.abs() as f64);
                    assert!(ok, "{}: output {i}[{k}] = {x}, want {y}", dir.display());
                }
            }
        }
    }
    Ok(())
}

/// Every node case either matches ONNX's expected output within the case's
/// tolerances, or is one condenser refuses (tests/fixtures/onnx/node_refused.txt:
/// 1-D/3-D and dilated pooling, batched MatMul, Gather and ReduceMean beyond
/// shape arithmetic and global pooling, cubic/antialiased/fractional Resize,
/// strided slices, training-mode batch norm) with an error that names the node,
/// its operator and opset and says what is not supported. A wrong answer fails.
#[test]
fn onnx_node_test_cases_pass_or_are_refused_clearly() {
    let refused_list = std::fs::read_to_string(fixtures().join("node_refused.txt")).unwrap();
    let refused: std::collections::BTreeSet<&str> = refused_list.lines().collect();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures().join("node"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let (mut passed, mut failures) = (0, Vec::new());
    for d in &dirs {
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        match (run_case(d), refused.contains(name.as_str())) {
            (Ok(()), false) => passed += 1,
            (Ok(()), true) => {
                failures.push(format!("{name} now passes: drop it from node_refused.txt"))
            }
            (Err(e), true) => {
                // Node errors name the node, its operator and the opset.
                let clear = e.contains("opset");
                if !clear {
                    failures.push(format!("{name}: unclear refusal: {e}"));
                }
            }
            (Err(e), false) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed + refused.len(), dirs.len(), "every case is run");
    assert!(passed >= 180, "{passed} cases pass");
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Runs a PyTorch-exported fixture; returns (got, want, model).
fn run_model(name: &str, opts: &OnnxOptions) -> (Vec<f32>, Vec<f32>, OnnxModel) {
    let g = gpu();
    let dir = fixtures().join("models").join(name);
    let shapes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("shapes.json")).unwrap()).unwrap();
    let shape: Vec<usize> = shapes["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let model = OnnxModel::load(&g, &dir.join("model.onnx"), opts).unwrap();
    let x =
        Var::constant(Tensor::from_slice(&g, &shape, &read_f32(&dir.join("input.bin"))).unwrap());
    let _ng = no_grad();
    let got = model
        .forward(&x, false)
        .unwrap()
        .logits
        .value()
        .to_vec()
        .unwrap();
    (got, read_f32(&dir.join("output.bin")), model)
}

/// Tolerance: 1e-4 relative to the output's largest magnitude (the networks
/// sum thousands of f32 products in a different order than PyTorch's CPU
/// kernels; measured worst cases are ~1e-6 of it).
fn assert_matches(name: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{name}: output size");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!(
        "{name}: worst |d| {worst:.3e}, relative {:.3e}",
        worst / scale
    );
    assert!(
        worst <= 1e-4 * scale,
        "{name}: worst |d| {worst} vs scale {scale}"
    );
}

#[test]
fn pytorch_exports_match_pytorch() {
    for name in [
        "resnet18_w8",
        "mobilenetv2_tiny",
        "encdec_seg",
        "mobilenetv2_tiny_bn",
        "focus_slices",
        "resize_modes",
    ] {
        let (got, want, model) = run_model(name, &OnnxOptions::default());
        assert_matches(name, &got, &want);
        let task = if name == "encdec_seg" {
            Task::Segment
        } else {
            Task::Classify
        };
        assert_eq!(model.task(), task, "{name}");
        assert!(
            !model.feature_channels().is_empty(),
            "{name} has feature taps"
        );
    }
}

#[test]
fn an_imported_student_trains_every_parameter() {
    let g = gpu();
    let opts = OnnxOptions {
        trainable: true,
        ..Default::default()
    };
    let (_, _, model) = run_model("mobilenetv2_tiny_bn", &opts);
    // PyTorch's parameter count of this network (weights, BN affine, fc).
    let params = condenser::nn::parameters(&model);
    let count: usize = params.iter().map(|p| p.value().numel()).sum();
    let bn_buffers = {
        let mut n = 0;
        model.visit("", &mut |_, e| {
            if let condenser::nn::Entry::Buffer(_) = e {
                n += 1;
            }
        });
        n
    };
    assert_eq!(bn_buffers, 2 * 17, "running mean and var of 17 batch norms");
    assert!(count > 5000, "{count}");
    let x = Var::constant(Tensor::rand_uniform(&g, &[4, 3, 16, 16], -1.0, 1.0, 3).unwrap());
    let out = model.forward(&x, true).unwrap();
    let loss = F::mean(&F::mul(&out.logits, &out.logits).unwrap()).unwrap();
    loss.backward().unwrap();
    for p in &params {
        let gv = p
            .grad()
            .expect("every parameter gets a gradient")
            .to_vec()
            .unwrap();
        assert!(gv.iter().all(|v| v.is_finite()));
    }
}

/// Writes a case for the ONNX Runtime check of .ci/run (tests/onnx/check_ort.py):
/// the exported file, an input batch and condenser's outputs for it.
fn write_ort_case(
    name: &str,
    bytes: &[u8],
    x: &[f32],
    x_shape: &[usize],
    y: &[f32],
    y_shape: &[usize],
) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("onnx-ort")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.onnx"), bytes).unwrap();
    let le = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(dir.join("input.bin"), le(x)).unwrap();
    std::fs::write(dir.join("output.bin"), le(y)).unwrap();
    let shapes = serde_json::json!({"input": x_shape, "output": y_shape});
    std::fs::write(dir.join("shapes.json"), shapes.to_string()).unwrap();
}

/// Exports `model`, reads the file back through the importer and compares the
/// logits of a batch of 3 (the file was traced with 1: the batch is dynamic).
fn export_roundtrip(name: &str, model: &dyn Model, chw: [usize; 3], fold_bn: bool) {
    use condenser::onnx::export::{ExportOptions, to_bytes};
    let g = gpu();
    let opts = ExportOptions {
        fold_bn,
        norm: None,
    };
    let bytes = to_bytes(model, chw, &opts).unwrap();
    let graph = graph::parse(Path::new(name), &bytes).unwrap();
    assert_eq!(graph.opset, 17);
    let back = OnnxModel::from_graph(&g, graph, &OnnxOptions::default()).unwrap();
    let [c, h, w] = chw;
    let x = Tensor::rand_uniform(&g, &[3, c, h, w], -1.0, 1.0, 11).unwrap();
    let _ng = no_grad();
    let want = model
        .forward(&Var::constant(x.clone()), false)
        .unwrap()
        .logits;
    let got = back
        .forward(&Var::constant(x.clone()), false)
        .unwrap()
        .logits;
    assert_eq!(got.shape(), want.shape(), "{name}");
    let (got, wantv) = (
        got.value().to_vec().unwrap(),
        want.value().to_vec().unwrap(),
    );
    assert_matches(name, &got, &wantv);
    write_ort_case(
        name,
        &bytes,
        &x.to_vec().unwrap(),
        x.shape(),
        &wantv,
        want.shape(),
    );
}

/// Moves every batch norm's running statistics off their initial values (one
/// training-mode forward pass), so that export and folding are tested on
/// statistics that matter.
fn warm_up(model: &dyn Model, chw: [usize; 3]) {
    let g = gpu();
    let [c, h, w] = chw;
    let x = Tensor::rand_uniform(&g, &[8, c, h, w], -2.0, 3.0, 5).unwrap();
    let _ng = no_grad();
    model.forward(&Var::constant(x), true).unwrap();
}

#[test]
fn native_models_export_and_reimport_with_the_same_logits() {
    use condenser::nn::{ModelSpec, build_model};
    let g = gpu();
    for (arch, task, chw) in [
        ("cnn4", Task::Classify, [3, 24, 24]),
        ("resnet8", Task::Classify, [3, 16, 20]),
        ("resnet8x4", Task::Classify, [1, 32, 32]),
        ("wrn-10-1", Task::Classify, [3, 16, 16]),
        ("cnn4", Task::Segment, [3, 24, 24]),
        ("mobilenetv2", Task::Classify, [3, 32, 32]),
        ("shufflenetv2", Task::Classify, [3, 32, 32]),
        ("cnn4", Task::Detect, [3, 16, 16]),
    ] {
        let spec = ModelSpec {
            arch: arch.into(),
            in_channels: chw[0],
            num_classes: 6,
            task,
        };
        let m = build_model(&g, &spec, 3).unwrap();
        warm_up(m.as_ref(), chw);
        for fold in [false, true] {
            let name = format!("{arch}_{task}{}", if fold { "_folded" } else { "" });
            export_roundtrip(&name, m.as_ref(), chw, fold);
        }
    }
}

#[test]
fn imported_models_export_again() {
    for name in [
        "mobilenetv2_tiny",
        "encdec_seg",
        "mobilenetv2_tiny_bn",
        "focus_slices",
        "resize_modes",
    ] {
        let (_, _, model) = run_model(name, &OnnxOptions::default());
        let chw = model.input_chw;
        export_roundtrip(&format!("reexport_{name}"), &model, chw, true);
    }
}

/// A teacher trained in PyTorch on Fashion-MNIST (tests/onnx/make_fixtures.py,
/// `fmnist_teacher`), imported with the normalisation its metadata names,
/// predicts the first 500 test images as PyTorch did (ties of near-equal
/// logits may flip one), and so reaches PyTorch's accuracy.
#[test]
fn a_pytorch_trained_teacher_predicts_as_in_pytorch() {
    use condenser::data::loader::{Loader, LoaderConfig};
    use condenser::data::{DataOptions, Split, load};
    let g = gpu();
    let path = fixtures().join("teacher_fmnist.onnx");
    let model = OnnxModel::load(&g, &path, &OnnxOptions::default()).unwrap();
    let norm = model
        .graph
        .input_norm(1)
        .unwrap()
        .expect("the file names its normalisation");
    let opts = DataOptions {
        limit: Some(500),
        ..Default::default()
    };
    let set = load("fashion-mnist", Split::Test, &opts).unwrap();
    let loader = Loader::new(&g, &set, LoaderConfig::eval(100, Some(norm))).unwrap();
    let pred = condenser::tasks::predictions(&model, &loader, 10).unwrap();
    let fx: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("teacher_fmnist.json")).unwrap(),
    )
    .unwrap();
    let want: Vec<u32> = fx["test_pred_first_500"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let same = pred.pred.iter().zip(&want).filter(|(a, b)| a == b).count();
    assert!(same >= 499, "{same} of 500 predictions as PyTorch's");
    let acc = pred
        .pred
        .iter()
        .zip(&pred.truth)
        .filter(|(a, b)| a == b)
        .count() as f64
        / 500.0;
    assert!(
        (acc - fx["test_acc_first_500"].as_f64().unwrap()).abs() <= 1.0 / 500.0,
        "{acc}"
    );
}

/// A one-node graph on a [1, 3, 8, 8] image (tests/common/onnx.rs).
fn one_node_with(
    op: &str,
    ints: &[(&str, Vec<i64>)],
    floats: &[(&str, Vec<i64>, Vec<f32>)],
) -> Vec<u8> {
    common::onnx::one_node(op, &[Some(1), Some(3), Some(8), Some(8)], ints, floats)
}

fn one_node(op: &str, ints: &[(&str, Vec<i64>)]) -> Vec<u8> {
    one_node_with(op, ints, &[])
}

/// Graphs whose sizes come from the file are bounded before anything is
/// allocated or looped over: clear errors, not an abort or an endless load.
#[test]
fn hostile_sizes_in_a_graph_are_errors() {
    let g = gpu();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            one_node(
                "Resize",
                &[
                    ("roi", vec![]),
                    ("scales", vec![]),
                    ("sizes", vec![1, 3, 1 << 40, 1 << 40]),
                ],
            ),
            "beyond what condenser resizes",
        ),
        (
            one_node("Gather", &[("idx", vec![0; 1 << 17])]),
            "indices are more than",
        ),
        (
            one_node("Reshape", &[("shape", vec![1 << 40, -1])]),
            "cannot reshape",
        ),
        (one_node("Conv", &[]), "needs input 1"),
    ];
    for (bytes, want) in cases {
        let graph = graph::parse(Path::new("hostile.onnx"), &bytes).unwrap();
        let e = match OnnxModel::from_graph(&g, graph, &OnnxOptions::default()) {
            Ok(_) => panic!("accepted a graph that should fail with {want:?}"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(want) && e.contains("hostile.onnx"), "{e}");
    }
}
