//! TorchScript and PyTorch weights in and out, through the `sk-exp` binary, against PyTorch itself
//! (tests/python/interop_reference.py run by the venv's Python, $SK_EXP_PYTHON).
mod common;

use sk_exp::interop::npy;
use sk_exp::models::weights::{read_tensors, save_safetensors};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Largest |sk-exp - PyTorch| allowed, relative to the largest |PyTorch| logit.
const TOLERANCE: f64 = 1e-4;

/// Runs the PyTorch side and returns what it printed.
fn reference(args: &[&str]) -> String {
    common::run_python("tests/python/interop_reference.py", args)
}

fn sk_exp_ok(args: &[&str]) -> String {
    let out = common::sk_exp(args);
    assert!(out.status.success(), "sk-exp {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The error sk-exp prints for `args`: it must fail with exactly one line, free of C++ backtraces.
fn sk_exp_error(args: &[&str]) -> String {
    let out = common::sk_exp(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "sk-exp {args:?} should fail cleanly; stderr:\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "expected a one-line error, got:\n{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    for noise in ["frame #", "Exception raised from", "Traceback", "panicked"] {
        assert!(!stderr.contains(noise), "the error carries '{noise}':\n{stderr}");
    }
    stderr
}

fn relative_difference(got: &Path, expected: &Path) -> f64 {
    let (got, expected) = (npy::read_f32(got).unwrap(), npy::read_f32(expected).unwrap());
    assert_eq!(got.size(), expected.size());
    let scale = expected.abs().max().double_value(&[]);
    assert!(scale > 0.0, "the reference logits are all zero");
    (&got - &expected).abs().max().double_value(&[]) / scale
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A TorchScript file made by PyTorch gives PyTorch's logits through `sk-exp eval --torchscript`.
fn assert_torchscript_matches(model: &str, mode: &str) {
    let dir = common::fresh_dir(&format!("interop/{model}-{mode}"));
    reference(&["make-torchscript", model, mode, p(&dir), "--size", "64", "--batch", "2"]);
    let ours = dir.join("ours.npy");
    sk_exp_ok(&[
        "eval",
        "--torchscript",
        p(&dir.join("model.pt")),
        "--input",
        p(&dir.join("input.npy")),
        "--dump-logits",
        p(&ours),
    ]);
    let diff = relative_difference(&ours, &dir.join("logits.npy"));
    eprintln!("{model} ({mode}d by PyTorch) through sk-exp: relative max difference {diff:.3e}");
    assert!(diff < TOLERANCE, "{model} ({mode}): relative max difference {diff:.3e}");
}

#[test]
fn pytorch_traced_torchvision_resnet18_runs_in_sk_exp() {
    assert_torchscript_matches("resnet18", "trace");
}

#[test]
fn pytorch_scripted_torchvision_resnet18_runs_in_sk_exp() {
    assert_torchscript_matches("resnet18", "script");
}

/// timm's skresnext50_32x4d (SKNet-50) both ways. In: PyTorch's traced TorchScript file gives PyTorch's
/// logits through `sk-exp eval --torchscript`. Out: `sk-exp export` of our sknet50 with timm's state_dict
/// (PyTorch key names) gives a TorchScript file that `torch.jit.load` runs, and a safetensors file that timm
/// loads strictly, both with sk-exp's logits (which are timm's).
#[test]
fn timm_skresnext50_torchscript_in_and_sknet50_export_out() {
    let dir = common::fresh_dir("interop/skresnext50");
    reference(&["make-torchscript", "skresnext50_32x4d", "trace", p(&dir), "--size", "64", "--batch", "3"]);
    let (input, timm_logits) = (dir.join("input.npy"), dir.join("logits.npy"));
    let check = |what: &str, got: &Path, expected: &Path| {
        let diff = relative_difference(got, expected);
        eprintln!("{what}: relative max difference {diff:.3e}");
        assert!(diff < TOLERANCE, "{what}: relative max difference {diff:.3e}");
    };

    let traced = dir.join("traced.npy");
    sk_exp_ok(&["eval", "--torchscript", p(&dir.join("model.pt")), "--input", p(&input), "--dump-logits", p(&traced)]);
    check("PyTorch-traced skresnext50 through sk-exp vs PyTorch", &traced, &timm_logits);

    let out = dir.join("exported");
    let weights = dir.join("weights.safetensors");
    let printed =
        sk_exp_ok(&["export", "--model", "sknet50", "--weights", p(&weights), "--out", p(&out), "--size", "64"]);
    assert!(printed.contains("model.pt"), "{printed}");
    let ours = dir.join("ours.npy");
    sk_exp_ok(&["eval", "--model", "sknet50", "--weights", p(&out), "--input", p(&input), "--dump-logits", p(&ours)]);
    check("sk-exp sknet50 on the exported weights vs timm", &ours, &timm_logits);
    reference(&["run-export", "skresnext50_32x4d", p(&out), p(&input), p(&dir)]);
    check("exported TorchScript in torch.jit.load vs sk-exp", &dir.join("jit.npy"), &ours);
    check("exported safetensors in timm vs sk-exp", &dir.join("state_dict.npy"), &ours);
}

/// The `key=value` fields of a printed metrics line.
fn metric(line: &str, key: &str) -> f64 {
    let prefix = format!("{key}=");
    let value = line.split_whitespace().find_map(|field| field.strip_prefix(prefix.as_str()));
    value.unwrap_or_else(|| panic!("no {key} in: {line}")).parse().unwrap()
}

/// Evaluates `model` on `data` through sk-exp with --dump, recomputes the metrics in PyTorch from the
/// dumped images and labels, checks both agree and returns the dump folder.
fn assert_metrics_match_pytorch(dir: &Path, model: &Path, data: &[&str], name: &str) -> PathBuf {
    let dump = dir.join(format!("dump-{name}"));
    let mut args = vec!["eval", "--torchscript", p(model), "--batch-size", "64", "--dump", p(&dump)];
    args.extend_from_slice(data);
    let ours = sk_exp_ok(&args);
    let theirs_logits = dir.join(format!("pytorch-logits-{name}.npy"));
    let theirs =
        reference(&["metrics", p(model), p(&dump.join("images.npy")), p(&dump.join("labels.npy")), p(&theirs_logits)]);
    eprintln!("{name}: sk-exp  {ours}{name}: PyTorch {theirs}");
    assert_eq!(metric(&ours, "images"), metric(&theirs, "images"));
    for key in ["top1_err", "top5_err"] {
        assert_eq!(metric(&ours, key), metric(&theirs, key), "{key}: sk-exp {ours} PyTorch {theirs}");
    }
    let (loss, reference_loss) = (metric(&ours, "loss"), metric(&theirs, "loss"));
    assert!((loss - reference_loss).abs() <= 1e-4 * reference_loss.abs().max(1.0), "loss {loss} vs {reference_loss}");
    let diff = relative_difference(&dump.join("logits.npy"), &theirs_logits);
    assert!(diff < TOLERANCE, "{name}: dumped logits differ from PyTorch's by {diff:.3e}");
    dump
}

/// `sk-exp eval --data` on the synthetic set and on an image folder (with the crop/resize flags): a
/// PyTorch-made TorchScript file with 10 classes gives the top-1/top-5 errors and loss that PyTorch
/// computes on the very images and labels sk-exp evaluated.
#[test]
fn data_set_evaluation_matches_pytorch_metrics() {
    let dir = common::fresh_dir("interop/data");
    reference(&["make-torchscript", "resnet18_10", "trace", p(&dir), "--size", "32"]);
    let model = dir.join("model.pt");
    let data = dir.join("data.yaml");
    std::fs::write(&data, "kind: synthetic\neval_size: 300\n").unwrap();
    let dump = assert_metrics_match_pytorch(&dir, &model, &["--data", p(&data)], "synthetic");
    assert_eq!(npy::read_f32(&dump.join("images.npy")).unwrap().size(), [300, 3, 32, 32]);

    let folder = dir.join("folder");
    reference(&["write-folder", p(&folder), "10", "2"]);
    let flags = ["--data", p(&folder), "--crop", "48", "--resize", "56"];
    let dump = assert_metrics_match_pytorch(&dir, &model, &flags, "folder");
    assert_eq!(npy::read_f32(&dump.join("images.npy")).unwrap().size(), [20, 3, 48, 48]);

    // Our own model (tiny, random weights): it runs, counts every image and reports errors in [0, 100].
    let mut args: Vec<String> = ["eval", "--model", common::TINY_BASE, "--data", p(&data)].map(String::from).to_vec();
    args.extend(common::tiny_set_args("", &[]));
    let printed = sk_exp_ok(&strs(&args));
    assert_eq!(metric(&printed, "images"), 300.0);
    for key in ["top1_err", "top5_err"] {
        assert!((0.0..=100.0).contains(&metric(&printed, key)), "{printed}");
    }
    assert!(metric(&printed, "top5_err") <= metric(&printed, "top1_err"), "{printed}");
}

#[test]
fn bad_files_give_one_line_errors_naming_the_problem() {
    let dir = common::fresh_dir("interop/bad");
    let input = dir.join("input.npy");
    npy::write(&input, &Tensor::randn([2, 3, 32, 32], (Kind::Float, tch::Device::Cpu))).unwrap();
    let dump = dir.join("out.npy");
    let eval = |source: &[&str], input: &Path| {
        let mut args = vec!["eval"];
        args.extend_from_slice(source);
        args.extend_from_slice(&["--input", p(input), "--dump-logits", p(&dump)]);
        sk_exp_error(&args)
    };

    // Not TorchScript: a text file, and a torch.save archive (a zip archive too, without TorchScript code).
    let text = dir.join("notes.pt");
    std::fs::write(&text, "not a model").unwrap();
    assert!(eval(&["--torchscript", p(&text)], &input).contains("not a TorchScript file"));
    let pickled = dir.join("state_dict.pt");
    reference(&["torch-save", p(&pickled)]);
    assert!(eval(&["--torchscript", p(&pickled)], &input).contains("a torch.save archive"));
    assert!(eval(&["--torchscript", p(&dir.join("absent.pt"))], &input).contains("no such file"));

    // A state_dict with a tensor missing, one extra and one mis-shaped, for a tiny SKNet.
    let good = dir.join("good.safetensors");
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    sk_exp::models::Model::build(&vs.root(), &common::tiny_spec(&[])).unwrap();
    save_safetensors(&vs, &good).unwrap();
    let mut tensors = read_tensors(&good).unwrap();
    let dropped = tensors.iter().position(|(name, _)| name.ends_with("running_mean")).unwrap();
    let dropped = tensors.remove(dropped).0;
    tensors.push(("layer9.weight".into(), Tensor::zeros([1], (Kind::Float, tch::Device::Cpu))));
    let fc = tensors.iter_mut().find(|(name, _)| name == "fc.weight").unwrap();
    let fc_shape = fc.1.size();
    fc.1 = Tensor::zeros([fc_shape[0] + 1, fc_shape[1]], (Kind::Float, tch::Device::Cpu));
    let bad = dir.join("bad.safetensors");
    Tensor::write_safetensors(&tensors, &bad).unwrap();
    let tiny = common::tiny_set_args("", &[]);
    let with_weights = |weights: &Path| -> Vec<String> {
        let mut args: Vec<String> = ["--model", common::TINY_BASE, "--weights", p(weights)].map(String::from).to_vec();
        args.extend(tiny.iter().cloned());
        args
    };
    let message = eval(&strs(&with_weights(&bad)), &input);
    let mismatched = format!("fc.weight (file [{}, {}], model {fc_shape:?})", fc_shape[0] + 1, fc_shape[1]);
    for part in [format!("1 missing: {dropped}"), "1 unexpected: layer9.weight".into(), mismatched] {
        assert!(message.contains(&part), "'{part}' not in: {message}");
    }
    assert!(eval(&strs(&with_weights(&dir)), &input).contains("holds none of"));
    assert!(eval(&strs(&with_weights(&text)), &input).contains("cannot read it as safetensors"));

    // Wrong input shapes, for our model and for a TorchScript file.
    let four_channels = dir.join("four.npy");
    npy::write(&four_channels, &Tensor::randn([2, 4, 32, 32], (Kind::Float, tch::Device::Cpu))).unwrap();
    assert!(eval(&strs(&with_weights(&good)), &four_channels).contains("expected a float tensor of shape (N, 3, H, W)"));
    let exported = dir.join("exported");
    let mut export = vec!["export".to_string(), "--out".into(), p(&exported).into()];
    export.extend(with_weights(&good));
    sk_exp_ok(&strs(&export));
    let message = eval(&["--torchscript", p(&exported.join("model.pt"))], &four_channels);
    assert!(message.contains("to have 3 channels, but got 4 channels"), "{message}");
    let flat = dir.join("flat.npy");
    npy::write(&flat, &Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu))).unwrap();
    assert!(eval(&["--torchscript", p(&exported.join("model.pt"))], &flat).contains("(N, C, H, W)"));
}

/// `--weights` takes a safetensors file, or a run, checkpoint or export folder holding one.
#[test]
fn weights_are_found_in_run_checkpoint_and_export_folders() {
    use sk_exp::train::run_dir::locate_weights as locate;
    let dir = common::fresh_dir("interop/locate");
    let layouts = [
        ("run/checkpoint/weights.safetensors", "run"),
        ("ckpt/weights.safetensors", "ckpt"),
        ("export/model.safetensors", "export"),
    ];
    for (file, folder) in layouts {
        let file = dir.join(file);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"").unwrap();
        assert_eq!(locate(&dir.join(folder)).unwrap(), file);
        assert_eq!(locate(&file).unwrap(), file);
    }
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(locate(&empty).unwrap_err().to_string().contains("holds none of weights.safetensors"));
    assert!(locate(&dir.join("absent")).unwrap_err().to_string().contains("no such file or folder"));
}

/// A checkpoint of `sk-exp train` evaluated with `sk-exp eval --run` reproduces the training loop's own
/// last evaluation (metrics.csv), and so does its TorchScript export through `sk-exp eval --torchscript`.
#[test]
fn a_training_run_evaluates_and_exports_with_its_own_figures() {
    let dir = common::fresh_dir("interop/run");
    let run = dir.join("run");
    let mut train: Vec<String> = [
        "train",
        "--model",
        common::TINY_BASE,
        "--data",
        "synthetic",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--quiet",
    ]
    .map(String::from)
    .to_vec();
    train.extend(["--out".into(), p(&run).into()]);
    train.extend(common::tiny_set_args("model.overrides.", &[]));
    train.extend(["--set", "data.train_size=64", "--set", "data.eval_size=96"].map(String::from));
    sk_exp_ok(&strs(&train));

    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let last: Vec<f64> = csv.lines().last().unwrap().split(',').map(|v| v.parse().unwrap()).collect();
    let logged = |key: &str| last[header.iter().position(|h| *h == key).unwrap()];

    let exported = dir.join("exported");
    sk_exp_ok(&["export", "--run", p(&run), "--out", p(&exported)]);
    let data = dir.join("data.yaml");
    std::fs::write(&data, "kind: synthetic\ntrain_size: 64\neval_size: 96\n").unwrap();
    let ours = sk_exp_ok(&["eval", "--run", p(&run)]);
    let traced = sk_exp_ok(&["eval", "--torchscript", p(&exported.join("model.pt")), "--data", p(&data)]);
    for printed in [&ours, &traced] {
        assert_eq!(metric(printed, "images"), 96.0, "{printed}");
        for (key, column) in [("top1_err", "eval_top1_err"), ("top5_err", "eval_top5_err")] {
            assert!((metric(printed, key) - logged(column)).abs() < 0.006, "{key}: {printed} vs metrics.csv {csv}");
        }
        assert!((metric(printed, "loss") - logged("eval_loss")).abs() < 1e-4, "loss: {printed} vs metrics.csv {csv}");
    }
}
