//! The 8-bit input path: batches of 8-bit images normalised on the device (here the CPU device, which runs
//! the same conversion) are bitwise the float batches, for CIFAR, image folders and the synthetic set; and
//! a training run fed 8-bit batches gives the float run's input and metrics. The batches do not depend on
//! the number of loader threads either (image folders default to up to 8).
mod common;

use anyhow::Result;
use sk_exp::data::loader::upload;
use sk_exp::data::synthetic::{Subset, Synthetic, SyntheticSpec};
use sk_exp::data::{batches, cifar, folder, Batch, CifarSpec, Dataset, FolderSpec, LoaderConfig};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

fn collect(dataset: Arc<dyn Dataset>, config: LoaderConfig) -> Vec<Batch> {
    batches(dataset, config).unwrap().collect::<Result<Vec<_>>>().unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    Vec::<f32>::try_from(t.contiguous().flatten(0, -1)).unwrap().iter().map(|v| v.to_bits()).collect()
}

/// Each split's float batches (inline) against its float batches from 4 workers and its 8-bit batches
/// (3 workers) normalised by `upload`.
fn assert_uint8_is_float(name: &str, train: Arc<dyn Dataset>, eval: Arc<dyn Dataset>) {
    let configs = [(train, LoaderConfig::train(4, 7, 1, 0)), (eval, LoaderConfig::eval(4, 0))];
    for (split, (data, config)) in ["train", "eval"].into_iter().zip(configs) {
        let (h, w) = data.image_size();
        let float = collect(data.clone(), config.clone());
        let threaded = collect(data.clone(), LoaderConfig { workers: 4, prefetch: 4, ..config.clone() });
        let bytes = collect(data, LoaderConfig { uint8: true, workers: 3, prefetch: 3, ..config });
        assert!(!float.is_empty() && float.len() == bytes.len(), "{name} {split}: batch counts differ");
        for (i, ((f, t), b)) in float.iter().zip(&threaded).zip(&bytes).enumerate() {
            assert!(bits(&t.images) == bits(&f.images), "{name} {split} {i}: 4 workers gave other pixels than 1");
            assert!(t.labels.equal(&f.labels), "{name} {split} {i}: 4 workers gave other labels than 1");
            let n = f.labels.size()[0];
            assert!(f.norm.is_none() && b.norm.is_some(), "{name} {split} {i}: the pixel types were not chosen");
            assert_eq!((b.images.kind(), b.images.size()), (Kind::Uint8, vec![n, h, w, 3]), "{name} {split} {i}");
            let (images, labels) = upload(b, Device::Cpu);
            assert_eq!(images.size(), f.images.size(), "{name} {split} {i}");
            assert!(bits(&images) == bits(&f.images), "{name} {split} batch {i}: device-normalised pixels differ");
            assert!(labels.equal(&f.labels), "{name} {split} {i}: labels differ");
        }
    }
}

#[test]
fn device_normalised_8_bit_batches_are_the_float_batches_bit_for_bit() {
    let spec = SyntheticSpec { seed: 3, train_size: 10, eval_size: 6, classes: 4, image_size: 24 };
    let synthetic = |subset| Arc::new(Synthetic::new(&spec, subset).unwrap()) as Arc<dyn Dataset>;
    assert_uint8_is_float("synthetic", synthetic(Subset::Train), synthetic(Subset::Eval));

    let cifar_files = common::fresh_dir("data_uint8_cifar");
    common::run_python("tests/support/write_cifar.py", [&cifar_files]);
    for dir in ["bin/cifar-10-batches-bin", "py3/cifar-100-python"] {
        let root = cifar_files.join(dir);
        let (train, test) = cifar::open(&root, &CifarSpec::new(&root)).unwrap();
        assert_uint8_is_float(dir, Arc::new(train), Arc::new(test));
    }

    let folder_files = common::fresh_dir("data_uint8_folder");
    common::run_python("tests/support/write_folder.py", [&folder_files]);
    let root = folder_files.join("tree");
    let spec = FolderSpec { crop: 40, eval_crop: 32, eval_resize: Some(40), ..FolderSpec::new(&root) };
    let (train, val) = folder::open(&root, &spec).unwrap();
    assert_uint8_is_float("folder", Arc::new(train), Arc::new(val));
}

/// One epoch of the tiny SKNet on synthetic data with the input path `input`; (metrics.csv's columns 1-7,
/// the first training batch as the model got it).
fn train_with(input: &str, dir: &Path) -> (Vec<String>, Vec<u8>) {
    let dump = dir.join("first_batch.f32");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sk-exp"));
    cmd.args(["train", "--model", common::TINY_BASE, "--data", "synthetic", "--epochs", "1", "--batch-size", "8"])
        .args(["--quiet", "--threads", "1", "--set", "data.train_size=32", "--set", "data.eval_size=16"])
        .args(common::tiny_set_args("model.overrides.", &[]))
        .arg("--out")
        .arg(dir.join("run"))
        .env("SK_EXP_INPUT", input)
        .env("SK_EXP_DUMP_INPUT", &dump);
    let out = common::output(&mut cmd);
    assert!(out.status.success(), "{input}: {}", String::from_utf8_lossy(&out.stderr));
    let metrics = std::fs::read_to_string(dir.join("run/metrics.csv")).unwrap();
    let columns = metrics.lines().map(|l| l.split(',').take(7).collect::<Vec<_>>().join(",")).collect();
    (columns, std::fs::read(dump).unwrap())
}

#[test]
fn a_run_fed_8_bit_batches_gets_the_float_input_and_metrics() {
    let (float_metrics, float_input) = train_with("float", &common::fresh_dir("data_uint8_run_float"));
    let (uint8_metrics, uint8_input) = train_with("uint8", &common::fresh_dir("data_uint8_run_uint8"));
    assert_eq!(float_input.len(), 8 * 3 * 32 * 32 * 4, "the dump is not one float batch");
    assert!(float_input == uint8_input, "the first batches differ");
    assert_eq!(float_metrics.len(), 2, "header and one epoch");
    assert_eq!(float_metrics, uint8_metrics);
}

#[test]
fn an_unknown_input_path_is_refused_in_one_line() {
    let dir = common::fresh_dir("data_uint8_bad_env");
    let out = common::output(
        Command::new(env!("CARGO_BIN_EXE_sk-exp"))
            .args(["train", "--model", common::TINY_BASE, "--data", "synthetic", "--epochs", "1", "--quiet"])
            .args(common::tiny_set_args("model.overrides.", &[]))
            .arg("--out")
            .arg(dir.join("run"))
            .env("SK_EXP_INPUT", "int8"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("SK_EXP_INPUT: expected uint8 or float"), "{err}");
}
