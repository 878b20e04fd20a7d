//! A TorchScript image classifier (a `torch.jit.save`d file) run through libtorch's interpreter.
use super::torch_message;
use anyhow::{anyhow, bail, Result};
use std::path::{Path, PathBuf};
use tch::{CModule, Device, Tensor};

pub struct TorchScript {
    module: CModule,
    path: PathBuf,
    device: Device,
}

impl TorchScript {
    /// Loads `path` onto `device` in eval mode.
    pub fn load(path: &Path, device: Device) -> Result<TorchScript> {
        if !path.is_file() {
            bail!("TorchScript file {}: no such file", path.display());
        }
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            let cause = torch_message(&e);
            // libtorch reads TorchScript as a zip archive holding code and constants; torch.save writes
            // a zip archive too, without them.
            if cause.contains("constants.pkl") {
                anyhow!(
                    "{}: a torch.save archive (a pickled model or state_dict), not TorchScript: write it with \
                     torch.jit.save(torch.jit.trace(model, example)), or pass its state_dict as safetensors \
                     with --model NAME --weights FILE",
                    path.display()
                )
            } else if cause.contains("zip archive") {
                anyhow!("{}: not a TorchScript file (not the zip archive torch.jit.save writes)", path.display())
            } else {
                anyhow!("TorchScript file {}: cannot load it: {cause}", path.display())
            }
        })?;
        module.f_set_eval().map_err(|e| anyhow!("TorchScript file {}: {}", path.display(), torch_message(&e)))?;
        Ok(TorchScript { module, path: path.to_path_buf(), device })
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Logits (N, classes) of an NCHW float batch. The module's own errors (a wrong channel count, an input
    /// too small for its strides) come back as one line naming the file.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let size = xs.size();
        if size.len() != 4 || !xs.is_floating_point() {
            bail!("TorchScript input: expected a float tensor of shape (N, C, H, W), got {:?} {size:?}", xs.kind());
        }
        let logits = self.module.forward_ts(&[xs]).map_err(|e| {
            anyhow!("TorchScript file {} on input {size:?}: {}", self.path.display(), torch_message(&e))
        })?;
        let out = logits.size();
        if out.len() != 2 || out[0] != size[0] {
            bail!(
                "TorchScript file {}: expected logits of shape ({}, classes) for input {size:?}, got {out:?}",
                self.path.display(),
                size[0]
            );
        }
        Ok(logits)
    }
}
