//! Segmentation and detection end to end: a teacher trained from scratch, a
//! student distilled from it through the CLI's trainer, and the student's
//! metric above what chance gives (all background for segmentation; no
//! correct box for detection). Also the dense models' shapes and names, and
//! a teacher of the wrong task refused.

mod common;
use common::gpu;
use condenser::autograd::Var;
use condenser::distill::aggregate::AggregateSpec;
use condenser::distill::config::OptimizerKind;
use condenser::distill::trainer::{RunConfig, run};
use condenser::nn::{self, ModelSpec, build_model};
use condenser::tasks::Task;

fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("condenser-dense-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn dense_models_have_their_outputs_and_names() {
    let g = gpu();
    let x =
        Var::constant(condenser::Tensor::rand_uniform(&g, &[2, 3, 24, 24], -1.0, 1.0, 1).unwrap());
    for arch in ["cnn4", "resnet8x4", "wrn-16-1"] {
        let spec = |task| ModelSpec {
            arch: arch.into(),
            in_channels: 3,
            num_classes: 7,
            task,
        };
        let seg = build_model(&g, &spec(Task::Segment), 0).unwrap();
        let out = seg.forward(&x, true).unwrap();
        assert_eq!(
            out.logits.shape(),
            &[2, 7, 24, 24],
            "{arch}: logits at input resolution"
        );
        assert!(out.boxes.is_none());
        let names: Vec<String> = nn::named_parameters(seg.as_ref())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(
            names.iter().any(|n| n == "encoder.conv1.weight"),
            "{arch}: {names:?}"
        );
        assert!(names.iter().any(|n| n == "classifier.weight"), "{arch}");
        assert!(
            names.iter().any(|n| n == "decoder.lateral0.weight"),
            "{arch}"
        );
        let det = build_model(&g, &spec(Task::Detect), 0).unwrap();
        let out = det.forward(&x, true).unwrap();
        assert_eq!(
            out.logits.shape(),
            &[2, 7, 6, 6],
            "{arch}: heat-maps at stride 4"
        );
        assert_eq!(out.boxes.unwrap().shape(), &[2, 4, 6, 6]);
        let names: Vec<String> = nn::named_parameters(det.as_ref())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(
            names.iter().any(|n| n == "heatmap.2.bias")
                && names.iter().any(|n| n == "regression.0.weight")
        );
    }
    let det = build_model(
        &g,
        &ModelSpec {
            arch: "cnn4".into(),
            in_channels: 3,
            num_classes: 2,
            task: Task::Detect,
        },
        0,
    )
    .unwrap();
    let odd =
        Var::constant(condenser::Tensor::rand_uniform(&g, &[1, 3, 22, 22], -1.0, 1.0, 1).unwrap());
    let e = det.forward(&odd, false).err().unwrap().to_string();
    assert!(e.contains("divisible by 4"), "{e}");
}

/// Trains a teacher for `task`, then distils a student from it; returns the
/// student's result and the teacher's.
fn teacher_then_student(
    task: Task,
    base: RunConfig,
    paths: &str,
    tag: &str,
) -> (f32, condenser::distill::trainer::RunResult) {
    let g = gpu();
    let root = dir(tag);
    let teacher = RunConfig {
        name: "teacher".into(),
        task,
        student_model: "cnn8".into(),
        out_dir: root.join("teacher"),
        progress: false,
        ..base.clone()
    };
    let t = run(&g, &teacher).unwrap();
    let student = RunConfig {
        name: "student".into(),
        task,
        teacher_model: Some("cnn8".into()),
        teacher_weights: Some(root.join("teacher/model.safetensors")),
        student_model: "cnn8".into(),
        paths: paths.into(),
        aggregate: AggregateSpec::Adaptive,
        out_dir: root.join("student"),
        progress: false,
        ..base
    };
    let s = run(&g, &student).unwrap();
    // A student of the other task cannot use this teacher.
    let wrong = RunConfig {
        task: if task == Task::Segment {
            Task::Classify
        } else {
            Task::Segment
        },
        out_dir: root.join("wrong"),
        ..student
    };
    let e = run(&g, &wrong).unwrap_err().to_string();
    assert!(e.contains(&format!("--task {task}")), "{e}");
    let _ = std::fs::remove_dir_all(&root);
    (t.test_acc, s)
}

#[test]
fn segmentation_student_beats_chance() {
    let base = RunConfig {
        data: "shapes".into(),
        image_size: Some(24),
        train_limit: Some(600),
        test_limit: Some(150),
        epochs: 4,
        batch_size: 16,
        optimizer: OptimizerKind::Adam,
        lr: 0.01,
        ..RunConfig::default()
    };
    // Chance: every pixel called background, the most frequent class.
    let (_, test) = base.load_data().unwrap();
    let truth: Vec<u32> = test
        .masks
        .as_ref()
        .unwrap()
        .iter()
        .map(|&v| v as u32)
        .collect();
    let chance = condenser::tasks::segmentation::scores(&vec![0; truth.len()], &truth, 7);
    let (teacher, s) = teacher_then_student(Task::Segment, base, "soft,at,affinity", "seg");
    eprintln!(
        "segmentation: chance {chance:?}, teacher mIoU {teacher}, student {:?} {:?}",
        s.test_acc, s.extra
    );
    assert!(
        teacher > chance.miou + 0.02,
        "teacher mIoU {teacher} vs chance {}",
        chance.miou
    );
    assert!(
        s.test_acc > chance.miou + 0.01,
        "student mIoU {} vs chance {}",
        s.test_acc,
        chance.miou
    );
    assert_eq!(s.extra[0].0, "pixel acc");
    assert!(
        s.extra[0].1 > chance.pixel_acc,
        "pixel accuracy {} vs {}",
        s.extra[0].1,
        chance.pixel_acc
    );
}

#[test]
fn detection_student_beats_chance() {
    let base = RunConfig {
        data: "shapes-scenes".into(),
        image_size: Some(48),
        train_limit: Some(600),
        test_limit: Some(100),
        epochs: 3,
        batch_size: 8,
        optimizer: OptimizerKind::Adam,
        lr: 0.003,
        ..RunConfig::default()
    };
    let (teacher, s) = teacher_then_student(Task::Detect, base, "soft,at,reg", "det");
    eprintln!(
        "detection: teacher mAP {teacher}, student {:?} {:?}",
        s.curve, s.extra
    );
    // Chance finds no box at IoU 0.5: mAP 0.
    assert!(teacher > 0.0, "teacher mAP {teacher}");
    let map50 = s.extra[0].1;
    assert_eq!(s.extra[0].0, "mAP@.5");
    assert!(map50 > 0.001, "student mAP@.5 {map50}");
    assert!(
        s.curve.last() > s.curve.first(),
        "the student's mAP rises: {:?}",
        s.curve
    );
}

#[test]
fn miou_and_pixel_accuracy_by_hand() {
    use condenser::tasks::segmentation::scores;
    // Truth: 0 0 1 1 2 255; prediction: 0 1 1 1 0 2 (the ignored pixel does not count).
    let truth = [0, 0, 1, 1, 2, 255];
    let pred = [0, 1, 1, 1, 0, 2];
    let s = scores(&pred, &truth, 4);
    // IoU: class 0: tp 1, union |{0,1,4}| = 3 -> 1/3; class 1: tp 2, union 3 -> 2/3;
    // class 2: tp 0, union 1 -> 0; class 3: absent from truth and prediction: no IoU.
    let want = (1.0 / 3.0 + 2.0 / 3.0 + 0.0) / 3.0;
    assert!((s.miou as f64 - want).abs() < 1e-6, "{s:?}");
    assert!((s.pixel_acc - 3.0 / 5.0).abs() < 1e-6, "{s:?}");
    // A prediction out of range is a miss of its pixel's class.
    let s = scores(&[9, 1], &[0, 1], 2);
    assert_eq!((s.miou, s.pixel_acc), (0.5, 0.5));
    // Nothing counted: no score rather than NaN.
    let s = scores(&[1], &[255], 3);
    assert_eq!((s.miou, s.pixel_acc), (0.0, 0.0));
}
