//! The attention analysis: the probe records every SK unit without changing the model's output, under
//! the paper's unit names; `sk-exp attention` and an experiment's `analysis:` section write the CSVs and
//! figures whose numbers follow from the selection weights; timm's SKNet-50 gives the same weights as ours.
use sk_exp::data::synthetic::{Subset, Synthetic, SyntheticSpec};
use sk_exp::data::{Dataset, Split};
use sk_exp::models::attention::record_attention;
use sk_exp::models::weights::{load_safetensors, read_tensors, save_safetensors};
use sk_exp::models::{registry, Model};
use std::fs;
use std::path::Path;
use std::process::Output;
use tch::{nn, Device, Kind, Tensor};

mod common;

/// The tiny SKNet's SK units with the paper's paths, 3x3 and "5x5" (3x3 with dilation 2): the analysis is of
/// how the selection between a small and a large kernel follows the object's scale (SKNet-29's second path
/// is 1x1).
const K3_K5: &[(&str, &str)] = &[("sk.paths", "[{kernel: 3}, {kernel: 3, dilation: 2}]")];

/// The tiny SKNet with [`K3_K5`] units on 32x32 images, 10 classes, weights drawn from seed 5.
fn tiny_model() -> (nn::VarStore, Model) {
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::build(&vs.root(), &common::tiny_spec(K3_K5)).unwrap();
    (vs, model)
}

fn sk_exp(args: &[&str]) -> Output {
    let out = common::sk_exp(args);
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

/// The data rows of a CSV file, split at commas.
fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect()
}

fn value(rows: &[Vec<String>], unit: &str, scale: &str, column: usize) -> f64 {
    let row = rows.iter().find(|r| r[0] == unit && r[1] == scale).unwrap_or_else(|| panic!("no row {unit} {scale}"));
    row[column].parse().unwrap()
}

#[test]
fn the_probe_records_every_unit_and_leaves_the_logits_unchanged() {
    let (_vs, model) = tiny_model();
    let xs = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    let idle = tch::no_grad(|| model.forward_t(&xs, false)).unwrap();
    let (probed, records) = record_attention(|| tch::no_grad(|| model.forward_t(&xs, false)));
    let probed = probed.unwrap();
    assert!(idle.equal(&probed), "the logits changed while the probe recorded");
    let labels: Vec<&str> = records.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["SK_2_1", "SK_3_1", "SK_4_1"]);
    for (record, channels) in records.iter().zip([8, 16, 32]) {
        assert_eq!(record.weights.size(), [4, 2, channels]);
        // Softmax over the paths: every channel's weights sum to 1.
        let sums = record.weights.sum_dim_intlist(1, false, None);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-5);
    }
    // Training-mode forwards (with gradients) are unchanged too, and nothing is kept once finished.
    let train_idle = model.forward_t(&xs, true).unwrap();
    let (train_probed, train_records) = record_attention(|| model.forward_t(&xs, true));
    assert_eq!(train_records.len(), 3);
    assert!(train_idle.equal(&train_probed.unwrap()));
    let _logits = tch::no_grad(|| model.forward_t(&xs, false)).unwrap();
    assert!(record_attention(|| ()).1.is_empty(), "an idle probe recorded");
}

#[test]
fn sknet50_units_are_named_sk_2_1_to_sk_5_3() {
    let spec = registry::resolve("sknet50", None).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::build(&vs.root(), &spec).unwrap();
    let xs = Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let (logits, records) = record_attention(|| tch::no_grad(|| model.forward_t(&xs, false)));
    let _logits = logits.unwrap();
    let labels: Vec<String> = records.into_iter().map(|r| r.label).collect();
    let expected: Vec<String> = [(2, 3), (3, 4), (4, 6), (5, 3)]
        .iter()
        .flat_map(|&(stage, blocks)| (1..=blocks).map(move |b| format!("SK_{stage}_{b}")))
        .collect();
    assert_eq!(labels.len(), 16);
    assert_eq!(labels, expected);
}

/// The attention difference of `unit` at `scale`, computed here from the probe: crop the centre 1/scale,
/// resize back (bilinear), mean over channels of w(path 1) - w(path 0), mean over the images.
fn direct_difference(model: &Model, images: &Tensor, unit: &str, scale: f64) -> f64 {
    let side = images.size()[2];
    let crop = (side as f64 / scale).round() as i64;
    let offset = (side - crop) / 2;
    let zoomed =
        images.narrow(2, offset, crop).narrow(3, offset, crop).upsample_bilinear2d([side, side], false, None, None);
    let (logits, records) = record_attention(|| tch::no_grad(|| model.forward_t(&zoomed, false)));
    let _logits = logits.unwrap();
    let record = records.into_iter().find(|r| r.label == unit).unwrap();
    (record.weights.select(1, 1) - record.weights.select(1, 0)).mean(Kind::Double).double_value(&[])
}

#[test]
fn the_command_writes_the_csvs_and_figures_of_a_model_and_its_weights() {
    let dir = common::fresh_dir("attention/cli");
    let (vs, model) = tiny_model();
    let weights = dir.join("tiny.safetensors");
    save_safetensors(&vs, &weights).unwrap();
    let data = dir.join("data.yaml");
    fs::write(&data, "kind: synthetic\ntrain_size: 20\neval_size: 20\n").unwrap();
    let out = dir.join("out");
    let tiny = common::tiny_set_args("", K3_K5);
    let mut args = vec!["attention", "--model", common::TINY_BASE];
    args.extend(tiny.iter().map(String::as_str));
    let (weights_arg, data_arg, out_arg) =
        (weights.display().to_string(), data.display().to_string(), out.display().to_string());
    args.extend(["--weights", &weights_arg, "--data", &data_arg, "--out", &out_arg, "--quiet"]);
    // 18 of 20 images in batches of 8: the limit falls inside the third batch.
    args.extend(["--scales", "1.0,2.0", "--unit", "SK_3_1", "--group", "4", "--batch-size", "8", "--limit", "18"]);
    let result = sk_exp(&args);
    assert!(result.status.success());
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(stdout.contains("SK_4_1") && stdout.contains("2.0x mean ± std"), "{stdout}");

    let units = csv_rows(&out.join("attention_units.csv"));
    let keys: Vec<(String, String)> = units.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    let expected: Vec<(String, String)> = ["SK_2_1", "SK_3_1", "SK_4_1"]
        .iter()
        .flat_map(|u| ["1.0x", "2.0x"].map(|s| (u.to_string(), s.to_string())))
        .collect();
    assert_eq!(keys, expected);
    assert!(units.iter().all(|r| r[2] == "18"));

    // The paired change's mean is the change of the means.
    let shifts = csv_rows(&out.join("attention_shifts.csv"));
    assert_eq!(shifts.len(), 3);
    for row in &shifts {
        assert_eq!((row[1].as_str(), row[2].as_str(), row[3].as_str()), ("2.0x", "1.0x", "18"));
        let change: f64 = row[4].parse().unwrap();
        let expected = value(&units, &row[0], "2.0x", 3) - value(&units, &row[0], "1.0x", 3);
        assert!((change - expected).abs() < 3e-6, "{}: {change} vs {expected}", row[0]);
    }
    let classes = csv_rows(&out.join("attention_classes.csv"));
    assert_eq!(classes.len(), 3 * 2 * 10);
    let counted: usize =
        classes.iter().filter(|r| r[0] == "SK_2_1" && r[1] == "1.0x").map(|r| r[3].parse::<usize>().unwrap()).sum();
    assert_eq!(counted, 18);
    // 16 channels of SK_3_1 in groups of 4, per scale; weights are softmax outputs.
    let channels = csv_rows(&out.join("attention_channels.csv"));
    assert_eq!(channels.len(), 2 * 4);
    assert!(channels.iter().all(|r| r[0] == "SK_3_1" && (0.0..=1.0).contains(&r[3].parse::<f64>().unwrap())));

    // The numbers follow from the selection weights of the same 18 images.
    let synthetic =
        Synthetic::new(&SyntheticSpec { train_size: 20, eval_size: 20, ..SyntheticSpec::default() }, Subset::Eval)
            .unwrap();
    let pixels: Vec<f32> = (0..18).flat_map(|i| synthetic.sample(i, Split::Eval, 0).unwrap().pixels).collect();
    let images = Tensor::from_slice(&pixels).view([18, 3, 32, 32]);
    for (unit, scale, key) in [("SK_2_1", 1.0, "1.0x"), ("SK_4_1", 2.0, "2.0x")] {
        let expected = direct_difference(&model, &images, unit, scale);
        let written = value(&units, unit, key, 3);
        assert!((written - expected).abs() < 2e-6, "{unit} {key}: CSV {written}, direct {expected}");
    }
    for stem in ["attention_units", "attention_channels", "attention_classes"] {
        for ext in ["png", "svg"] {
            let path = out.join(format!("{stem}.{ext}"));
            assert!(
                fs::metadata(&path).map(|m| m.len() > 5_000).unwrap_or(false),
                "{} missing or blank",
                path.display()
            );
        }
    }
}

#[test]
fn mistakes_give_one_line_errors() {
    let dir = common::fresh_dir("attention/errors");
    let (vs, _) = tiny_model();
    let weights = dir.join("tiny.safetensors");
    save_safetensors(&vs, &weights).unwrap();
    let w = weights.display().to_string();
    let out = dir.join("out").display().to_string();
    let tiny = common::tiny_set_args("", K3_K5);
    let mut base = vec!["attention", "--model", common::TINY_BASE];
    base.extend(tiny.iter().map(String::as_str));
    base.extend(["--weights", &w, "--data", "synthetic", "--out", &out, "--quiet", "--limit", "4"]);
    let cases: [(&[&str], &str); 3] = [
        (&["--unit", "SK_9_9"], "SK_2_1, SK_3_1, SK_4_1"),
        (&["--scales", "1.0,0.5"], "0.5"),
        (&["--zoom", "sideways"], "resize or render"),
    ];
    for (extra, expected) in cases {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        let result = sk_exp(&args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success() && stderr.contains(expected), "{extra:?}: {stderr}");
    }
    // A model without SK units has nothing to analyse; the weights must match the model.
    let cases: [(&str, &str); 2] =
        [("resnext29_16x32d", "needs a model with SK units"), ("sknet29", "does not match the model")];
    for (model, expected) in cases {
        let result = sk_exp(&["attention", "--model", model, "--weights", &w, "--data", "synthetic", "--out", &out]);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success() && stderr.contains(expected), "{model}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn an_experiment_analysis_section_runs_after_training_and_the_run_can_be_analysed_again() {
    let dir = common::fresh_dir("attention/experiment");
    let (model, overrides) = (common::TINY_BASE, common::tiny_flow(K3_K5));
    let experiment = dir.join("tiny_attention.yaml");
    fs::write(
        &experiment,
        format!(
            "base:\n  model: {{name: {model}, overrides: {overrides}}}\n  data: {{kind: synthetic, train_size: 32, eval_size: 12}}\n  \
             recipe: {{preset: cifar10, epochs: 1, batch_size: 16}}\n  workers: 0\n\
             analysis:\n  attention: {{scales: [1.0, 1.5], unit: SK_2_1, group: 4, zoom: render}}\n"
        ),
    )
    .unwrap();
    let results = dir.join("results").display().to_string();
    let result = sk_exp(&["run", &experiment.display().to_string(), "--results", &results, "--quiet"]);
    assert!(result.status.success());
    let run_dir = dir.join("results/tiny_attention/base_s0");
    let units = csv_rows(&run_dir.join("attention/attention_units.csv"));
    assert_eq!(units.len(), 3 * 2);
    assert!(units.iter().all(|r| r[2] == "12"));
    assert!(run_dir.join("attention/attention_classes.png").is_file());

    // Again through `sk-exp attention --run`: at 1.0x a rendered scene is the data set's own image.
    let out = dir.join("again");
    let result = sk_exp(&[
        "attention",
        "--run",
        &run_dir.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--scales",
        "1.0",
        "--quiet",
    ]);
    assert!(result.status.success());
    let again = csv_rows(&out.join("attention_units.csv"));
    for unit in ["SK_2_1", "SK_3_1", "SK_4_1"] {
        assert_eq!(value(&again, unit, "1.0x", 3), value(&units, unit, "1.0x", 3), "{unit}");
    }

    // A mistyped analysis key is refused before anything trains.
    fs::write(&experiment, fs::read_to_string(&experiment).unwrap().replace("group:", "groups:")).unwrap();
    let result = sk_exp(&["run", &experiment.display().to_string(), "--results", &results, "--quiet"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success() && stderr.contains("groups"), "{stderr}");
}

/// timm's skresnext50_32x4d weights in our sknet50: the same selection weights unit by unit, and the
/// analysis runs end to end on synthetic images at 64x64.
#[test]
fn timm_skresnext50_weights_give_timms_selection_weights_and_run_the_analysis() {
    let reference = common::reference_run_with("skresnext50_32x4d", 11, "attention_oracle", &["--attention"]);
    let spec = registry::resolve("sknet50", None).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::build(&vs.root(), &spec).unwrap();
    let weights = reference.join("weights.safetensors");
    load_safetensors(&vs, &weights).unwrap();
    let input = read_tensors(&reference.join("input.safetensors")).unwrap().remove(0).1;
    let (logits, ours) = record_attention(|| tch::no_grad(|| model.forward_t(&input, false)));
    let _logits = logits.unwrap();
    let timm = read_tensors(&reference.join("attention.safetensors")).unwrap();
    assert_eq!(ours.len(), 16);
    assert_eq!(timm.len(), 16);
    for record in &ours {
        let (_, expected) = timm
            .iter()
            .find(|(name, _)| *name == record.label)
            .unwrap_or_else(|| panic!("timm has no {}", record.label));
        assert_eq!(record.weights.size(), expected.size(), "{}", record.label);
        let diff = (&record.weights - expected).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "{}: max |ours - timm| = {diff:.2e}", record.label);
    }

    let dir = common::fresh_dir("attention/timm");
    let data = dir.join("data64.yaml");
    fs::write(&data, "kind: synthetic\ntrain_size: 4\neval_size: 4\nimage_size: 64\n").unwrap();
    let out = dir.join("out");
    let args = [
        "attention",
        "--model",
        "sknet50",
        "--weights",
        &weights.display().to_string(),
        "--data",
        &data.display().to_string(),
        "--scales",
        "1.0,1.5,2.0",
        "--batch-size",
        "4",
        "--out",
        &out.display().to_string(),
        "--quiet",
    ];
    assert!(sk_exp(&args).status.success());
    let units = csv_rows(&out.join("attention_units.csv"));
    assert_eq!(units.len(), 16 * 3);
    assert!(units.iter().all(|r| r[2] == "4" && r[3].parse::<f64>().unwrap().abs() <= 1.0));
    // The paper's unit by default: SK_3_4 has 256 channels, 16 groups of 16.
    let channels = csv_rows(&out.join("attention_channels.csv"));
    assert_eq!(channels.len(), 16 * 3);
    assert!(channels.iter().all(|r| r[0] == "SK_3_4"));
    let _ = fs::remove_dir_all(&reference);
}
