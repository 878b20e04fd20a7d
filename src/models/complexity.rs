//! Exact #params and multiply-adds, counted the paper's way: conv/linear weights and biases plus BN
//! gamma/beta (running statistics excluded); multiply-adds of conv and linear layers at the native input.
use super::layers::count_macs;
use super::{Model, ModelSpec};
use anyhow::Result;
use tch::{nn, Device, Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Complexity {
    pub params: i64,
    pub macs: u64,
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
    Ok(Complexity { params: count_params(&vs), macs })
}
