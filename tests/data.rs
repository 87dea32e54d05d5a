//! Data set readers on small files the tests write (good and corrupt ones), the
//! shapes world, and the batch loader's two assembly paths.

mod common;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::gpu;
use condenser::data::loader::{Loader, LoaderConfig, SampleSpec, assemble};
use condenser::data::shapes::ShapesWorld;
use condenser::data::{DataOptions, ImageSet, Split, cifar, folder, idx, load};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("condenser-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn write_mnist(dir: &Path, prefix: &str, n: usize, gzip: bool) -> (Vec<u8>, Vec<u8>) {
    let images: Vec<u8> = (0..n * 4 * 3).map(|i| (i * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let img = idx::encode(&[n, 4, 3], &images);
    let lab = idx::encode(&[n], &labels);
    let (img, lab, ext) = if gzip {
        (gz(&img), gz(&lab), ".gz")
    } else {
        (img, lab, "")
    };
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte{ext}")), img).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")), lab).unwrap();
    (images, labels)
}

fn opts(dir: &Path) -> DataOptions {
    DataOptions {
        data_dir: Some(dir.to_path_buf()),
        ..Default::default()
    }
}

fn err_of(r: condenser::Result<ImageSet>) -> String {
    r.map(|_| ()).unwrap_err().to_string()
}

#[test]
fn idx_files_gzipped_or_not() {
    let dir = tmp("idx");
    let (images, labels) = write_mnist(&dir, "train", 5, true);
    write_mnist(&dir, "t10k", 3, false);
    let set = load("fashion-mnist", Split::Train, &opts(&dir)).unwrap();
    assert_eq!(
        (set.len(), set.channels, set.height, set.width),
        (5, 1, 4, 3)
    );
    assert_eq!(set.images, images);
    assert_eq!(
        set.labels,
        labels.iter().map(|&l| l as u32).collect::<Vec<_>>()
    );
    assert_eq!(set.classes[9], "Ankle boot");
    let test = load("mnist", Split::Test, &opts(&dir)).unwrap();
    assert_eq!(test.len(), 3);
    let limited = load(
        "mnist",
        Split::Train,
        &DataOptions {
            limit: Some(2),
            ..opts(&dir)
        },
    )
    .unwrap();
    assert_eq!(limited.len(), 2);
    assert_eq!(limited.images, images[..24]);
}

#[test]
fn corrupt_idx_files_are_clear_errors() {
    let dir = tmp("idx-bad");
    write_mnist(&dir, "train", 5, false);
    let img = dir.join("train-images-idx3-ubyte");
    let lab = dir.join("train-labels-idx1-ubyte");
    let good_img = std::fs::read(&img).unwrap();
    let good_lab = std::fs::read(&lab).unwrap();
    let load_it = || err_of(load("fashion-mnist", Split::Train, &opts(&dir)));

    std::fs::write(&img, [&[1u8, 2, 3, 4][..], &good_img[4..]].concat()).unwrap();
    assert!(load_it().contains("bad magic"), "{}", load_it());

    std::fs::write(&img, &good_img[..good_img.len() - 7]).unwrap();
    let e = load_it();
    assert!(e.contains("truncated") && e.contains("train-images"), "{e}");

    std::fs::write(&img, &gz(&good_img)[..20]).unwrap();
    assert!(load_it().contains("gzip"), "{}", load_it());

    std::fs::write(&img, &good_img).unwrap();
    std::fs::write(&lab, idx::encode(&[4], &[0, 1, 2, 3])).unwrap();
    assert!(load_it().contains("do not match 5 images"), "{}", load_it());

    std::fs::write(&lab, idx::encode(&[5], &[0, 1, 2, 3, 12])).unwrap();
    assert!(load_it().contains("label 12"), "{}", load_it());

    std::fs::write(&lab, &good_lab).unwrap();
    assert!(load("fashion-mnist", Split::Train, &opts(&dir)).is_ok());
}

#[test]
fn missing_data_says_where_it_looked_and_how_to_get_it() {
    let dir = tmp("missing");
    let e = err_of(load("fashion-mnist", Split::Train, &opts(&dir)));
    assert!(e.contains(dir.to_str().unwrap()), "{e}");
    assert!(e.contains("apt-get install dataset-fashion-mnist"), "{e}");
    let e = err_of(load("cifar10", Split::Train, &DataOptions::default()));
    assert!(e.contains("--data-dir"), "{e}");
    let e = err_of(load("imagenet", Split::Train, &DataOptions::default()));
    assert!(
        e.contains("unknown data set") && e.contains("shapes"),
        "{e}"
    );
}

fn cifar_record(label: &[u8], fill: u8) -> Vec<u8> {
    let mut r = label.to_vec();
    r.extend((0..3072).map(|i| fill.wrapping_add((i % 251) as u8)));
    r
}

#[test]
fn cifar10_and_cifar100_binaries() {
    let dir = tmp("cifar");
    let sub = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&sub).unwrap();
    for b in 1..=5u8 {
        let recs: Vec<u8> = (0..2u8)
            .flat_map(|i| cifar_record(&[(b + i) % 10], b * 10 + i))
            .collect();
        std::fs::write(sub.join(format!("data_batch_{b}.bin")), recs).unwrap();
    }
    std::fs::write(sub.join("test_batch.bin"), cifar_record(&[7], 3)).unwrap();
    let train = cifar::load(&dir, false, Split::Train, None).unwrap();
    assert_eq!((train.len(), train.channels, train.height), (10, 3, 32));
    assert_eq!(train.labels[..4], [1, 2, 2, 3]);
    assert_eq!(train.image(1)[..2], [11, 12]);
    assert_eq!(train.classes[0], "airplane");
    let test = load("cifar10", Split::Test, &opts(&dir)).unwrap();
    assert_eq!(test.labels, vec![7]);

    // CIFAR-100: coarse then fine label; the fine one counts.
    let d100 = tmp("cifar100");
    std::fs::write(
        d100.join("train.bin"),
        [cifar_record(&[3, 99], 0), cifar_record(&[1, 42], 5)].concat(),
    )
    .unwrap();
    std::fs::write(d100.join("test.bin"), cifar_record(&[0, 5], 0)).unwrap();
    let c100 = load("cifar100", Split::Train, &opts(&d100)).unwrap();
    assert_eq!(c100.labels, vec![99, 42]);
    assert_eq!(c100.num_classes(), 100);

    // Truncated file and a CIFAR-100 file read as CIFAR-10.
    std::fs::write(sub.join("test_batch.bin"), &cifar_record(&[7], 3)[..3000]).unwrap();
    let e = err_of(load("cifar10", Split::Test, &opts(&dir)));
    assert!(e.contains("whole number of 3073-byte records"), "{e}");
    std::fs::write(sub.join("test_batch.bin"), cifar_record(&[77], 3)).unwrap();
    let e = err_of(load("cifar10", Split::Test, &opts(&dir)));
    assert!(e.contains("label 77"), "{e}");
}

#[test]
fn image_folders_resize_and_report_bad_folders() {
    let dir = tmp("folder");
    for (class, color) in [("cat", [200u8, 10, 10]), ("dog", [10, 200, 10])] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..2 {
            let img = image::RgbImage::from_pixel(10 + i, 7, image::Rgb(color));
            img.save(dir.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let set = folder::load(&dir, 8, None).unwrap();
    assert_eq!(set.classes, vec!["cat", "dog"]);
    assert_eq!(set.labels, vec![0, 0, 1, 1]);
    assert_eq!((set.channels, set.height, set.width), (3, 8, 8));
    // CHW: the first plane of a red image is red.
    assert_eq!(set.image(0)[0], 200);
    assert_eq!(set.image(0)[64], 10);
    assert_eq!(set.image(2)[64], 200);
    let via_load = load(
        &format!("folder:{}", dir.display()),
        Split::Train,
        &DataOptions {
            size: Some(8),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(via_load.len(), 4);

    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let e = err_of(folder::load(&dir, 8, None));
    assert!(e.contains("empty") && e.contains("no .png"), "{e}");
    std::fs::remove_dir(dir.join("empty")).unwrap();
    std::fs::write(dir.join("dog").join("broken.png"), b"not a png").unwrap();
    let e = err_of(folder::load(&dir, 8, None));
    assert!(
        e.contains("broken.png") && e.contains("cannot decode"),
        "{e}"
    );
    let e = err_of(folder::load(&dir.join("nope"), 8, None));
    assert!(e.contains("is not a folder"), "{e}");
}

#[test]
fn shapes_world_is_deterministic_and_consistent() {
    for size in [17usize, 32, 64] {
        let w = ShapesWorld::new(size, 7);
        let a = w.render_set(40);
        let b = w.render_set(40);
        assert_eq!(a.images, b.images);
        assert_eq!(a.labels, b.labels);
        let other = ShapesWorld::new(size, 8).render_set(40);
        assert_ne!(a.images, other.images);
        for i in 0..a.len() {
            let mask = a.mask(i).unwrap();
            // The label is the class with the most mask pixels.
            let mut area = [0usize; 6];
            for &k in mask {
                if k > 0 {
                    area[k as usize - 1] += 1;
                }
            }
            let best = *area.iter().max().unwrap();
            assert!(best > 0, "image {i} has no visible object");
            assert_eq!(area[a.labels[i] as usize], best, "image {i}: label vs mask");
            for bx in &a.boxes.as_ref().unwrap()[i] {
                assert!(
                    bx.x0 < bx.x1
                        && bx.y0 < bx.y1
                        && (bx.x1 as usize) <= size
                        && (bx.y1 as usize) <= size
                );
                let inside = (bx.y0..bx.y1)
                    .flat_map(|y| (bx.x0..bx.x1).map(move |x| (x, y)))
                    .any(|(x, y)| mask[y as usize * size + x as usize] == bx.class as u8 + 1);
                assert!(inside, "image {i}: box {bx:?} holds no pixel of its class");
            }
        }
    }
    // Every class shows up as a label in a modest sample.
    let set = ShapesWorld::new(32, 0).render_set(300);
    for c in 0..6 {
        assert!(
            set.labels.iter().filter(|&&l| l == c).count() > 20,
            "class {c} is rare"
        );
    }
}

fn tiny_set() -> ImageSet {
    ShapesWorld::new(9, 3).render_set(23)
}

#[test]
fn loader_gpu_and_host_paths_agree() {
    let g = gpu();
    let set = tiny_set();
    let (mean, std) = set.channel_stats();
    let cfg = LoaderConfig {
        batch_size: 5,
        shuffle: true,
        crop_pad: 2,
        flip: true,
        normalize: Some((mean, std)),
        seed: 11,
        drop_last: false,
    };
    let dev = Loader::new(&g, &set, cfg.clone()).unwrap();
    let host = Loader::with_device_copy(&g, &set, cfg, false).unwrap();
    assert!(dev.on_device() && !host.on_device());
    assert_eq!(dev.batches_per_epoch(), 5);
    for epoch in 0..2 {
        let mut seen = Vec::new();
        for (bd, bh) in dev.epoch(epoch).zip(host.epoch(epoch)) {
            let (bd, bh) = (bd.unwrap(), bh.unwrap());
            assert_eq!(bd.samples, bh.samples);
            assert_eq!(
                bd.labels.to_vec_u32().unwrap(),
                bh.labels.to_vec_u32().unwrap()
            );
            // The GPU may fuse the scale and the mean subtraction into one FMA:
            // allow 1e-6 (a few ulp of values of order 1).
            common::assert_close(
                &bd.images.to_vec().unwrap(),
                &bh.images.to_vec().unwrap(),
                1e-6,
                1e-6,
                "batch",
            );
            // Masks move with their images, on both paths.
            let (md, mh) = (bd.masks.unwrap(), bh.masks.unwrap());
            assert_eq!(md.shape(), &[bd.samples.len(), 9, 9]);
            assert_eq!(md.to_vec_u32().unwrap(), mh.to_vec_u32().unwrap());
            seen.extend(bd.samples.iter().map(|s| s.index));
        }
        seen.sort();
        assert_eq!(
            seen,
            (0..23).collect::<Vec<u32>>(),
            "epoch {epoch} must visit every image once"
        );
    }
    assert_ne!(
        dev.order(0),
        dev.order(1),
        "epochs are shuffled differently"
    );
    assert_eq!(
        dev.order(3),
        Loader::new(&g, &set, dev_cfg_seed(11)).unwrap().order(3)
    );
}

fn dev_cfg_seed(seed: u64) -> LoaderConfig {
    LoaderConfig {
        batch_size: 5,
        shuffle: true,
        crop_pad: 2,
        flip: true,
        normalize: None,
        seed,
        drop_last: false,
    }
}

#[test]
fn crop_and_flip_semantics() {
    // A 1-channel 3x3 image 1..9; pad 1.
    let set = ImageSet {
        name: "t".into(),
        channels: 1,
        height: 3,
        width: 3,
        images: (1..=9).collect(),
        labels: vec![0],
        classes: vec!["x".into()],
        masks: None,
        mask_classes: Vec::new(),
        boxes: None,
    };
    let px = |spec: SampleSpec| -> Vec<f32> {
        assemble(&set, &[spec], 1, &[0.0; 4], &[255.0; 4])
            .iter()
            .map(|v| v.round())
            .collect()
    };
    let s = |dx, dy, flip| SampleSpec {
        index: 0,
        dx,
        dy,
        flip,
    };
    assert_eq!(px(s(1, 1, 0)), vec![1., 2., 3., 4., 5., 6., 7., 8., 9.]);
    // dx = 0: the window starts one pixel left of the image: a zero column enters.
    assert_eq!(px(s(0, 1, 0)), vec![0., 1., 2., 0., 4., 5., 0., 7., 8.]);
    assert_eq!(px(s(1, 2, 0)), vec![4., 5., 6., 7., 8., 9., 0., 0., 0.]);
    assert_eq!(px(s(1, 1, 1)), vec![3., 2., 1., 6., 5., 4., 9., 8., 7.]);
}

#[test]
fn masks_are_cropped_and_flipped_with_their_images() {
    // Image and mask 1..9 on a 3x3 grid; pad 1: the mask's padding is 255.
    let set = ImageSet {
        name: "t".into(),
        channels: 1,
        height: 3,
        width: 3,
        images: (1..=9).collect(),
        labels: vec![0],
        classes: vec!["x".into()],
        masks: Some((1..=9).collect()),
        mask_classes: (0..10).map(|c| c.to_string()).collect(),
        boxes: None,
    };
    set.validate().unwrap();
    let s = |dx, dy, flip| SampleSpec {
        index: 0,
        dx,
        dy,
        flip,
    };
    for spec in [s(1, 1, 0), s(0, 1, 0), s(1, 2, 0), s(0, 0, 1), s(2, 1, 1)] {
        let img: Vec<u32> = assemble(&set, &[spec], 1, &[0.0; 4], &[255.0; 4])
            .iter()
            .map(|v| v.round() as u32)
            .collect();
        let mask = condenser::data::loader::assemble_masks(&set, &[spec], 1).unwrap();
        let want: Vec<u32> = img.iter().map(|&v| if v == 0 { 255 } else { v }).collect();
        assert_eq!(mask, want, "{spec:?}");
    }
    // The GPU path on the same samples.
    let g = gpu();
    let cfg = LoaderConfig {
        crop_pad: 1,
        flip: true,
        shuffle: true,
        ..LoaderConfig::eval(1, None)
    };
    let dev = Loader::new(&g, &set, cfg.clone()).unwrap();
    for epoch in 0..6 {
        let b = dev.batch(epoch, 0).unwrap();
        let want = condenser::data::loader::assemble_masks(&set, &b.samples, 1).unwrap();
        assert_eq!(b.masks.unwrap().to_vec_u32().unwrap(), want);
    }
    // A mask value with no class is refused when the set is checked.
    let bad = ImageSet {
        masks: Some(vec![1, 2, 3, 4, 10, 6, 7, 8, 9]),
        ..set
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(
        e.contains("value 10 at pixel 4") && e.contains("10 mask classes"),
        "{e}"
    );
}

#[test]
fn loader_rejects_bad_config() {
    let g = gpu();
    let set = tiny_set();
    let mut cfg = LoaderConfig::eval(0, None);
    assert!(Loader::new(&g, &set, cfg.clone()).is_err());
    cfg.batch_size = 4;
    cfg.normalize = Some((vec![0.5], vec![0.2]));
    let e = Loader::new(&g, &set, cfg.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("3 channels"), "{e}");
    cfg.normalize = Some((vec![0.5; 3], vec![0.2, 0.0, 0.1]));
    assert!(Loader::new(&g, &set, cfg).is_err());
    let drop = LoaderConfig {
        drop_last: true,
        ..LoaderConfig::eval(5, None)
    };
    assert_eq!(Loader::new(&g, &set, drop).unwrap().batches_per_epoch(), 4);
}

#[test]
fn real_fashion_mnist_when_installed() {
    let dir = Path::new(idx::FASHION_MNIST_DIR);
    if !dir.exists() {
        // CI installs dataset-fashion-mnist; there its absence is a failure.
        assert!(
            std::env::var("CI").is_err(),
            "CI must install dataset-fashion-mnist"
        );
        eprintln!("skipped: {} not installed", dir.display());
        return;
    }
    let test = load("fashion-mnist", Split::Test, &DataOptions::default()).unwrap();
    assert_eq!((test.len(), test.height, test.width), (10_000, 28, 28));
    for c in 0..10 {
        assert_eq!(test.labels.iter().filter(|&&l| l == c).count(), 1000);
    }
    let (mean, std) = test.channel_stats();
    // Published statistics of Fashion-MNIST: mean 0.286, std 0.353.
    assert!(
        (mean[0] - 0.286).abs() < 0.01 && (std[0] - 0.353).abs() < 0.01,
        "{mean:?} {std:?}"
    );
}

#[test]
fn idx_edge_cases_are_clear_errors() {
    let dir = tmp("idx-edges");
    // No images at all, and images of 0x0 pixels.
    for (dims, what) in [
        (vec![0usize, 4, 3], "holds no images"),
        (vec![2, 0, 0], "none of the sides 0"),
    ] {
        std::fs::write(dir.join("train-images-idx3-ubyte"), idx::encode(&dims, &[])).unwrap();
        std::fs::write(
            dir.join("train-labels-idx1-ubyte"),
            idx::encode(&[dims[0]], &vec![0; dims[0]]),
        )
        .unwrap();
        let e = err_of(load("fashion-mnist", Split::Train, &opts(&dir)));
        assert!(e.contains(what), "{what}: {e}");
    }
    // A header that declares more data than the file holds, and trailing bytes.
    let mut long = idx::encode(&[2], &[1, 2]);
    long.push(9);
    std::fs::write(dir.join("train-labels-idx1-ubyte"), &long).unwrap();
    write_images(&dir, 2, 4, 3);
    let e = err_of(load("fashion-mnist", Split::Train, &opts(&dir)));
    assert!(e.contains("need 2 bytes") && e.contains("more"), "{e}");
    // A gzip stream declaring 4 GB of images is refused without reading them.
    let bomb = gz(&idx::encode(&[60_000, 60_000, 60_000], &[]));
    std::fs::write(dir.join("train-images-idx3-ubyte"), bomb).unwrap();
    let e = err_of(load("fashion-mnist", Split::Train, &opts(&dir)));
    assert!(e.contains("declare more than"), "{e}");
    // --limit 0 and a size for data that is never resized.
    write_mnist(&dir, "train", 3, false);
    let e = err_of(load(
        "fashion-mnist",
        Split::Train,
        &DataOptions {
            limit: Some(0),
            ..opts(&dir)
        },
    ));
    assert!(e.contains("--limit = 0"), "{e}");
    let e = err_of(load(
        "fashion-mnist",
        Split::Train,
        &DataOptions {
            size: Some(8),
            ..opts(&dir)
        },
    ));
    assert!(e.contains("are 4x3 and are not resized"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn write_images(dir: &Path, n: usize, h: usize, w: usize) {
    std::fs::write(
        dir.join("train-images-idx3-ubyte"),
        idx::encode(&[n, h, w], &vec![1; n * h * w]),
    )
    .unwrap();
}

#[test]
fn shapes_sizes_are_bounded_before_allocating() {
    for (size, count, want) in [
        (0, 10, "image size = 0"),
        (4, 10, "shapes image size = 4"),
        (100_000, 10, "image size = 100000"),
        (4096, 4000, "GiB"),
    ] {
        let o = DataOptions {
            size: Some(size),
            count: Some(count),
            ..Default::default()
        };
        let e = err_of(load("shapes", Split::Train, &o));
        assert!(e.contains(want), "{size}: {e}");
    }
}

fn png(path: &Path, color: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(6, 6, image::Rgb(color))
        .save(path)
        .unwrap();
}

#[test]
fn image_folder_classes_match_by_name_and_hidden_entries_are_ignored() {
    let dir = tmp("folder-split");
    for c in ["blue", "green", "red"] {
        png(&dir.join(format!("train/{c}/a.png")), [1, 2, 3]);
    }
    png(&dir.join("test/blue/x.png"), [0, 0, 200]);
    png(&dir.join("test/red/y.png"), [200, 0, 0]);
    png(&dir.join("train/.ipynb_checkpoints/z.png"), [9, 9, 9]);
    std::fs::write(dir.join("train/red/.DS_Store"), b"junk").unwrap();
    let root = format!("folder:{}", dir.display());
    let o = DataOptions {
        size: Some(6),
        ..Default::default()
    };
    let train = load(&root, Split::Train, &o).unwrap();
    let test = load(&root, Split::Test, &o).unwrap();
    assert_eq!(train.classes, vec!["blue", "green", "red"]);
    assert_eq!(
        test.classes, train.classes,
        "test classes are the training classes"
    );
    assert_eq!(test.labels, vec![0, 2], "red is class 2 in both splits");
    // A test class without training images is an error, not a silent relabel.
    png(&dir.join("test/violet/v.png"), [100, 0, 100]);
    let e = err_of(load(&root, Split::Test, &o));
    assert!(
        e.contains("violet") && e.contains("no training folder"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn image_folder_without_test_holds_out_a_disjoint_split() {
    let dir = tmp("folder-holdout");
    for c in ["a", "b"] {
        for i in 0..20 {
            png(&dir.join(format!("{c}/{i}.png")), [i as u8 * 10, 0, 0]);
        }
    }
    let root = format!("folder:{}", dir.display());
    let o = DataOptions {
        size: Some(6),
        ..Default::default()
    };
    let train = load(&root, Split::Train, &o).unwrap();
    let test = load(&root, Split::Test, &o).unwrap();
    assert_eq!(
        train.len() + test.len(),
        40,
        "every image in exactly one split"
    );
    assert!(!test.is_empty() && test.len() < train.len());
    assert!(test.name.contains("held-out"), "{}", test.name);
    // No test image is a training image (the red channel encodes the file).
    let firsts = |s: &ImageSet| {
        (0..s.len())
            .map(|i| (s.labels[i], s.image(i)[0]))
            .collect::<Vec<_>>()
    };
    let tr = firsts(&train);
    assert!(firsts(&test).iter().all(|x| !tr.contains(x)));
    // The split is the same on every call.
    assert_eq!(load(&root, Split::Test, &o).unwrap().labels, test.labels);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes an 8-bit palette (or grey) PNG of class indices.
fn index_png(path: &Path, w: usize, h: usize, data: &[u8], palette: bool) {
    let f = std::fs::File::create(path).unwrap();
    let mut e = png::Encoder::new(std::io::BufWriter::new(f), w as u32, h as u32);
    if palette {
        e.set_color(png::ColorType::Indexed);
        let pal: Vec<u8> = (0..=255u8)
            .flat_map(condenser::data::voc::voc_color)
            .collect();
        e.set_palette(pal);
    } else {
        e.set_color(png::ColorType::Grayscale);
    }
    e.set_depth(png::BitDepth::Eight);
    e.write_header().unwrap().write_image_data(data).unwrap();
}

/// A VOC-layout set of 8x8 images: train ids a, b, c (palette, grey and RGB
/// masks), val id d. Mask of image i: class (i + 1) on the left half, 0 on
/// the right, 255 on the last row.
fn write_voc(root: &Path) {
    for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        let img = image::RgbImage::from_fn(8, 8, |x, y| {
            image::Rgb([(x * 30) as u8, (y * 30) as u8, i as u8 * 60])
        });
        img.save(root.join(format!("JPEGImages/{id}.png"))).unwrap();
        let mask: Vec<u8> = (0..64)
            .map(|p| {
                if p >= 56 {
                    255
                } else if p % 8 < 4 {
                    i as u8 + 1
                } else {
                    0
                }
            })
            .collect();
        let file = root.join(format!("SegmentationClass/{id}.png"));
        if i == 2 {
            let rgb = image::RgbImage::from_fn(8, 8, |x, y| {
                let v = mask[(y * 8 + x) as usize];
                image::Rgb(if v == 255 {
                    [224, 224, 192]
                } else {
                    condenser::data::voc::voc_color(v)
                })
            });
            rgb.save(&file).unwrap();
        } else {
            index_png(&file, 8, 8, &mask, i != 1);
        }
    }
    std::fs::write(root.join("ImageSets/Segmentation/train.txt"), "a\nb\n\nc\n").unwrap();
    std::fs::write(root.join("ImageSets/Segmentation/val.txt"), "d\n").unwrap();
}

fn voc_opts(size: usize) -> DataOptions {
    DataOptions {
        size: Some(size),
        ..DataOptions::default()
    }
}

#[test]
fn voc_segmentation_sets_read_palette_grey_and_rgb_masks() {
    let root = tmp("voc");
    write_voc(&root);
    let name = format!("voc:{}", root.display());
    let train = load(&name, Split::Train, &voc_opts(8)).unwrap();
    assert_eq!(
        (train.len(), train.height, train.mask_classes.len()),
        (3, 8, 21)
    );
    for i in 0..3 {
        let m = train.mask(i).unwrap();
        assert_eq!(m[0], i as u8 + 1, "image {i}: left half");
        assert_eq!(m[5], 0, "image {i}: right half");
        assert_eq!(m[60], 255, "image {i}: ignored last row");
        assert_eq!(
            train.labels[i],
            i as u32 + 1,
            "the dominant class labels the image"
        );
    }
    let test = load(&name, Split::Test, &voc_opts(8)).unwrap();
    assert_eq!((test.len(), test.mask(0).unwrap()[0]), (1, 4));
    // Resized to 4x4 with nearest neighbours: no class appears at an edge.
    let small = load(&name, Split::Train, &voc_opts(4)).unwrap();
    assert_eq!(
        small.mask(0).unwrap(),
        &[1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0]
    );
    // classes.txt names the classes.
    std::fs::write(root.join("classes.txt"), "bg\none\ntwo\nthree\nfour\n").unwrap();
    let named = load(&name, Split::Train, &voc_opts(8)).unwrap();
    assert_eq!(
        named.mask_classes,
        vec!["bg", "one", "two", "three", "four"]
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// A change that breaks a written data set.
type Spoil = Box<dyn Fn(&Path)>;

#[test]
fn hostile_voc_sets_are_clear_errors() {
    let cases: Vec<(&str, Spoil, &str)> = vec![
        (
            "no list",
            Box::new(|r: &Path| {
                std::fs::remove_file(r.join("ImageSets/Segmentation/train.txt")).unwrap()
            }),
            "train.txt: is missing",
        ),
        (
            "escaping id",
            Box::new(|r: &Path| {
                std::fs::write(
                    r.join("ImageSets/Segmentation/train.txt"),
                    "a\n../../etc/passwd\n",
                )
                .unwrap()
            }),
            "not a plain file id",
        ),
        (
            "empty list",
            Box::new(|r: &Path| {
                std::fs::write(r.join("ImageSets/Segmentation/train.txt"), "\n\n").unwrap()
            }),
            "lists no images",
        ),
        (
            "missing mask",
            Box::new(|r: &Path| std::fs::remove_file(r.join("SegmentationClass/b.png")).unwrap()),
            "b.png: is missing",
        ),
        (
            "missing image",
            Box::new(|r: &Path| std::fs::remove_file(r.join("JPEGImages/c.png")).unwrap()),
            "c.jpg: is missing",
        ),
        (
            "mask of another size",
            Box::new(|r: &Path| {
                index_png(&r.join("SegmentationClass/a.png"), 4, 8, &[0; 32], true)
            }),
            "is 4x8 but its image is 8x8",
        ),
        (
            "class out of range",
            Box::new(|r: &Path| {
                index_png(&r.join("SegmentationClass/a.png"), 8, 8, &[30; 64], true)
            }),
            "holds class 30, but the set has 21 classes",
        ),
        (
            "unknown colour",
            Box::new(|r: &Path| {
                image::RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3]))
                    .save(r.join("SegmentationClass/a.png"))
                    .unwrap()
            }),
            "colour [1, 2, 3]",
        ),
        (
            "corrupt png",
            Box::new(|r: &Path| {
                std::fs::write(
                    r.join("SegmentationClass/a.png"),
                    b"\x89PNG\r\n\x1a\nbroken",
                )
                .unwrap()
            }),
            "not a readable PNG",
        ),
        (
            "corrupt image",
            Box::new(|r: &Path| {
                std::fs::write(r.join("JPEGImages/a.png"), b"not an image").unwrap()
            }),
            "cannot decode the image",
        ),
        (
            "one class",
            Box::new(|r: &Path| std::fs::write(r.join("classes.txt"), "only\n").unwrap()),
            "names 1 classes",
        ),
    ];
    for (what, spoil, want) in cases {
        let root = tmp(&format!("voc-bad-{}", what.replace(' ', "-")));
        write_voc(&root);
        spoil(&root);
        let e = err_of(load(
            &format!("voc:{}", root.display()),
            Split::Train,
            &voc_opts(8),
        ));
        assert!(e.contains(want), "{what}: want {want:?} in: {e}");
        let _ = std::fs::remove_dir_all(&root);
    }
    let e = err_of(load("voc:/nonexistent/voc", Split::Train, &voc_opts(8)));
    assert!(e.contains("is not a folder"), "{e}");
}

/// A COCO set: three 16x8 images in val2017/, categories 5 and 9, one crowd
/// region, one image without objects.
fn write_coco(root: &Path, json: &str) {
    std::fs::create_dir_all(root.join("annotations")).unwrap();
    std::fs::create_dir_all(root.join("val2017")).unwrap();
    for i in 1..=3 {
        image::RgbImage::from_pixel(16, 8, image::Rgb([i * 40, 0, 0]))
            .save(root.join(format!("val2017/{i}.png")))
            .unwrap();
    }
    std::fs::write(root.join("annotations/instances_val2017.json"), json).unwrap();
}

const COCO_OK: &str = r#"{
  "images": [{"id": 7, "file_name": "1.png", "width": 16, "height": 8},
             {"id": 3, "file_name": "2.png", "width": 16, "height": 8},
             {"id": 9, "file_name": "3.png", "width": 16, "height": 8}],
  "categories": [{"id": 9, "name": "dog"}, {"id": 5, "name": "cat"}],
  "annotations": [
    {"id": 1, "image_id": 7, "category_id": 9, "bbox": [2, 1, 6, 4], "iscrowd": 0},
    {"id": 2, "image_id": 7, "category_id": 5, "bbox": [8, 0, 8, 8], "iscrowd": 1},
    {"id": 3, "image_id": 3, "category_id": 5, "bbox": [0, 2, 4, 2]}
  ]
}"#;

#[test]
fn coco_sets_scale_boxes_map_categories_and_keep_crowds() {
    let root = tmp("coco");
    write_coco(&root, COCO_OK);
    let set = load(
        &format!("coco:{}", root.display()),
        Split::Test,
        &voc_opts(8),
    )
    .unwrap();
    assert_eq!(set.classes, vec!["cat", "dog"], "categories in id order");
    let boxes = set.boxes.as_ref().unwrap();
    // 16x8 -> 8x8: x halves, y stays.
    let b = |x0, y0, x1, y1, class, crowd| condenser::data::BBox {
        x0,
        y0,
        x1,
        y1,
        class,
        crowd,
    };
    assert_eq!(
        boxes[0],
        vec![b(1, 1, 4, 5, 1, false), b(4, 0, 8, 8, 0, true)]
    );
    assert_eq!(boxes[1], vec![b(0, 2, 2, 4, 0, false)]);
    assert!(
        boxes[2].is_empty(),
        "an image without objects stays, as a negative"
    );
    assert_eq!(set.labels, vec![1, 0, 0]);
    let e = err_of(load(
        &format!("coco:{}", root.display()),
        Split::Train,
        &voc_opts(8),
    ));
    assert!(e.contains("holds no instances_train"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn hostile_coco_sets_are_clear_errors() {
    let cases = [
        ("not json", "{\"images\": [", "is not COCO instances JSON"),
        (
            "unknown image",
            r#"{"images": [{"id": 1, "file_name": "1.png"}], "categories": [{"id": 1, "name": "a"}], "annotations": [{"image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]}"#,
            "annotation 0: image_id 2",
        ),
        (
            "unknown category",
            r#"{"images": [{"id": 1, "file_name": "1.png"}], "categories": [{"id": 1, "name": "a"}], "annotations": [{"image_id": 1, "category_id": 4, "bbox": [0, 0, 1, 1]}]}"#,
            "category_id 4",
        ),
        (
            "negative size",
            r#"{"images": [{"id": 1, "file_name": "1.png"}], "categories": [{"id": 1, "name": "a"}], "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1]}]}"#,
            "is not [x, y, width >= 0",
        ),
        (
            "escaping file",
            r#"{"images": [{"id": 1, "file_name": "../../etc/passwd"}], "categories": [{"id": 1, "name": "a"}]}"#,
            "not a file inside the image folder",
        ),
        (
            "missing file",
            r#"{"images": [{"id": 1, "file_name": "nope.png"}], "categories": [{"id": 1, "name": "a"}]}"#,
            "nope.png",
        ),
        (
            "no categories",
            r#"{"images": [], "categories": []}"#,
            "has no categories",
        ),
        (
            "twice the same image",
            r#"{"images": [{"id": 1, "file_name": "1.png"}, {"id": 1, "file_name": "2.png"}], "categories": [{"id": 1, "name": "a"}]}"#,
            "image id twice",
        ),
    ];
    for (what, json, want) in cases {
        let root = tmp(&format!("coco-bad-{}", what.replace(' ', "-")));
        write_coco(&root, json);
        let e = err_of(load(
            &format!("coco:{}", root.display()),
            Split::Test,
            &voc_opts(8),
        ));
        assert!(e.contains(want), "{what}: want {want:?} in: {e}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
