//! Bounded fuzzing of every parser: each takes a few hundred seeded mutations
//! of a valid file (bit flips, special bytes, truncations, insertions, runaway
//! length fields) and must answer with a value or a clear error that names the
//! file, never a panic, a hang or an unbounded allocation. The seeds are fixed,
//! so a failure reproduces; an input that once failed is kept as a named case.

mod common;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use common::gpu;
use condenser::data::{DataOptions, Split, cifar, folder, idx, load};
use condenser::distill::trainer::{RunConfig, run};
use condenser::nn::{ModelSpec, build_model, safetensors};
use condenser::rng::Rng;

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("condenser-fuzz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One seeded mutation of `base`.
fn mutate(base: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = base.to_vec();
    let n = v.len().max(1);
    match rng.below(7) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(n).min(v.len().saturating_sub(1));
                if !v.is_empty() {
                    v[i] ^= 1 << rng.below(8);
                }
            }
        }
        1 => {
            let i = rng.below(n).min(v.len().saturating_sub(1));
            if !v.is_empty() {
                v[i] = [0u8, 0xff, 0x7f, 0x80, b'"', b'{', b'}'][rng.below(7)];
            }
        }
        2 => v.truncate(rng.below(n)),
        3 => {
            let i = rng.below(n + 1).min(v.len());
            let junk: Vec<u8> = (0..1 + rng.below(16))
                .map(|_| rng.below(256) as u8)
                .collect();
            v.splice(i..i, junk);
        }
        4 => {
            // A runaway length or count: the first 8 bytes, or any 4 aligned ones.
            let at = if rng.below(2) == 0 {
                0
            } else {
                4 * rng.below(n / 4 + 1)
            };
            let val: u64 = [u64::MAX, 1 << 40, 0, 1 << 31, 7][rng.below(5)];
            for (k, b) in val.to_le_bytes().iter().enumerate() {
                if at + k < v.len() {
                    v[at + k] = *b;
                }
            }
        }
        5 => {
            let a = rng.below(n).min(v.len());
            let b = (a + rng.below(64)).min(v.len());
            let chunk = v[a..b].to_vec();
            v.extend_from_slice(&chunk);
        }
        _ => v.clear(),
    }
    v
}

/// Runs `parse` on `cases` mutations of `base` written to `path`; a panic fails
/// the test with the seed, an error must name the file.
fn fuzz(
    name: &str,
    base: &[u8],
    path: &Path,
    cases: u64,
    parse: &mut dyn FnMut(&Path) -> Result<(), String>,
) {
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut errors = 0;
    for seed in 0..cases {
        let mut rng = Rng::new(seed * 7919 + 1);
        let bytes = mutate(base, &mut rng);
        std::fs::write(path, &bytes).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| parse(path)));
        match r {
            Err(_) => panic!(
                "{name}: mutation seed {seed} panicked ({} bytes)",
                bytes.len()
            ),
            Ok(Err(msg)) => {
                errors += 1;
                assert!(
                    msg.contains(&file) || msg.contains("data set error"),
                    "{name} seed {seed}: the error does not name the file: {msg}"
                );
            }
            Ok(Ok(())) => {}
        }
    }
    // The mutations must mostly be caught, or the fuzzer is not reaching the checks.
    assert!(
        errors > cases / 4,
        "{name}: only {errors} of {cases} mutations were refused"
    );
}

#[test]
fn weights_files() {
    let g = gpu();
    let dir = tmp("weights");
    let spec = ModelSpec {
        arch: "cnn4".into(),
        in_channels: 1,
        num_classes: 3,
        task: condenser::tasks::Task::Classify,
    };
    let m = build_model(&g, &spec, 0).unwrap();
    let good = dir.join("good.safetensors");
    safetensors::save(m.as_ref(), &good, &[("arch", "cnn4".into())]).unwrap();
    let base = std::fs::read(&good).unwrap();
    fuzz(
        "safetensors",
        &base,
        &dir.join("w.safetensors"),
        400,
        &mut |p| {
            safetensors::metadata(p).map_err(|e| e.to_string())?;
            safetensors::load(m.as_ref(), p).map_err(|e| e.to_string())
        },
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checkpoints() {
    let g = gpu();
    let dir = tmp("ckpt");
    let cfg = RunConfig {
        data: "shapes".into(),
        image_size: Some(10),
        shapes_count: Some(64),
        test_limit: Some(16),
        student_model: "cnn4".into(),
        epochs: 2,
        batch_size: 32,
        out_dir: dir.join("run"),
        progress: false,
        stop_after: Some(1),
        ..RunConfig::default()
    };
    run(&g, &cfg).unwrap();
    let ckpt = dir.join("run/checkpoint.safetensors");
    let base = std::fs::read(&ckpt).unwrap();
    let resume = RunConfig {
        resume: true,
        ..cfg.clone()
    };
    fuzz("checkpoint", &base, &ckpt, 60, &mut |_| {
        // A damaged checkpoint is refused; one whose damage is only in the
        // numbers may resume. Either way the folder stays resumable by hand.
        let r = run(&g, &resume).map(|_| ()).map_err(|e| e.to_string());
        let _ = std::fs::remove_file(dir.join("run/model.safetensors"));
        r
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn idx_files_plain_and_gzipped() {
    let dir = tmp("idx");
    let images = idx::encode(&[6, 5, 4], &(0..120).map(|i| i as u8).collect::<Vec<_>>());
    let labels = idx::encode(&[6], &[0, 1, 2, 3, 4, 5]);
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), &labels).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), &labels).unwrap();
    let opts = DataOptions {
        data_dir: Some(dir.clone()),
        ..Default::default()
    };
    let mut parse = |_: &Path| {
        load("mnist", Split::Train, &opts)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    fuzz(
        "idx",
        &images,
        &dir.join("train-images-idx3-ubyte"),
        400,
        &mut parse,
    );
    std::fs::remove_file(dir.join("train-images-idx3-ubyte")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &images).unwrap();
    let gz = gz.finish().unwrap();
    fuzz(
        "idx.gz",
        &gz,
        &dir.join("train-images-idx3-ubyte.gz"),
        400,
        &mut parse,
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cifar_files() {
    let dir = tmp("cifar");
    let rec: Vec<u8> = (0..3 * (1 + 3072)).map(|i| (i % 10) as u8).collect();
    std::fs::write(dir.join("test_batch.bin"), &rec).unwrap();
    fuzz("cifar", &rec, &dir.join("test_batch.bin"), 300, &mut |_| {
        cifar::load(&dir, false, Split::Test, None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn image_folder_files() {
    let dir = tmp("folder");
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::create_dir_all(dir.join("b")).unwrap();
    let img = image::RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 9]));
    img.save(dir.join("a/ok.png")).unwrap();
    img.save(dir.join("b/x.png")).unwrap();
    let base = std::fs::read(dir.join("b/x.png")).unwrap();
    fuzz("png", &base, &dir.join("b/x.png"), 300, &mut |_| {
        folder::load(&dir, 8, None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn toml_configs() {
    let dir = tmp("toml");
    let base = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/distill-fmnist.toml"
    ))
    .unwrap();
    fuzz("toml", &base, &dir.join("run.toml"), 400, &mut |p| {
        // Parse errors name the file; a value out of range names the field.
        let c = RunConfig::from_toml(p).map_err(|e| e.to_string())?;
        if let Err(e) = c.validate() {
            assert!(!e.to_string().is_empty());
        }
        Ok(())
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn voc_masks() {
    let root = tmp("voc");
    for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    image::RgbImage::from_pixel(6, 5, image::Rgb([9, 9, 9]))
        .save(root.join("JPEGImages/a.png"))
        .unwrap();
    let mask = root.join("SegmentationClass/a.png");
    let f = std::fs::File::create(&mask).unwrap();
    let mut e = png::Encoder::new(std::io::BufWriter::new(f), 6, 5);
    e.set_color(png::ColorType::Indexed);
    e.set_palette(
        (0..=255u8)
            .flat_map(condenser::data::voc::voc_color)
            .collect::<Vec<u8>>(),
    );
    e.set_depth(png::BitDepth::Eight);
    e.write_header()
        .unwrap()
        .write_image_data(&(0..30).map(|i| (i % 3) as u8).collect::<Vec<u8>>())
        .unwrap();
    std::fs::write(root.join("ImageSets/Segmentation/train.txt"), "a\n").unwrap();
    let base = std::fs::read(&mask).unwrap();
    let name = format!("voc:{}", root.display());
    let opts = DataOptions {
        size: Some(8),
        ..DataOptions::default()
    };
    fuzz("voc mask", &base, &mask, 300, &mut |_| {
        load(&name, Split::Train, &opts)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn coco_annotations() {
    let root = tmp("coco");
    std::fs::create_dir_all(root.join("annotations")).unwrap();
    std::fs::create_dir_all(root.join("val2017")).unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([9, 9, 9]))
        .save(root.join("val2017/1.png"))
        .unwrap();
    let json = root.join("annotations/instances_val2017.json");
    let base = br#"{"images": [{"id": 1, "file_name": "1.png", "width": 8, "height": 8}],
        "categories": [{"id": 3, "name": "a"}, {"id": 4, "name": "b"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 0},
                        {"id": 2, "image_id": 1, "category_id": 4, "bbox": [0.5, 0, 7, 7.5], "iscrowd": 1}]}"#;
    let name = format!("coco:{}", root.display());
    let opts = DataOptions {
        size: Some(8),
        ..DataOptions::default()
    };
    fuzz("coco json", base, &json, 300, &mut |_| {
        load(&name, Split::Test, &opts)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn onnx_files() {
    // The importer reads a protobuf, then builds and probes the graph on the
    // GPU: every mutation must give a model or an error naming the file.
    let g = gpu();
    let dir = tmp("onnx");
    let base = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/student_shapes.onnx"),
    )
    .unwrap();
    let opts = condenser::onnx::OnnxOptions::default();
    fuzz("onnx", &base, &dir.join("m.onnx"), 300, &mut |p| {
        condenser::onnx::OnnxModel::load(&g, p, &opts)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
