//! How the forward and backward passes compute: the precision (fp32, or bf16/fp16 autocast with fp32 master
//! weights), the memory layout (channels_last) and cuDNN's algorithm choice; the fp16 loss scaler. Training,
//! evaluation and the benchmarks share these, so they sit beside `device`, below every user.
pub mod autocast;
pub mod loss_scale;

pub use autocast::Autocast;
pub use loss_scale::{LossScaler, LossScaling};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tch::{Device, Tensor};

/// The arithmetic of the forward pass. Weights, gradients, SGD state and checkpoints are fp32 in every
/// case: autocast runs the matrix ops (convolutions, linear layers) in the lower precision and keeps the
/// rest in fp32, as `torch.autocast` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    /// bfloat16 autocast: fp32's range, so no loss scaling.
    Bf16,
    /// float16 autocast with dynamic loss scaling (its range is too small for raw gradients).
    Fp16,
}

impl Precision {
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }
}

impl FromStr for Precision {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Precision> {
        Ok(match s {
            "fp32" => Precision::Fp32,
            "bf16" => Precision::Bf16,
            "fp16" => Precision::Fp16,
            other => bail!("precision '{other}': expected fp32, bf16 or fp16"),
        })
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        })
    }
}

/// How images and convolution weights are laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryFormat {
    /// NCHW, libtorch's default.
    Contiguous,
    /// NHWC in memory (same shapes): what cuDNN's tensor-core kernels want.
    ChannelsLast,
}

impl MemoryFormat {
    /// The format a run uses on `device` when it names none: channels_last on CUDA (what a PyTorch user runs
    /// there), contiguous on the CPU (where it measured no faster; see the README).
    pub fn or_default_for(chosen: Option<MemoryFormat>, device: Device) -> MemoryFormat {
        chosen.unwrap_or(if device.is_cuda() { MemoryFormat::ChannelsLast } else { MemoryFormat::Contiguous })
    }
}

/// Precision, layout and cuDNN's choice for one device's forward and backward passes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Compute {
    pub precision: Precision,
    pub channels_last: bool,
    /// Deterministic cuDNN instead of autotuned (CUDA only; the CPU path is deterministic anyway).
    pub deterministic: bool,
    /// The fp16 loss scaler's schedule (unused in other precisions).
    pub loss_scaling: LossScaling,
}

impl Default for Compute {
    /// fp32, NCHW, autotuned cuDNN: today's arithmetic, bit for bit.
    fn default() -> Compute {
        Compute {
            precision: Precision::Fp32,
            channels_last: false,
            deterministic: false,
            loss_scaling: LossScaling::default(),
        }
    }
}

impl Compute {
    /// The input batch in this layout (4-D batches; anything else as it is). Contiguous format makes a
    /// channels_last batch (the device-normalised 8-bit one) contiguous; a contiguous one stays as it is.
    pub fn input(&self, images: &Tensor) -> Tensor {
        if self.channels_last {
            to_channels_last(images)
        } else {
            images.contiguous()
        }
    }

    /// Autocast at this precision for `device` on the calling thread, until the guard is dropped.
    pub fn autocast(&self, device: Device) -> Result<Autocast> {
        Autocast::new(self.precision, device)
    }

    /// Re-lays every 4-D variable (convolution weights) out as channels_last in place, once before training
    /// or evaluation, as PyTorch's `model.to(memory_format=torch.channels_last)`; nothing without channels_last.
    pub fn lay_out_weights<'a>(&self, vars: impl IntoIterator<Item = &'a Tensor>) {
        if !self.channels_last {
            return;
        }
        tch::no_grad(|| {
            for var in vars.into_iter().filter(|v| v.dim() == 4) {
                var.shallow_clone().set_data(&to_channels_last(var));
            }
        });
    }

    /// cuDNN's process-wide settings for `device`: autotuned (PyTorch's `cudnn.benchmark = True`) unless
    /// `deterministic`. Nothing to do on the CPU.
    pub fn configure_cudnn(&self, device: Device) -> Result<()> {
        if device.is_cuda() {
            autocast::set_cudnn(!self.deterministic, self.deterministic)?;
        }
        Ok(())
    }
}

/// `x` with the same values laid out channels_last (NHWC in memory, NCHW shape), as PyTorch's
/// `x.contiguous(memory_format=torch.channels_last)`. tch has no memory-format API: permuting to NHWC,
/// making that contiguous and permuting back is the same layout. Tensors that are not 4-D come back as they are.
pub fn to_channels_last(x: &Tensor) -> Tensor {
    if x.dim() != 4 {
        return x.shallow_clone();
    }
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Whether a 4-D `x` is laid out channels_last (dense NHWC in memory).
pub fn is_channels_last(x: &Tensor) -> bool {
    let (size, stride) = (x.size(), x.stride());
    if size.len() != 4 {
        return false;
    }
    let (c, h, w) = (size[1], size[2], size[3]);
    stride == [h * w * c, 1, w * c, c]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn names_parse_and_print() {
        for p in [Precision::Fp32, Precision::Bf16, Precision::Fp16] {
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
            assert_eq!(yaml_serde::to_string(&p).unwrap().trim(), p.to_string());
        }
        assert!("half".parse::<Precision>().unwrap_err().to_string().contains("expected fp32, bf16 or fp16"));
        assert_eq!(MemoryFormat::or_default_for(None, Device::Cpu), MemoryFormat::Contiguous);
        assert_eq!(MemoryFormat::or_default_for(None, Device::Cuda(0)), MemoryFormat::ChannelsLast);
    }

    #[test]
    fn channels_last_keeps_values_and_changes_strides() {
        let x = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        let y = to_channels_last(&x);
        assert!(y.equal(&x) && is_channels_last(&y) && !is_channels_last(&x));
        assert_eq!(y.stride(), vec![60, 1, 15, 3]);
        let w = Tensor::zeros([8, 3, 3, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        Compute { channels_last: true, ..Compute::default() }.lay_out_weights([&w]);
        assert!(is_channels_last(&w) && w.requires_grad());
    }
}
