//! Exact #params and multiply-adds, counted the paper's way: conv/linear weights and biases plus BN
//! gamma/beta (running statistics excluded); multiply-adds of conv and linear layers at the native input,
//! and apart from them the SK selection's elementwise work, which the paper's GFLOPs include.
use super::layers::count_macs;
use super::{Model, ModelSpec};
use anyhow::Result;
use tch::{nn, Device, Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Complexity {
    pub params: i64,
    /// Conv and linear multiply-adds (the plain count).
    pub macs: u64,
    /// The SK selection's elementwise multiply-adds: `macs + selection_macs` is the paper's convention.
    pub selection_macs: u64,
}

impl Complexity {
    /// Multiply-adds as the paper counts them (see [`super::layers::Macs`]).
    pub fn paper_macs(&self) -> u64 {
        self.macs + self.selection_macs
    }
}

/// Trainable parameters of a VarStore (BN running statistics are not trainable, so they drop out).
pub fn count_params(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}

/// Builds the model on the CPU and counts it with one image at its native input size.
pub fn measure(spec: &ModelSpec) -> Result<Complexity> {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Model::build(&vs.root(), spec)?;
    let side = spec.input_size();
    let input = Tensor::zeros([1, 3, side, side], (Kind::Float, Device::Cpu));
    let (out, macs) = tch::no_grad(|| count_macs(|| model.forward_t(&input, false)));
    out?.size();
    Ok(Complexity { params: count_params(&vs), macs: macs.layers, selection_macs: macs.selection })
}

/// Multiply-adds in G with at least 4 significant digits, so that the ShuffleNet rows (0.04 to 0.15
/// GMACs) can be read beside the paper's figures.
pub fn gmacs_text(macs: u64) -> String {
    let gmacs = macs as f64 / 1e9;
    if gmacs < 1.0 {
        format!("{gmacs:.5}")
    } else {
        format!("{gmacs:.3}")
    }
}
