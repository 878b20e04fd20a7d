//! Our models against independent implementations (torchvision, timm): the same random weights, loaded
//! from the reference's state_dict, must give the same eval-mode logits on the same input.
//! The references come from scripts/reference_models.py run by the venv's Python ($SK_EXP_PYTHON).
use sk_exp::models::registry;
use sk_exp::models::weights::{load_safetensors, read_tensors};
use sk_exp::models::Model;
use std::path::Path;

mod common;
use common::reference_run;
use tch::{nn, Device, Tensor};

/// Largest |ours - reference| allowed, relative to the largest |reference| logit (float32 over ~50 layers).
const TOLERANCE: f64 = 1e-4;

fn single_tensor(path: &Path, name: &str) -> Tensor {
    let tensors = read_tensors(path).unwrap();
    tensors.into_iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{}: no '{name}'", path.display())).1
}

/// Builds `ours` from the registry, loads the reference's weights and returns the relative difference.
fn relative_difference(ours: &str, reference: &str) -> f64 {
    let dir = reference_run(reference, 7);
    let spec = registry::resolve(ours, None).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::build(&vs.root(), &spec).unwrap();
    load_safetensors(&vs, &dir.join("weights.safetensors")).unwrap();

    let input = single_tensor(&dir.join("input.safetensors"), "input");
    let expected = single_tensor(&dir.join("output.safetensors"), "output");
    let logits = tch::no_grad(|| model.forward_t(&input, false)).unwrap();
    assert_eq!(logits.size(), expected.size());
    let scale = expected.abs().max().double_value(&[]);
    assert!(scale > 0.0, "the reference logits are all zero");
    let diff = (&logits - &expected).abs().max().double_value(&[]) / scale;
    eprintln!(
        "{ours} vs {reference}: max |ours - reference| / max |reference| = {diff:.3e} (max |reference| {scale:.3})"
    );
    let _ = std::fs::remove_dir_all(&dir);
    diff
}

fn assert_matches(ours: &str, reference: &str) {
    let diff = relative_difference(ours, reference);
    assert!(diff < TOLERANCE, "{ours} differs from {reference}: relative max difference {diff:.3e}");
}

#[test]
fn resnet50_matches_torchvision() {
    assert_matches("resnet50", "resnet50");
}

#[test]
fn resnext50_matches_torchvision() {
    assert_matches("resnext50_32x4d", "resnext50_32x4d");
}

#[test]
fn senet50_matches_timm_seresnext50() {
    assert_matches("senet50", "seresnext50_32x4d");
}

#[test]
fn sknet50_matches_timm_skresnext50() {
    assert_matches("sknet50", "skresnext50_32x4d");
}

#[test]
fn sknet29_matches_independent_pytorch_definition() {
    assert_matches("sknet29", "cifar_sknet29");
}

#[test]
fn senet29_matches_independent_pytorch_definition() {
    assert_matches("senet29", "cifar_senet29");
}

#[test]
fn shufflenetv2_matches_torchvision_with_stages_466() {
    assert_matches("shufflenetv2_1.0x", "shufflenet_v2_466_1.0x");
    assert_matches("shufflenetv2_0.5x", "shufflenet_v2_466_0.5x");
}

#[test]
fn dpn68_matches_timm() {
    assert_matches("dpn68", "dpn68");
}

#[test]
fn densenet169_matches_torchvision() {
    assert_matches("densenet169", "densenet169");
}
