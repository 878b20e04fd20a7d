//! Variable names and shapes of the larger models against their PyTorch definitions (torchvision, timm):
//! every state_dict entry must exist in our VarStore with the same shape, and we must have nothing extra,
//! so that PyTorch weights load unchanged. (tests/oracle.rs compares logits for the smaller ones.)
use sk_exp::models::{registry, Model};
use std::collections::BTreeMap;
use tch::{nn, Device};

mod common;
use common::reference_shapes;

/// (our registry name, the reference in scripts/reference_models.py)
const PAIRS: &[(&str, &str)] = &[
    ("shufflenetv2_1.0x_484", "shufflenet_v2_x1_0"),
    ("densenet232_k48", "densenet232_k48"),
    ("dpn92", "dpn92"),
    ("dpn98", "dpn98"),
    ("sknet50", "skresnext50_32x4d"),
];

/// Differences between our variables and the reference state_dict, as readable lines.
fn shape_differences(name: &str, vs: &nn::VarStore, reference: &BTreeMap<String, Vec<i64>>) -> Vec<String> {
    let ours: BTreeMap<String, Vec<i64>> = vs.variables().into_iter().map(|(k, v)| (k, v.size())).collect();
    let mut diffs = Vec::new();
    for (key, shape) in reference {
        match ours.get(key) {
            None => diffs.push(format!("{name}: missing {key} {shape:?}")),
            Some(s) if s != shape => diffs.push(format!("{name}: {key} is {s:?}, reference {shape:?}")),
            Some(_) => {}
        }
    }
    diffs.extend(ours.keys().filter(|k| !reference.contains_key(*k)).map(|k| format!("{name}: extra variable {k}")));
    diffs
}

#[test]
fn variable_names_and_shapes_match_pytorch_references() {
    let mut failures = Vec::new();
    for (ours, reference) in PAIRS {
        let vs = nn::VarStore::new(Device::Cpu);
        Model::build(&vs.root(), &registry::resolve(ours, None).unwrap()).unwrap();
        let diffs = shape_differences(ours, &vs, &reference_shapes(reference));
        failures.extend(diffs.into_iter().take(10));
    }
    assert!(failures.is_empty(), "differences from the PyTorch references:\n{}", failures.join("\n"));
}
