//! Our models for PyTorch: the weights as a safetensors state_dict (PyTorch key names) and the network
//! as TorchScript traced in eval mode, which `torch.jit.load` runs without sk-exp's code.
use super::torch_message;
use super::torchscript::TorchScript;
use crate::models::{weights, Model};
use anyhow::{anyhow, bail, Result};
use std::path::{Path, PathBuf};
use tch::{nn, CModule, Device, Kind, Tensor};

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const TORCHSCRIPT_FILE: &str = "model.pt";

/// Largest |TorchScript - model| / max |model| logit accepted by the check after export.
const CHECK_TOLERANCE: f64 = 1e-5;

pub struct Exported {
    pub weights: PathBuf,
    pub torchscript: PathBuf,
    /// max |reloaded TorchScript - model| / max |model| on a random batch.
    pub check_difference: f64,
}

/// Writes `out_dir/model.safetensors` and `out_dir/model.pt` (traced on `size`x`size` inputs), then reloads
/// the TorchScript file and checks it against the model on a batch of another size. The store is frozen
/// while tracing and saving, and unfrozen after.
pub fn export(model: &Model, vs: &mut nn::VarStore, out_dir: &Path, size: i64) -> Result<Exported> {
    if vs.device() != Device::Cpu {
        bail!("export: build the model on the CPU (traced constants keep the device they were traced on)");
    }
    std::fs::create_dir_all(out_dir).map_err(|e| anyhow!("creating {}: {e}", out_dir.display()))?;
    let weights_path = out_dir.join(WEIGHTS_FILE);
    weights::save_safetensors(vs, &weights_path)?;

    let example = Tensor::randn([1, 3, size, size], (Kind::Float, Device::Cpu));
    let ts_path = out_dir.join(TORCHSCRIPT_FILE);
    // The graph's constants are the variables themselves: they must not require grad while traced and
    // while saved (the file records the flag, and libtorch refuses such constants when loading).
    vs.freeze();
    let saved = trace(model, &example).and_then(|module| {
        module.save(&ts_path).map_err(|e| anyhow!("writing {}: {}", ts_path.display(), torch_message(&e)))
    });
    vs.unfreeze();
    saved?;

    let batch = Tensor::randn([3, 3, size, size], (Kind::Float, Device::Cpu));
    let expected = tch::no_grad(|| model.forward_t(&batch, false))?;
    let got = tch::no_grad(|| TorchScript::load(&ts_path, Device::Cpu)?.forward(&batch))?;
    let scale = expected.abs().max().double_value(&[]).max(f64::MIN_POSITIVE);
    let check_difference = (&got - &expected).abs().max().double_value(&[]) / scale;
    if check_difference.is_nan() || check_difference > CHECK_TOLERANCE {
        bail!("export: the traced TorchScript differs from the model by {check_difference:.3e} (relative)");
    }
    Ok(Exported { weights: weights_path, torchscript: ts_path, check_difference })
}

/// The model's eval-mode forward pass on `example`'s shape as a TorchScript module; the weights become
/// constants of the graph, so none may require grad (freeze the VarStore). Batch size is free (the models reshape with -1); the image size is not
/// guaranteed to be (pooling sizes may be recorded), so trace at the size the module will see.
pub fn trace(model: &Model, example: &Tensor) -> Result<CModule> {
    let mut failure = None;
    let module = tch::no_grad(|| {
        CModule::create_by_tracing("SkExpModel", "forward", std::slice::from_ref(example), &mut |inputs| {
            match model.forward_t(&inputs[0], false) {
                Ok(logits) => vec![logits],
                Err(e) => {
                    // The tracer needs an output to close the trace; the error is returned below.
                    failure = Some(e);
                    vec![inputs[0].shallow_clone()]
                }
            }
        })
    });
    if let Some(e) = failure {
        return Err(e.context("export: tracing the model"));
    }
    module.map_err(|e| anyhow!("export: tracing the model: {}", torch_message(&e)))
}
