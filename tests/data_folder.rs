//! ImageNet-style folders and their transforms, against PIL/torchvision outputs written by
//! tests/support/write_folder.py on the same files.
mod common;

use anyhow::Result;
use sk_exp::data::folder::{self, decode};
use sk_exp::data::image::{CropBox, Image};
use sk_exp::data::transforms::{normalise, random_resized_box, resize, resize_centre_crop, IMAGENET_NORM};
use sk_exp::data::{batches, open, seed, DataSpec, Dataset, FolderSpec, LoaderConfig, Split};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

fn files() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::fresh_dir("data_folder");
        common::run_python("tests/support/write_folder.py", [&dir]);
        dir
    })
}

fn oracle(name: &str, width: usize, height: usize) -> Image {
    Image::new(width, height, std::fs::read(files().join("oracle").join(name)).unwrap())
}

/// (max, mean) absolute difference of two same-sized images.
fn diff(a: &Image, b: &Image) -> (u8, f64) {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let d: Vec<u8> = a.pixels.iter().zip(&b.pixels).map(|(x, y)| x.abs_diff(*y)).collect();
    (*d.iter().max().unwrap(), d.iter().map(|&v| v as f64).sum::<f64>() / d.len() as f64)
}

/// (file key, width, height, kind, numeric args) per line of cases.txt.
fn cases() -> Vec<(String, usize, usize, String, Vec<usize>)> {
    let text = std::fs::read_to_string(files().join("oracle/cases.txt")).unwrap();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let nums = f[4..].iter().map(|v| v.parse().unwrap()).collect();
            (f[0].to_string(), f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].to_string(), nums)
        })
        .collect()
}

fn source_path(key: &str) -> PathBuf {
    // key = split_class_file, the class names holding one underscore ("n01_zebra").
    let mut parts = key.splitn(4, '_');
    let (split, a, b, file) =
        (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    files().join("tree").join(split).join(format!("{a}_{b}")).join(file)
}

#[test]
fn decoding_matches_pil() {
    for (key, w, h, kind, _) in cases().into_iter().filter(|c| c.3 == "decode") {
        let ours = decode(&source_path(&key)).unwrap();
        let (max, mean) = diff(&ours, &oracle(&format!("{key}.rgb"), w, h));
        if key.ends_with(".png") {
            assert_eq!(max, 0, "{key} ({kind}): PNG decoding must be exact");
        } else {
            // JPEG decoders may differ in IDCT and chroma upsampling by a few levels.
            assert!(mean < 1.0 && max <= 12, "{key}: JPEG decode differs from PIL by max {max}, mean {mean:.3}");
        }
    }
}

#[test]
fn resized_crops_and_eval_transform_match_torchvision() {
    let mut checked = 0;
    for (key, w, h, kind, args) in cases() {
        // Both sides start from PIL's pixels, so only the resampling is compared.
        let source = oracle(&format!("{key}.rgb"), w, h);
        let (ours, name) = match (kind.as_str(), &args[..]) {
            ("crop", &[t, l, ch, cw, s]) => (
                resize(&source, CropBox { left: l, top: t, width: cw, height: ch }, s, s),
                format!("crop_{t}_{l}_{ch}_{cw}_{s}"),
            ),
            ("eval", &[r, c]) => (resize_centre_crop(&source, r, c), format!("eval_{r}_{c}")),
            _ => continue,
        };
        let reference = oracle(&format!("{key}.{name}.rgb"), ours.width, ours.height);
        // Pillow picks which axis to resample first by its own rule; the order changes only the rounding.
        let (max, mean) = diff(&ours, &reference);
        assert!(max <= 1 && mean < 0.3, "{key} {name}: differs from torchvision by max {max}, mean {mean:.4}");
        checked += 1;
    }
    assert_eq!(checked, 14);
}

#[test]
fn random_resized_box_follows_torchvision() {
    let (scale, ratio) = ((0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0));
    let stats = std::fs::read_to_string(files().join("oracle/rrc_stats.txt")).unwrap();
    for line in stats.lines() {
        let v: Vec<f64> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
        let (w, h) = (v[0] as usize, v[1] as usize);
        let mut rng = seed::rng(w as u64);
        let mut sum = [0f64; 4];
        let n = 20000;
        for _ in 0..n {
            let b = random_resized_box(w, h, scale, ratio, &mut rng);
            assert!(b.width > 0 && b.height > 0 && b.left + b.width <= w && b.top + b.height <= h, "{b:?}");
            for (s, x) in sum.iter_mut().zip([b.width, b.height, b.left, b.top]) {
                *s += x as f64 / n as f64;
            }
        }
        // Means of 20000 draws: within about 5 standard errors of torchvision's own means.
        let tolerance = 0.015 * w.max(h) as f64;
        for (i, what) in ["width", "height", "left", "top"].iter().enumerate() {
            assert!(
                (sum[i] - v[2 + i]).abs() < tolerance,
                "{w}x{h}: mean {what} {:.2}, torchvision {:.2}",
                sum[i],
                v[2 + i]
            );
        }
    }
    // Too wide for any crop of ratio <= 4/3 and area >= 8%: torchvision's fallback, a centred 13x10 crop.
    let mut rng = seed::rng(0);
    assert_eq!(
        random_resized_box(1000, 10, scale, ratio, &mut rng),
        CropBox { left: 493, top: 0, width: 13, height: 10 }
    );
    assert_eq!(
        random_resized_box(10, 1000, scale, ratio, &mut rng),
        CropBox { left: 0, top: 493, width: 10, height: 13 }
    );
}

fn spec(root: &Path) -> FolderSpec {
    FolderSpec { crop: 64, eval_crop: 56, eval_resize: Some(64), ..FolderSpec::new(root) }
}

#[test]
fn folders_give_sorted_classes_and_transformed_samples() {
    let (train, val) = folder::open(&files().join("tree"), &spec(&files().join("tree"))).unwrap();
    assert_eq!(train.class_names(), ["n00_cat", "n01_zebra", "n02_dog"]);
    assert_eq!((train.len(), val.len(), train.num_classes()), (6, 2, 3));
    assert_eq!(train.path(0), files().join("tree/train/n00_cat/x.jpeg"));
    assert_eq!((train.image_size(), val.image_size()), ((64, 64), (56, 56)));
    let labels: Vec<i64> = (0..6).map(|i| train.sample(i, Split::Eval, 0).unwrap().label).collect();
    assert_eq!(labels, [0, 0, 1, 1, 1, 2]);

    // Evaluation of v2.png = resize 64 + centre crop 56 of its pixels, normalised with ImageNet statistics.
    let v2 = val.sample(1, Split::Eval, 0).unwrap();
    let pixels = oracle("val_n02_dog_v2.png.rgb", 150, 201);
    assert_eq!(v2.pixels, normalise(&resize_centre_crop(&pixels, 64, 56), &IMAGENET_NORM));
    assert_eq!(v2.label, 2);

    let a = train.sample(2, Split::Train, 5).unwrap();
    assert_eq!(a.pixels.len(), 3 * 64 * 64);
    assert_eq!(a.pixels, train.sample(2, Split::Train, 5).unwrap().pixels);
    assert!((6..12).any(|s| train.sample(2, Split::Train, s).unwrap().pixels != a.pixels));

    let spec = DataSpec::Folder(FolderSpec { root: "tree".into(), ..spec(Path::new("")) });
    let splits = open(&spec, Some(files())).unwrap();
    let got: Vec<_> = batches(splits.train, LoaderConfig::train(4, 0, 0, 2)).unwrap().collect::<Result<_>>().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].images.size(), [4, 3, 64, 64]);
}

/// A copy of the tree in a fresh place, so a test can damage it.
fn copy_tree(name: &str) -> PathBuf {
    let to = common::fresh_dir(&format!("data_folder_{name}"));
    for split in ["train", "val"] {
        for class in std::fs::read_dir(files().join("tree").join(split)).unwrap() {
            let class = class.unwrap().path();
            let dest = to.join(split).join(class.file_name().unwrap());
            std::fs::create_dir_all(&dest).unwrap();
            for file in std::fs::read_dir(&class).unwrap() {
                let file = file.unwrap().path();
                std::fs::copy(&file, dest.join(file.file_name().unwrap())).unwrap();
            }
        }
    }
    to
}

fn open_err(root: &Path) -> String {
    format!("{:#}", folder::open(root, &spec(root)).expect_err("expected an error"))
}

#[test]
fn bad_folders_are_errors_that_name_the_path() {
    let root = copy_tree("empty_class");
    std::fs::create_dir(root.join("train/n03_empty")).unwrap();
    std::fs::write(root.join("train/n03_empty/readme.txt"), "no images").unwrap();
    let err = open_err(&root);
    assert!(err.contains("n03_empty") && err.contains("holds no images"), "{err}");

    let root = copy_tree("no_val");
    std::fs::remove_dir_all(root.join("val")).unwrap();
    let err = open_err(&root);
    assert!(err.contains("val") && err.contains("cannot read image folder"), "{err}");

    let root = copy_tree("stray_val_class");
    std::fs::create_dir(root.join("val/n09_bird")).unwrap();
    let err = open_err(&root);
    assert!(err.contains("n09_bird") && err.contains("no counterpart"), "{err}");

    let err = open_err(&files().join("missing"));
    assert!(err.contains("missing") && err.contains("does not exist"), "{err}");

    let root = copy_tree("no_splits");
    std::fs::remove_dir_all(root.join("train")).unwrap();
    std::fs::remove_dir_all(root.join("val")).unwrap();
    let err = open_err(&root);
    assert!(err.contains("no_splits") && err.contains("neither train/ nor val/"), "{err}");
}

#[test]
fn the_evaluation_set_opens_alone_with_the_training_numbering() {
    let root = copy_tree("eval_alone");
    let (_, val) = folder::open(&root, &spec(&root)).unwrap();
    // Training images are not listed: an empty training class folder does not stop evaluation.
    std::fs::create_dir(root.join("train/n03_empty")).unwrap();
    assert!(folder::open(&root, &spec(&root)).is_err());
    let alone = folder::open_eval(&root, &spec(&root)).unwrap();
    assert_eq!(alone.class_names(), ["n00_cat", "n01_zebra", "n02_dog", "n03_empty"]);
    assert_eq!(alone.len(), val.len());
    for i in 0..val.len() {
        assert_eq!(alone.path(i), val.path(i));
        assert_eq!(alone.sample(i, Split::Eval, 0).unwrap().label, val.sample(i, Split::Eval, 0).unwrap().label);
    }
    let spec = DataSpec::Folder(FolderSpec { root: "data_folder_eval_alone".into(), ..spec(&root) });
    assert_eq!(sk_exp::data::open_eval(&spec, root.parent()).unwrap().len(), 2);
}

#[test]
fn a_folder_with_only_val_serves_evaluation_but_not_training() {
    let root = copy_tree("val_only");
    std::fs::remove_dir_all(root.join("train")).unwrap();
    let (train, val) = folder::open(&root, &spec(&root)).unwrap();
    // Without train/ the classes are val/'s own (this val/ lacks n01_zebra, so dog is class 1 here).
    assert_eq!(val.class_names(), ["n00_cat", "n02_dog"]);
    assert_eq!((train.len(), val.len()), (0, 2));
    let labels: Vec<i64> = (0..2).map(|i| val.sample(i, Split::Eval, 0).unwrap().label).collect();
    assert_eq!(labels, [0, 1]);

    let data = format!("folder:{}", root.display());
    let run = root.join("run").display().to_string();
    let out =
        common::sk_exp(["train", "--model", "resnet50", "--epochs", "1", "--quiet", "--data", &data, "--out", &run]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("training set is empty"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn undecodable_images_stop_the_loader_or_are_skipped_and_counted() {
    let root = copy_tree("bad_images");
    std::fs::write(root.join("train/n01_zebra/b.jpg"), "this is not a JPEG").unwrap();
    let jpeg = std::fs::read(root.join("train/n01_zebra/a.JPEG")).unwrap();
    std::fs::write(root.join("train/n01_zebra/a.JPEG"), &jpeg[..jpeg.len() / 3]).unwrap();

    let (train, _) = folder::open(&root, &spec(&root)).unwrap();
    let err = format!("{:#}", train.sample(3, Split::Train, 0).err().unwrap());
    assert!(err.contains("b.jpg") && err.contains("cannot decode"), "{err}");
    let err = batches(Arc::new(train), LoaderConfig::eval(2, 2)).unwrap().find_map(|b| b.err()).unwrap().to_string();
    assert!(err.contains("n01_zebra/a.JPEG") && err.contains("truncated JPEG"), "{err}");

    let (train, _) = folder::open(&root, &FolderSpec { skip_bad_images: true, ..spec(&root) }).unwrap();
    let mut it = batches(Arc::new(train), LoaderConfig::eval(4, 2)).unwrap();
    let sizes: Vec<i64> = it.by_ref().map(|b| b.unwrap().labels.size()[0]).collect();
    assert_eq!(sizes, [4 - 2, 2], "a.JPEG and b.jpg leave the first batch");
    let skipped = it.skipped();
    assert_eq!(skipped.count, 2);
    assert!(
        skipped.examples.iter().any(|e| e.contains("a.JPEG")) && skipped.examples.iter().any(|e| e.contains("b.jpg"))
    );
}
