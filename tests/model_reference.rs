//! ShuffleNetV2, DenseNet and DPN against their PyTorch definitions (torchvision, timm): the same variable
//! names and shapes as the reference state_dict, and for the smaller ones the same logits on the same weights.
use sk_exp::models::{registry, Model};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{nn, Device, Tensor};

/// Registry names compared by state_dict keys and shapes.
const SHAPES_ONLY: &[&str] = &["shufflenetv2_1.0x", "shufflenetv2_1.0x_484", "densenet232_k48", "dpn92", "dpn98"];
/// Registry names also compared by a forward pass on the reference's weights.
const WITH_FORWARD: &[&str] = &["shufflenetv2_0.5x", "densenet169", "dpn68"];

fn python() -> Option<String> {
    let python = std::env::var("SK_EXP_PYTHON").ok();
    if python.is_none() {
        eprintln!(
            "\n*** SKIPPED: SK_EXP_PYTHON is not set, so the PyTorch reference models cannot be built. \
             Run `. scripts/setup.sh` first (CI always does). ***\n"
        );
    }
    python
}

fn reference_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sk-exp-model-reference-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_reference_script(python: &str, dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/reference_models.py");
    let requests = SHAPES_ONLY.iter().map(|n| n.to_string()).chain(WITH_FORWARD.iter().map(|n| format!("{n}:io")));
    let output = Command::new(python).arg(script).arg(dir).args(requests).output().unwrap();
    assert!(output.status.success(), "reference_models.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

fn reference_shapes(path: &Path) -> BTreeMap<String, Vec<i64>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| {
            let (key, dims) = line.split_once(' ').unwrap();
            let shape = dims.split(',').filter(|d| !d.is_empty()).map(|d| d.parse().unwrap()).collect();
            (key.to_string(), shape)
        })
        .collect()
}

fn build(name: &str) -> (nn::VarStore, Model) {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::build(&vs.root(), &registry::resolve(name, None).unwrap()).unwrap();
    (vs, model)
}

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
fn variables_and_logits_match_pytorch_references() {
    let Some(python) = python() else { return };
    let dir = reference_dir();
    run_reference_script(&python, &dir);
    let mut failures = Vec::new();
    for name in SHAPES_ONLY.iter().chain(WITH_FORWARD) {
        let (mut vs, model) = build(name);
        let reference = reference_shapes(&dir.join(format!("{name}.shapes.txt")));
        let diffs = shape_differences(name, &vs, &reference);
        let matched = diffs.is_empty();
        failures.extend(diffs.into_iter().take(10));
        if !matched || !WITH_FORWARD.contains(name) {
            continue;
        }
        vs.load(dir.join(format!("{name}.safetensors"))).unwrap();
        let io: BTreeMap<String, Tensor> =
            Tensor::read_safetensors(dir.join(format!("{name}.io.safetensors"))).unwrap().into_iter().collect();
        let ours = tch::no_grad(|| model.forward_t(&io["input"], false)).unwrap();
        let expected = &io["output"];
        let max_diff = f64::try_from((&ours - expected).abs().max()).unwrap();
        let scale = f64::try_from(expected.abs().max()).unwrap().max(1.0);
        if max_diff > 1e-4 * scale {
            failures.push(format!("{name}: logits differ from the reference by up to {max_diff:.3e} (scale {scale})"));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failures.is_empty(), "differences from the PyTorch references:\n{}", failures.join("\n"));
}
