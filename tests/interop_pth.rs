//! `torch.save` files and the Hugging Face cache as `--weights`, against files PyTorch itself writes
//! (tests/python/pth_reference.py run by the venv's Python, $SK_EXP_PYTHON).
mod common;

use sk_exp::interop::npy;
use sk_exp::models::weights::{read_state_dict, read_tensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use tch::{Kind, Tensor};

/// Largest |sk-exp - PyTorch| allowed, relative to the largest |PyTorch| logit (as tests/interop.rs).
const TOLERANCE: f64 = 1e-4;

fn reference(args: &[&str]) {
    common::run_python("tests/python/pth_reference.py", args);
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `sk-exp args` with `env` set, and no Hugging Face cache but one `env` names.
fn sk_exp_with(env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sk-exp"));
    command.env_remove("HF_HUB_CACHE").env_remove("HF_HOME");
    for (key, value) in env {
        command.env(key, value);
    }
    common::output(command.args(args))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "sk-exp failed:\n{}", stderr(out));
}

/// The one-line error of a failed run.
fn one_line_error(out: &Output) -> String {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(1), "expected a clean failure; stderr:\n{text}");
    assert_eq!(text.lines().count(), 1, "expected a one-line error, got:\n{text}");
    assert!(text.starts_with("error: ") && !text.contains("panicked"), "{text}");
    text
}

/// Raw bytes of a tensor in its own dtype (NaN payloads, -0.0 and all).
fn bits(tensor: &Tensor) -> Vec<u8> {
    let flat = tensor.contiguous().reshape([-1]);
    let bytes = if flat.kind() == Kind::Bool { flat.to_kind(Kind::Uint8) } else { flat.view_dtype(Kind::Uint8) };
    Vec::<u8>::try_from(&bytes).unwrap()
}

/// torch.save's state_dicts in both formats hold every dtype and view bit for bit as PyTorch wrote them.
#[test]
fn every_dtype_and_view_is_read_bit_for_bit_from_zip_and_legacy_files() {
    let dir = common::fresh_dir("interop_pth/tensors");
    reference(&["tensors", p(&dir)]);
    let expected: BTreeMap<String, Tensor> =
        read_tensors(&dir.join("expected.safetensors")).unwrap().into_iter().collect();
    assert_eq!(expected.len(), 13);
    for file in ["zip.pth", "legacy.pth"] {
        let read = sk_exp::models::pth::read(&dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e:#}"));
        assert!(read.notes.is_empty(), "{file}: {:?}", read.notes);
        let names: Vec<&str> = read.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..3], ["f32", "f16", "bf16"], "{file}: the file's order is kept");
        let got: BTreeMap<String, Tensor> = read.tensors.into_iter().collect();
        assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{file}");
        for (name, want) in &expected {
            let have = &got[name];
            assert_eq!((have.kind(), have.size()), (want.kind(), want.size()), "{file}: {name}");
            assert_eq!(bits(have), bits(want), "{file}: {name} differs");
        }
        // The generic reader tells the format by its first bytes.
        assert_eq!(read_state_dict(&dir.join(file)).unwrap().len(), 13);
    }

    // A cut file is an error naming the file, not a crash.
    for file in ["zip.pth", "legacy.pth"] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let cut = dir.join(format!("cut-{file}"));
        std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
        let err = format!("{:#}", sk_exp::models::pth::read(&cut).err().unwrap_or_else(|| panic!("cut {file} read")));
        assert!(err.starts_with(&format!("weights file {}", cut.display())) && !err.contains('\n'), "{err}");
    }
}

/// A pickle naming a global outside the allow-list (here os.system) is refused with one line naming it, and
/// nothing it asks for runs.
#[test]
fn a_pickle_calling_os_system_is_refused_and_runs_nothing() {
    let dir = common::fresh_dir("interop_pth/hostile");
    let marker = dir.join("pwned");
    reference(&["hostile", p(&dir), p(&marker)]);
    let input = dir.join("x.npy");
    npy::write(&input, &Tensor::randn([1, 3, 32, 32], (Kind::Float, tch::Device::Cpu))).unwrap();
    for file in ["hostile_zip.pth", "hostile_legacy.pth"] {
        let weights = dir.join(file);
        let err = format!("{:#}", sk_exp::models::pth::read(&weights).err().expect("the hostile file was read"));
        assert!(err.contains("names posix.system") && err.contains("refused"), "{err}");

        let mut args: Vec<String> =
            ["eval", "--model", common::TINY_BASE, "--weights", p(&weights)].map(String::from).to_vec();
        args.extend(common::tiny_set_args("", &[]));
        args.extend(["--input", p(&input), "--dump-logits", p(&dir.join("y.npy"))].map(String::from));
        let message = one_line_error(&common::sk_exp(&args));
        assert!(message.contains(file) && message.contains("posix.system"), "{message}");
    }
    assert!(!marker.exists(), "the pickle's command ran");
}

/// torchvision's resnet50 (random weights) with its state_dict, input and logits, made once per test binary.
fn resnet50() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::fresh_dir("interop_pth/resnet50");
        reference(&["resnet50", p(&dir)]);
        dir
    })
}

/// `sk-exp eval --model resnet50 --weights W --input x.npy --dump-logits` with `env`; returns the run's
/// stderr after checking the logits are torchvision's.
fn eval_resnet50(env: &[(&str, &Path)], model: &str, weights: &str, out: &str) -> String {
    let dir = resnet50();
    let logits = dir.join(out);
    let run = sk_exp_with(
        env,
        &[
            "eval",
            "--model",
            model,
            "--weights",
            weights,
            "--input",
            p(&dir.join("x.npy")),
            "--dump-logits",
            p(&logits),
        ],
    );
    assert_ok(&run);
    let (got, expected) = (npy::read_f32(&logits).unwrap(), npy::read_f32(&dir.join("logits.npy")).unwrap());
    assert_eq!(got.size(), [2, 1000]);
    let scale = expected.abs().max().double_value(&[]);
    let diff = (&got - &expected).abs().max().double_value(&[]) / scale;
    eprintln!("resnet50 with --weights {weights}: relative max difference {diff:.3e}");
    assert!(diff < TOLERANCE, "--weights {weights}: relative max difference {diff:.3e}");
    stderr(&run)
}

/// The criterion: a file from `torch.save(model.state_dict())` gives torchvision's logits; and a
/// legacy-format DDP checkpoint holding it under "model" does too, saying how its state_dict was found.
#[test]
fn resnet50_pth_gives_torchvisions_logits_and_checkpoints_are_unwrapped() {
    let dir = resnet50();
    let said = eval_resnet50(&[], "resnet50", p(&dir.join("resnet50.pth")), "y.npy");
    assert!(!said.contains("note: weights file"), "{said}");

    let said = eval_resnet50(&[], "resnet50", p(&dir.join("ddp_checkpoint.pth")), "y_ddp.npy");
    let notes: Vec<&str> = said.lines().filter(|l| l.starts_with("note: weights file")).collect();
    assert_eq!(notes.len(), 2, "{said}");
    assert!(notes[0].contains("its state_dict is the entry \"model\" (others: \"epoch\")"), "{said}");
    assert!(notes[1].contains("\"module.\" (DistributedDataParallel): the prefix is dropped"), "{said}");
}

/// A Hugging Face cache in the real layout (refs/main naming a snapshot whose files link to blobs):
/// `hf:default` finds timm's repository for resnet50, an explicit repository holding only
/// pytorch_model.bin (torch.save) works too, and a missing one is a one-line error that names the folder
/// searched and the command that fills it.
#[test]
fn hf_weights_come_from_the_local_cache_only() {
    let dir = resnet50();
    let hub = common::fresh_dir("interop_pth/hub");
    let add = |repo: &str, source: &Path, file: &str| {
        let folder = hub.join(format!("models--{}", repo.replace('/', "--")));
        let commit = "8d5f2b0c4a1e9f3b7c6d5e4f3a2b1c0d9e8f7a6b";
        let blob = folder.join("blobs").join(format!("{repo}-blob").replace('/', "-"));
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::copy(source, &blob).unwrap();
        let snapshot = folder.join("snapshots").join(commit);
        std::fs::create_dir_all(&snapshot).unwrap();
        std::os::unix::fs::symlink(
            Path::new("../..").join("blobs").join(blob.file_name().unwrap()),
            snapshot.join(file),
        )
        .unwrap();
        std::fs::create_dir_all(folder.join("refs")).unwrap();
        std::fs::write(folder.join("refs/main"), commit).unwrap();
    };
    add("timm/resnet50.a1_in1k", &dir.join("resnet50.safetensors"), "model.safetensors");
    add("someone/resnet50-bin", &dir.join("resnet50.pth"), "pytorch_model.bin");
    let env = [("HF_HUB_CACHE", hub.as_path())];

    eval_resnet50(&env, "resnet50", "hf:default", "y_hf_default.npy");
    eval_resnet50(&env, "resnet50", "hf:someone/resnet50-bin", "y_hf_bin.npy");

    // HF_HOME/hub is the cache when HF_HUB_CACHE is not set; nothing is there: the error says where it looked.
    let home = common::fresh_dir("interop_pth/hf_home");
    let run = sk_exp_with(
        &[("HF_HOME", home.as_path())],
        &[
            "eval",
            "--model",
            "sknet50",
            "--weights",
            "hf:default",
            "--input",
            p(&dir.join("x.npy")),
            "--dump-logits",
            p(&dir.join("never.npy")),
        ],
    );
    let message = one_line_error(&run);
    let searched = home.join("hub").join("models--timm--skresnext50_32x4d.ra_in1k");
    assert!(message.contains(&format!("searched {}", searched.display())), "{message}");
    assert!(
        message.contains("python -c \"import timm; timm.create_model('skresnext50_32x4d.ra_in1k', pretrained=True)\""),
        "{message}"
    );
}
