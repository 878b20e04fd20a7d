//! Squeeze-and-Excitation (Hu et al.): avg pool, fc C -> C/r with bias, ReLU, fc back with bias, sigmoid.
use super::layers::{conv2d, Conv2d, ConvOpts};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeSpec {
    pub reduction: i64,
}

/// Variables as timm's `SEModule`: `fc1`, `fc2` (1x1 convs with bias).
#[derive(Debug)]
pub struct SeUnit {
    fc1: Conv2d,
    fc2: Conv2d,
}

pub fn se_unit(vs: nn::Path, channels: i64, spec: &SeSpec) -> SeUnit {
    let reduced = (channels / spec.reduction).max(1);
    let opts = ConvOpts::default().bias(true);
    SeUnit {
        fc1: conv2d(&vs / "fc1", channels, reduced, 1, opts),
        fc2: conv2d(&vs / "fc2", reduced, channels, 1, opts),
    }
}

impl Module for SeUnit {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let s = xs.mean_dim(&[2i64, 3][..], true, None).apply(&self.fc1).relu().apply(&self.fc2).sigmoid();
        xs * s
    }
}
