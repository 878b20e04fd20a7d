//! Bad model specs (zero, negative or huge fields, inconsistent SK settings, inputs too small for the
//! network) are one clear error naming the field, when the spec is resolved and when it is built, through
//! the library and through the binary: never a panic or a libtorch abort.
mod common;

use sk_exp::models::{registry, Model, ModelSpec};
use tch::nn::VarStore;

/// (registered model, its override as flow YAML, the text the error must contain).
const CASES: &[(&str, &str, &str)] = &[
    // The bottleneck family: ResNet, ResNeXt, SENet, SKNet, ImageNet and CIFAR.
    ("sknet29", "{groups: 0}", "model.groups: expected at least 1, got 0"),
    ("sknet29", "{groups: -16}", "model.groups: expected at least 1, got -16"),
    ("resnext50_32x4d", "{groups: 0}", "model.groups: expected at least 1, got 0"),
    ("resnet50", "{stem_width: 0}", "model.stem_width: expected at least 1, got 0"),
    ("resnext29_8x64d", "{stem_width: -64}", "model.stem_width: expected at least 1, got -64"),
    ("resnext29_8x64d", "{widths: [-64, 128, 256]}", "model.widths[0]: expected at least 1, got -64"),
    ("senet50", "{outputs: [256, -512, 1024, 2048]}", "model.outputs[1]: expected at least 1, got -512"),
    ("senet29", "{num_classes: 0}", "model.num_classes: expected at least 1, got 0"),
    ("sknet101", "{sk: {stage_dims: [0, 16, 32, 64]}}", "model.sk.stage_dims[0]: expected at least 1, got 0"),
    ("sknet50", "{sk: {stage_dims: [1]}}", "model.sk.stage_dims: expected 4 entries (one per stage), got 1"),
    ("sknet29", "{sk: {stage_dims: [1]}}", "model.sk.stage_dims: expected 3 entries (one per stage), got 1"),
    ("sknet26", "{sk: {reduction: 0}}", "model.sk.reduction: expected at least 1, got 0"),
    ("sknet29", "{sk: {groups: 5}}", "model.sk.groups"),
    ("resnet50", "{input_size: 1}", "model.input_size: expected at least 2, got 1"),
    ("sknet29", "{input_size: 0}", "model.input_size: expected at least 2, got 0"),
    ("sknet29", "{input_size: 100000}", "model.input_size: expected at most 4096, got 100000"),
    ("resnet50", "{stem_width: 1000000000000}", "model.stem_width: expected at most 65536"),
    // ShuffleNetV2 and its +SE / +SK variants.
    ("shufflenetv2_0.5x", "{input_size: 1}", "model.input_size: expected at least 2, got 1"),
    ("shufflenetv2_0.5x_sk", "{sk: {stage_dims: [0, 8, 8]}}", "model.sk.stage_dims[0]: expected at least 1, got 0"),
    ("shufflenetv2_0.5x_sk", "{sk: {groups: 0}}", "model.sk.groups: expected at least 1, got 0"),
    ("shufflenetv2_1.0x_se", "{se: {reduction: -4}}", "model.se.reduction: expected at least 1, got -4"),
    // DenseNet: the stem and three transitions shrink a side by 32 (rounded up per step).
    ("densenet169", "{input_size: 1}", "model.input_size: expected at least 2, got 1"),
    ("densenet169", "{input_size: 16}", "model.input_size: expected at least 29"),
    ("densenet201", "{bn_size: 0}", "model.bn_size: expected at least 1, got 0"),
    // DPN.
    ("dpn68", "{groups: 0}", "model.groups: expected at least 1, got 0"),
    ("dpn92", "{inc: [16, -32, 24, 128]}", "model.inc[1]: expected at least 1, got -32"),
    ("dpn98", "{input_size: -224}", "model.input_size: expected at least 2, got -224"),
];

fn yaml(text: &str) -> yaml_serde::Value {
    yaml_serde::from_str(text).unwrap()
}

#[test]
fn resolving_a_bad_spec_is_an_error_naming_the_field() {
    for &(name, overrides, expected) in CASES {
        let err = match registry::resolve(name, Some(&yaml(overrides))) {
            Ok(spec) => panic!("{name} {overrides}: resolved to {spec:?}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(expected), "{name} {overrides}: {err}");
        assert!(!err.contains('\n'), "{name} {overrides}: not one line: {err}");
    }
    // Every registered model still resolves, and the smallest input each family accepts builds and runs.
    for name in registry::names() {
        registry::resolve(name, None).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    }
    for (name, side) in [("resnet50", 2), ("shufflenetv2_0.5x", 2), ("densenet169", 29), ("dpn68", 2)] {
        let spec = registry::resolve(name, Some(&yaml(&format!("{{input_size: {side}}}")))).unwrap();
        sk_exp::models::complexity::measure(&spec).unwrap_or_else(|e| panic!("{name} at {side}: {e:#}"));
    }
}

/// The spec of `name` with `overrides` merged in without validation (as a file or `--set` could produce it).
fn unchecked(name: &str, overrides: &str) -> ModelSpec {
    let mut tree = yaml_serde::to_value(registry::resolve(name, None).unwrap()).unwrap();
    let yaml_serde::Value::Mapping(changes) = yaml(overrides) else { panic!("{overrides}: not a mapping") };
    for (key, value) in changes {
        let key = key.as_str().unwrap().to_string();
        if let (Some(old), yaml_serde::Value::Mapping(inner)) = (tree.get_mut(&key), &value) {
            for (k, v) in inner {
                old[k.as_str().unwrap()] = v.clone();
            }
        } else {
            tree[key.as_str()] = value;
        }
    }
    yaml_serde::from_value(tree).unwrap()
}

#[test]
fn building_a_bad_spec_is_an_error_naming_the_field() {
    for &(name, overrides, expected) in CASES {
        let spec = unchecked(name, overrides);
        let vs = VarStore::new(tch::Device::Cpu);
        let err = match Model::build(&vs.root(), &spec) {
            Ok(_) => panic!("{name} {overrides}: built"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(expected), "{name} {overrides}: {err}");
    }
}

#[test]
fn sk_exp_train_refuses_a_bad_model_field_in_one_line() {
    let out_dir = common::fresh_dir("bad_input_models/train");
    for (key, value, expected) in [
        ("groups", "0", "model.groups: expected at least 1, got 0"),
        ("input_size", "1", "model.input_size: expected at least 2, got 1"),
        ("sk.stage_dims", "[0, 4, 4]", "model.sk.stage_dims[0]: expected at least 1, got 0"),
    ] {
        let mut args: Vec<String> = ["train", "--model", common::TINY_BASE, "--epochs", "1", "--data", "synthetic"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(common::tiny_set_args("model.overrides.", &[(key, value)]));
        args.extend(["--out".into(), out_dir.join(key).display().to_string(), "--quiet".into()]);
        let out = common::sk_exp(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{key}={value}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{key}={value}: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(expected), "{key}={value}: {stderr}");
    }
}
