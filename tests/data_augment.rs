//! The training augmentation's switches in the data spec: the random-resized crop's scale and ratio, flips,
//! CIFAR's padding and `train_transform: none`, on small image folders and CIFAR files written here (no
//! Python, no downloads).
mod common;

use sk_exp::data::cifar::{self, Cifar};
use sk_exp::data::folder::{self, decode, Folder, TrainTransform};
use sk_exp::data::image::{CropBox, Image};
use sk_exp::data::transforms::{flip_horizontal, normalise, resize, CIFAR10_NORM, IMAGENET_NORM};
use sk_exp::data::{CifarSpec, DataSpec, Dataset, FolderSpec, Split};
use sk_exp::experiment::load::load;
use std::path::{Path, PathBuf};

/// An image unlike its mirror image.
fn pattern(width: usize, height: usize) -> Image {
    let pixels = (0..height)
        .flat_map(|y| (0..width).flat_map(move |x| [(x * 7 + y * 3) as u8, (x * x + 5 * y) as u8, (x * y + 11) as u8]))
        .collect();
    Image::new(width, height, pixels)
}

fn write_png(path: &Path, image: &Image) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let buffer = image::RgbImage::from_raw(image.width as u32, image.height as u32, image.pixels.clone()).unwrap();
    buffer.save(path).unwrap();
}

/// train/ and val/ holding the same images: a/0.png (side x side) and b/1.png (a 3:4 portrait).
fn image_folder(name: &str, side: usize) -> PathBuf {
    let root = common::fresh_dir(&format!("data_augment_{name}"));
    for split in ["train", "val"] {
        write_png(&root.join(split).join("a/0.png"), &pattern(side, side));
        write_png(&root.join(split).join("b/1.png"), &pattern(side * 3 / 4, side));
    }
    root
}

/// A 32-pixel crop at both stages, so that the training and evaluation sets have the same output side.
fn spec(root: &Path) -> FolderSpec {
    FolderSpec { crop: 32, eval_crop: 32, ..FolderSpec::new(root) }
}

fn open(spec: &FolderSpec) -> (Folder, Folder) {
    folder::open(&spec.root, spec).unwrap()
}

fn train_pixels(set: &dyn Dataset, index: usize, seed: u64) -> Vec<f32> {
    set.sample(index, Split::Train, seed).unwrap().pixels
}

/// Every training sample of `index` over 40 seeds is `plain` or `mirrored`; returns how many were mirrored.
fn mirrored_count(set: &dyn Dataset, index: usize, plain: &[f32], mirrored: &[f32]) -> usize {
    (0..40)
        .filter(|&seed| {
            let got = train_pixels(set, index, seed);
            assert!(got == plain || got == mirrored, "seed {seed}: neither the image nor its mirror");
            got == mirrored
        })
        .count()
}

#[test]
fn the_spec_crop_scale_and_ratio_reach_the_training_crops() {
    let root = image_folder("ranges", 80);
    let source = decode(&root.join("train/a/0.png")).unwrap();
    // Every 40 x 40 box (a quarter of the 80 x 80 image, square) resized to the 32-pixel crop.
    let quarter_boxes: Vec<Vec<f32>> = (0..=40)
        .flat_map(|top| (0..=40).map(move |left| CropBox { left, top, width: 40, height: 40 }))
        .map(|b| normalise(&resize(&source, b, 32, 32), &IMAGENET_NORM))
        .collect();
    let quarter = FolderSpec { scale: (0.25, 0.25), ratio: (1.0, 1.0), flip: Some(false), ..spec(&root) };
    let (train, _) = open(&quarter);
    for seed in 0..8 {
        assert!(quarter_boxes.contains(&train_pixels(&train, 0, seed)), "seed {seed}: not a 40x40 crop");
    }
    // The default ranges draw other boxes, so the check above sees the spec's values.
    let (train, _) = open(&FolderSpec { flip: Some(false), ..spec(&root) });
    assert!((0..8).any(|seed| !quarter_boxes.contains(&train_pixels(&train, 0, seed))));
}

#[test]
fn folder_flip_off_never_mirrors_and_on_mirrors_some() {
    let root = image_folder("flip", 80);
    // The whole square image, resized: the evaluation transform at eval_resize = crop gives the same pixels.
    let whole = FolderSpec { scale: (1.0, 1.0), ratio: (1.0, 1.0), eval_resize: Some(32), ..spec(&root) };
    let source = decode(&root.join("train/a/0.png")).unwrap();
    let resized = resize(&source, CropBox { left: 0, top: 0, width: 80, height: 80 }, 32, 32);
    let (plain, mirrored) =
        (normalise(&resized, &IMAGENET_NORM), normalise(&flip_horizontal(&resized), &IMAGENET_NORM));

    let (train, _) = open(&FolderSpec { flip: Some(false), ..whole.clone() });
    assert_eq!(mirrored_count(&train, 0, &plain, &mirrored), 0);
    let (train, _) = open(&whole);
    let flipped = mirrored_count(&train, 0, &plain, &mirrored);
    assert!((5..35).contains(&flipped), "flip on by default: {flipped} of 40 mirrored");
}

#[test]
fn train_transform_none_gives_the_evaluation_tensors() {
    let root = image_folder("none", 48);
    let none = FolderSpec { train_transform: TrainTransform::None, ..spec(&root) };
    assert!(!none.flips(), "no flip by default with train_transform: none");
    let (train, val) = open(&none);
    for index in 0..2 {
        let eval = val.sample(index, Split::Eval, 0).unwrap().pixels;
        for seed in 0..10 {
            assert_eq!(train_pixels(&train, index, seed), eval, "image {index}, seed {seed}");
        }
    }
    // Flips may be asked for on top: then each sample is the evaluation tensor or its mirror.
    let (train, val) = open(&FolderSpec { flip: Some(true), ..none.clone() });
    let source = decode(&root.join("val/a/0.png")).unwrap();
    let eval_image = sk_exp::data::transforms::resize_centre_crop(&source, none.eval_resize(), 32);
    let mirrored = normalise(&flip_horizontal(&eval_image), &IMAGENET_NORM);
    let flipped = mirrored_count(&train, 0, &val.sample(0, Split::Eval, 0).unwrap().pixels, &mirrored);
    assert!((5..35).contains(&flipped), "{flipped} of 40 mirrored");
}

#[test]
fn train_transform_none_takes_images_of_the_crop_size_as_they_are() {
    let root = image_folder("as_is", 32);
    let none = FolderSpec { train_transform: TrainTransform::None, eval_resize: Some(32), ..spec(&root) };
    let (train, _) = open(&none);
    let file = normalise(&decode(&root.join("train/a/0.png")).unwrap(), &IMAGENET_NORM);
    assert_eq!(train_pixels(&train, 0, 3), file);
}

/// A CIFAR-10 binary directory: 3 training images per batch file and 2 test images, in a folder of the
/// calling test's own (`test`), as tests run in parallel and each starts its folder afresh.
fn cifar_files(test: &str) -> PathBuf {
    let dir = common::fresh_dir(&format!("data_augment_cifar/{test}")).join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let record = |i: usize| {
        let mut bytes = vec![(i % 10) as u8];
        bytes.extend((0..3072).map(|p| (p * 13 + i * 31 + p / 32 * 7) as u8));
        bytes
    };
    for (name, images) in (1..=5).map(|b| (format!("data_batch_{b}.bin"), 3)).chain([("test_batch.bin".into(), 2)]) {
        std::fs::write(dir.join(name), (0..images).flat_map(record).collect::<Vec<u8>>()).unwrap();
    }
    dir
}

fn cifar_open(spec: &CifarSpec) -> Cifar {
    cifar::open(&spec.root, spec).unwrap().0
}

#[test]
fn cifar_padding_zero_does_not_shift_and_flip_off_does_not_mirror() {
    let root = cifar_files("padding_flip");
    let default = CifarSpec::new(&root);
    let image = cifar_open(&default).image(1);
    let (plain, mirrored) = (normalise(&image, &CIFAR10_NORM), normalise(&flip_horizontal(&image), &CIFAR10_NORM));

    let still = cifar_open(&CifarSpec { padding: 0, flip: false, ..default.clone() });
    assert_eq!(mirrored_count(&still, 1, &plain, &mirrored), 0);
    let flipping = cifar_open(&CifarSpec { padding: 0, ..default.clone() });
    let flipped = mirrored_count(&flipping, 1, &plain, &mirrored);
    assert!((5..35).contains(&flipped), "{flipped} of 40 mirrored");
    // The default padding shifts: some samples are neither the image nor its mirror.
    let shifting = cifar_open(&CifarSpec { flip: false, ..default });
    assert!((0..10).any(|seed| train_pixels(&shifting, 1, seed) != plain));
}

#[test]
fn the_fields_read_from_yaml_and_defaults_stay_out_of_run_files() {
    let section = "kind: folder\nroot: r\nscale: [0.25, 1.0]\nratio: [0.5, 2.0]\nflip: false\ntrain_transform: none";
    let expected = FolderSpec {
        scale: (0.25, 1.0),
        ratio: (0.5, 2.0),
        flip: Some(false),
        train_transform: TrainTransform::None,
        ..FolderSpec::new("r")
    };
    assert_eq!(yaml_serde::from_str::<DataSpec>(section).unwrap(), DataSpec::Folder(expected.clone()));
    let written = yaml_serde::to_string(&DataSpec::Folder(expected.clone())).unwrap();
    assert_eq!(yaml_serde::from_str::<DataSpec>(&written).unwrap(), DataSpec::Folder(expected));
    let cifar = yaml_serde::from_str::<DataSpec>("kind: cifar\nroot: c\npadding: 0\nflip: false").unwrap();
    assert_eq!(cifar, DataSpec::Cifar(CifarSpec { padding: 0, flip: false, ..CifarSpec::new("c") }));

    // Fields at their defaults are not written, so that run files keep the keys they had before these fields
    // existed (and such files read back as the same run).
    let keys = |spec: DataSpec| -> Vec<String> {
        let tree: yaml_serde::Value = yaml_serde::to_value(&spec).unwrap();
        tree.as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_string()).collect()
    };
    let folder_keys = keys(DataSpec::Folder(FolderSpec::new("r")));
    assert_eq!(folder_keys, ["kind", "root", "crop", "eval_crop", "eval_resize", "skip_bad_images"]);
    assert_eq!(keys(DataSpec::Cifar(CifarSpec::new("c"))), ["kind", "root", "label"]);
}

#[test]
fn bad_values_are_one_line_errors_naming_the_field() {
    let root = image_folder("bad", 32);
    let scale = |s: (f64, f64)| FolderSpec { scale: s, ..spec(&root) };
    let ratio = |r: (f64, f64)| FolderSpec { ratio: r, ..spec(&root) };
    let cases = [
        (scale((0.5, 0.2)), "data.scale: expected [min, max] with 0 < min <= max <= 1, got [0.5, 0.2]"),
        (scale((0.0, 1.0)), "data.scale: expected [min, max] with 0 < min <= max <= 1, got [0, 1]"),
        (scale((0.5, 1.5)), "data.scale: expected [min, max] with 0 < min <= max <= 1, got [0.5, 1.5]"),
        (scale((f64::NAN, 1.0)), "data.scale: expected [min, max] with 0 < min <= max <= 1, got [NaN, 1]"),
        (ratio((-1.0, 1.0)), "data.ratio: expected [min, max] with 0 < min <= max, got [-1, 1]"),
        (ratio((2.0, 1.0)), "data.ratio: expected [min, max] with 0 < min <= max, got [2, 1]"),
        (ratio((1.0, f64::INFINITY)), "data.ratio: expected [min, max] with 0 < min <= max, got [1, inf]"),
    ];
    for (bad, expected) in cases {
        assert_eq!(format!("{:#}", folder::open(&root, &bad).unwrap_err()), expected);
        assert_eq!(format!("{:#}", DataSpec::Folder(bad).check().unwrap_err()), expected);
    }
    let cifar = CifarSpec { padding: 33, ..CifarSpec::new(cifar_files("bad_values")) };
    let expected = "data.padding: expected at most 32 (the image side), got 33";
    assert_eq!(format!("{:#}", cifar::open(&cifar.root, &cifar).unwrap_err()), expected);

    // On the command line, before any data is opened (the folder does not exist).
    let data = format!("folder:{}", root.join("missing").display());
    let out = common::sk_exp(["train", "--model", "resnet50", "--data", &data, "--set", "data.scale=[0.5,0.2]"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("data.scale: expected [min, max]"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn the_lightweight_recipe_trains_on_milder_crops() {
    let options = common::experiment_options(Path::new("/tmp/unused"));
    for name in ["table4", "table_s1"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments").join(format!("{name}.yaml"));
        let experiment = load(&path, &options).unwrap();
        for run in &experiment.runs {
            let DataSpec::Folder(data) = &run.run.data else { panic!("{name}: not an image folder") };
            assert_eq!((data.scale, data.ratio), ((0.25, 1.0), (0.75, 4.0 / 3.0)), "{name} {}", run.label);
        }
    }
}
