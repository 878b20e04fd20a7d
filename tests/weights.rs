//! The safetensors weight loader/saver on a small conv-BN-linear store: round trips, PyTorch quirks
//! (num_batches_tracked, float64 files) and the errors for files that do not fit.
mod common;

use sk_exp::models::layers::{conv_bn, linear, ConvOpts};
use sk_exp::models::weights::{load_safetensors, read_tensors, save_safetensors};
use std::path::PathBuf;
use tch::{nn, Device, Kind, Tensor};

/// conv1/bn1 (weight, bias, running stats), layer1.0.conv1/bn1 and fc: 12 variables.
fn small_store(seed: i64) -> nn::VarStore {
    // One store drawn at a time, so that one seed gives one store.
    let _one_at_a_time = common::torch_rng();
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    conv_bn(&root, "conv1", "bn1", 3, 8, 3, ConvOpts::default(), true);
    conv_bn(&(&root / "layer1" / 0), "conv1", "bn1", 8, 4, 1, ConvOpts::default(), true);
    linear(&root / "fc", 4, 10);
    // Give the BN tensors distinct values so a round trip that skipped them would show (in name order,
    // so that one seed gives one store).
    let vars: std::collections::BTreeMap<_, _> = vs.variables().into_iter().collect();
    tch::no_grad(|| {
        for (name, mut t) in vars {
            if name.contains("bn") {
                t.copy_(&Tensor::rand_like(&t));
            }
        }
    });
    vs
}

fn assert_same_variables(a: &nn::VarStore, b: &nn::VarStore) {
    let b_vars = b.variables();
    for (name, t) in a.variables() {
        assert!(t.equal(&b_vars[&name]), "{name} differs");
    }
}

fn write(path: &PathBuf, tensors: &[(String, Tensor)]) {
    Tensor::write_safetensors(tensors, path).unwrap();
}

#[test]
fn save_then_load_restores_every_variable_including_running_stats() {
    let dir = common::fresh_dir("weights/round_trip");
    let path = dir.join("w.safetensors");
    let original = small_store(1);
    save_safetensors(&original, &path).unwrap();

    let names: Vec<String> = read_tensors(&path).unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 12);
    assert!(names.contains(&"layer1.0.bn1.running_var".to_string()), "{names:?}");
    // Only the file itself is left: the temporary file was renamed into place.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    let restored = small_store(2);
    load_safetensors(&restored, &path).unwrap();
    assert_same_variables(&original, &restored);
}

#[test]
fn pytorch_counters_are_ignored_and_float64_is_converted() {
    let dir = common::fresh_dir("weights/pytorch_quirks");
    let path = dir.join("w.safetensors");
    let original = small_store(3);
    let mut tensors: Vec<(String, Tensor)> =
        original.variables().into_iter().map(|(n, t)| (n, t.detach().to_kind(Kind::Double))).collect();
    tensors.push(("bn1.num_batches_tracked".into(), Tensor::from(7i64)));
    write(&path, &tensors);

    let restored = small_store(4);
    load_safetensors(&restored, &path).unwrap();
    assert_same_variables(&original, &restored);
    assert!(restored.variables().values().all(|t| t.kind() == Kind::Float));
}

#[test]
fn one_error_lists_missing_unexpected_and_mismatched_tensors_and_changes_nothing() {
    let dir = common::fresh_dir("weights/mismatch");
    let path = dir.join("bad.safetensors");
    let mut tensors: Vec<(String, Tensor)> =
        small_store(5).variables().into_iter().map(|(n, t)| (n, t.detach())).collect();
    tensors.retain(|(n, _)| n != "layer1.0.bn1.running_mean");
    tensors.push(("layer1.0.se.fc1.weight".into(), Tensor::zeros([2, 4, 1, 1], (Kind::Float, Device::Cpu))));
    for (name, t) in tensors.iter_mut() {
        if name == "fc.weight" {
            *t = t.reshape([4, 10]);
        }
    }
    write(&path, &tensors);

    let target = small_store(6);
    let before = small_store(6);
    let err = load_safetensors(&target, &path).unwrap_err().to_string();
    for expected in [
        path.display().to_string(),
        "1 missing: layer1.0.bn1.running_mean".into(),
        "1 unexpected: layer1.0.se.fc1.weight".into(),
        "1 mismatched: fc.weight (file [4, 10], model [10, 4])".into(),
    ] {
        assert!(err.contains(&expected), "error lacks '{expected}': {err}");
    }
    assert!(!err.contains('\n'), "expected a one-line error: {err}");
    assert_same_variables(&before, &target);
}

#[test]
fn long_lists_are_cut_with_a_count() {
    let dir = common::fresh_dir("weights/long_list");
    let path = dir.join("other.safetensors");
    write(&path, &[("unrelated".to_string(), Tensor::zeros([1], (Kind::Float, Device::Cpu)))]);
    let err = load_safetensors(&small_store(7), &path).unwrap_err().to_string();
    assert!(err.contains("12 missing: "), "{err}");
    assert!(err.contains("... and 4 more; 1 unexpected: unrelated"), "{err}");
}

#[test]
fn unreadable_files_give_an_error_naming_the_file() {
    let dir = common::fresh_dir("weights/unreadable");
    let good = dir.join("w.safetensors");
    save_safetensors(&small_store(8), &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let text = dir.join("notes.safetensors");
    std::fs::write(&text, "these are not tensors").unwrap();
    let absent = dir.join("absent.safetensors");

    for path in [truncated, text, absent] {
        let err = load_safetensors(&small_store(9), &path).unwrap_err().to_string();
        let expected = format!("weights file {}: cannot read it as safetensors", path.display());
        assert!(err.starts_with(&expected), "{err}");
    }
}

#[test]
fn saving_into_a_missing_directory_is_an_error_naming_the_file() {
    let path = common::fresh_dir("weights/missing_dir").join("no/such/dir/w.safetensors");
    let err = save_safetensors(&small_store(10), &path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
}
