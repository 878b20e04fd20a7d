//! Bad data input is one clear error naming the file or field, never a stack overflow, a huge allocation
//! or a loader that waits forever: deeply nested pickles, images of extreme size or aspect, huge data spec
//! values, a data set whose sample() panics.
mod common;

use anyhow::Result;
use sk_exp::data::folder::{self, decode};
use sk_exp::data::synthetic::SyntheticSpec;
use sk_exp::data::{batches, cifar, open, CifarSpec, DataSpec, Dataset, FolderSpec, LoaderConfig, Sample, Split};
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

#[test]
fn a_pickle_nested_300000_levels_deep_is_an_error_naming_the_file() {
    let dir = common::fresh_dir("bad_input_data/pickle/cifar-10-batches-py");
    // Protocol 2: None wrapped in 300000 one-tuples, then STOP: 300 KB, as crafted.
    let mut bytes = vec![0x80, 2, b'N'];
    bytes.extend(std::iter::repeat_n(0x85u8, 300_000));
    bytes.push(b'.');
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"] {
        std::fs::write(dir.join(name), &bytes).unwrap();
    }
    let err = format!("{:#}", cifar::open(&dir, &CifarSpec::new(&dir)).expect_err("a 300000-deep pickle was accepted"));
    assert!(err.contains(&dir.join("data_batch_1").display().to_string()), "{err}");
    assert!(err.contains("nested deeper than 100"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

fn write_png(path: &Path, width: u32, height: u32) {
    image::RgbImage::from_pixel(width, height, image::Rgb([10, 200, 30])).save(path).unwrap();
}

#[test]
fn an_image_with_a_side_over_16384_is_refused_before_decoding() {
    let dir = common::fresh_dir("bad_input_data/decode");
    let path = dir.join("tall.png");
    write_png(&path, 1, 200_000);
    let err = decode(&path).expect_err("a 1x200000 image was decoded").to_string();
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    assert!(err.contains("1x200000") && err.contains("16384"), "{err}");
    // An ordinary image still decodes.
    write_png(&dir.join("fine.png"), 40, 30);
    assert_eq!(decode(&dir.join("fine.png")).unwrap().width, 40);
}

/// val/a/ holding a 1x10000 image (its eval resize would be 8 x 80000) and a 12x10 one.
/// Written once and shared (read only): tests run in parallel, and a second fresh_dir would delete the
/// folder under the first test.
fn extreme_aspect_folder() -> std::path::PathBuf {
    static ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let root = common::fresh_dir("bad_input_data/aspect");
        std::fs::create_dir_all(root.join("val/a")).unwrap();
        write_png(&root.join("val/a/0_thin.png"), 1, 10_000);
        write_png(&root.join("val/a/1_fine.png"), 12, 10);
        root
    })
    .clone()
}

fn small_eval(root: &Path, skip_bad_images: bool) -> FolderSpec {
    FolderSpec { crop: 8, eval_crop: 8, eval_resize: Some(8), skip_bad_images, ..FolderSpec::new(root) }
}

#[test]
fn an_image_whose_eval_resize_would_be_huge_is_refused_or_skipped() {
    let root = extreme_aspect_folder();
    let set = folder::open_eval(&root, &small_eval(&root, false)).unwrap();
    assert_eq!(set.len(), 2);
    let err = format!("{:#}", set.sample(0, Split::Eval, 0).err().expect("the 1x10000 image was resized"));
    assert!(err.contains("0_thin.png") && err.contains("1x10000") && err.contains("16384"), "{err}");
    assert_eq!(set.sample(1, Split::Eval, 0).unwrap().pixels.len(), 3 * 8 * 8);
    // With skip_bad_images the loader leaves it out and counts it, as an undecodable file.
    let set = Arc::new(folder::open_eval(&root, &small_eval(&root, true)).unwrap());
    let mut loader = batches(set, LoaderConfig::eval(4, 0)).unwrap();
    let batch = loader.next().unwrap().unwrap();
    assert_eq!(batch.labels.size(), [1]);
    assert_eq!(loader.skipped().count, 1);
}

#[test]
fn huge_data_spec_values_are_errors_naming_the_field() {
    let synthetic =
        |spec: SyntheticSpec| format!("{:#}", open(&DataSpec::Synthetic(spec), None).err().expect("opened"));
    let err = synthetic(SyntheticSpec { train_size: 1_000_000_000_000_000, ..Default::default() });
    assert!(err.contains("data.train_size: expected at most 100000000, got 1000000000000000"), "{err}");
    let err = synthetic(SyntheticSpec { eval_size: 100_000_001, ..Default::default() });
    assert!(err.contains("data.eval_size: expected at most 100000000"), "{err}");
    let err = synthetic(SyntheticSpec { image_size: 100_000, ..Default::default() });
    assert!(err.contains("data.image_size: expected at most 4096, got 100000"), "{err}");
    let root = extreme_aspect_folder();
    for (spec, expected) in [
        (FolderSpec { crop: 100_000, ..small_eval(&root, false) }, "data.crop: expected at most 4096, got 100000"),
        (
            FolderSpec { eval_crop: 5000, eval_resize: None, ..small_eval(&root, false) },
            "data.eval_crop: expected at most 4096",
        ),
        (
            FolderSpec { eval_resize: Some(1 << 40), ..small_eval(&root, false) },
            "data.eval_resize: expected at most 16384",
        ),
    ] {
        let err = format!("{:#}", open(&DataSpec::Folder(spec), None).err().expect("opened"));
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn sk_exp_train_refuses_a_huge_train_size_in_one_line() {
    let out_dir = common::fresh_dir("bad_input_data/train");
    let mut args: Vec<String> = ["train", "--model", common::TINY_BASE, "--epochs", "1", "--data", "synthetic"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(common::tiny_set_args("model.overrides.", &[]));
    args.extend(["--set".into(), "data.train_size=1000000000000000".into()]);
    args.extend(["--out".into(), out_dir.display().to_string(), "--quiet".into()]);
    let out = common::sk_exp(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("data.train_size: expected at most"), "{stderr}");
}

/// Eight 2x2 samples; sample 5 panics.
struct Panicking;

impl Dataset for Panicking {
    fn len(&self) -> usize {
        8
    }
    fn num_classes(&self) -> i64 {
        2
    }
    fn image_size(&self) -> (i64, i64) {
        (2, 2)
    }
    fn sample(&self, index: usize, _split: Split, _seed: u64) -> Result<Sample> {
        if index == 5 {
            panic!("sample {index} is broken");
        }
        Ok(Sample { pixels: vec![0.0; 12], label: (index % 2) as i64 })
    }
}

#[test]
fn a_panic_in_a_sample_reaches_the_consumer_as_an_error() {
    for workers in [0, 1, 3] {
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let results: Vec<Result<(), String>> = batches(Arc::new(Panicking), LoaderConfig::eval(2, workers))
                .unwrap()
                .map(|b| b.map(|_| ()).map_err(|e| format!("{e:#}")))
                .collect();
            let _ = sender.send(results);
        });
        let results = receiver
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{workers} workers: the loader gave no answer ({e})"));
        // Batches 0 and 1 are fine, batch 2 (samples 4, 5) fails, and nothing comes after the failure.
        assert_eq!(results.len(), 3, "{workers} workers: {results:?}");
        assert!(results[..2].iter().all(Result::is_ok), "{workers} workers: {results:?}");
        let err = results[2].as_ref().unwrap_err();
        assert!(err.contains("panicked") && err.contains("sample 5 is broken"), "{workers} workers: {err}");
    }
}
