//! What one process trains: its network on one device, its optimizer, and (when several processes train
//! together) its place in the c10d process group. Data parallel is one process per device, as PyTorch's
//! DDP: every rank starts from rank 0's weights, computes the gradient of its shard of each global batch,
//! the gradients are averaged over the ranks before the (identical) SGD step, and BN running statistics
//! are averaged at epoch end. A lone process is the same code without a group, and its arithmetic is the
//! single-device training of before (no reduction, no rescaling), so its runs stay bitwise reproducible.
//! The forward pass runs at the setup's precision (bf16/fp16 autocast, the loss in fp32, fp16 with loss
//! scaling) and layout (channels_last inputs and weights); weights and SGD state stay fp32.
use super::checkpoint::NamedTensors;
use super::sgd::{Sgd, SgdConfig};
use crate::dist::ProcessGroup;
use crate::loss::{cross_entropy, ClassificationStats};
use crate::models::{Model, ModelSpec};
use crate::precision::{Compute, LossScaler, Precision};
use anyhow::{ensure, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tch::{nn, Device, Kind, Tensor};

/// What a replica trains: logits from an NCHW batch. [`Model`] is one; tests use plain networks too.
pub trait Network {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor>;
}

impl Network for Model {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        Model::forward_t(self, xs, train)
    }
}

/// Builds a network's variables under a VarStore path.
pub type NetworkBuilder = Arc<dyn Fn(&nn::Path) -> Result<Box<dyn Network>> + Send + Sync>;

/// The builder of `spec`'s model.
pub fn network_builder(spec: &ModelSpec) -> NetworkBuilder {
    let spec = spec.clone();
    Arc::new(move |vs: &nn::Path| -> Result<Box<dyn Network>> { Ok(Box::new(Model::build(vs, &spec)?)) })
}

/// How the replica is set up.
#[derive(Clone)]
pub struct ReplicaSetup {
    pub build: NetworkBuilder,
    pub sgd: SgdConfig,
    pub label_smoothing: f64,
    /// Precision, memory layout and cuDNN's choice.
    pub compute: Compute,
}

/// What training starts from: named CPU tensors (weights and BN statistics, as a VarStore names them)
/// and, when resuming, the momentum buffers. In a group only rank 0's is used: it is broadcast.
pub struct StartState {
    pub weights: NamedTensors,
    /// The momentum buffers (and, in fp16, the loss scaler's state: [`crate::precision::loss_scale::SCALE`]).
    pub optimizer: Option<NamedTensors>,
}

pub struct Replica {
    device: Device,
    net: Box<dyn Network>,
    sgd: Sgd,
    /// Non-trainable variables (BN running statistics), sorted by name.
    buffers: NamedTensors,
    label_smoothing: f64,
    compute: Compute,
    /// fp16's loss scaler (None in other precisions).
    scaler: Option<LossScaler>,
    group: Option<ProcessGroup>,
    /// Time spent in the gradient all-reduce so far (what data parallel adds to a step).
    communication: Duration,
}

/// An owned, contiguous CPU copy (a CPU tensor's `to_device` would alias the live variable; a channels_last
/// weight's copy would keep its layout, which checkpoints cannot store).
fn cpu_copy(t: &Tensor) -> Tensor {
    let copy = if t.device() == Device::Cpu { t.detach().copy() } else { t.detach().to_device(Device::Cpu) };
    copy.contiguous()
}

impl Replica {
    /// Builds the network on `device` from `start`; in a group, rank 0's weights and momentum then
    /// overwrite every rank's, so all ranks start identical.
    pub fn start(
        device: Device,
        setup: &ReplicaSetup,
        start: &StartState,
        group: Option<ProcessGroup>,
    ) -> Result<Replica> {
        crate::device::check(device)?;
        let vs = nn::VarStore::new(device);
        let net = (setup.build)(&vs.root())?;
        let vars: NamedTensors = vs.variables().into_iter().collect();
        copy_named(&vars, &start.weights, "weights")?;
        setup.compute.lay_out_weights(vars.values());
        setup.compute.configure_cudnn(device)?;
        let (trainable, buffers): (NamedTensors, NamedTensors) = vars.into_iter().partition(|(_, t)| t.requires_grad());
        let mut sgd = Sgd::new(trainable.into_iter().collect(), setup.sgd.clone())?;
        if let Some(optimizer) = &start.optimizer {
            sgd.load_state(&optimizer.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect::<Vec<_>>())?;
        }
        let (label_smoothing, compute) = (setup.label_smoothing, setup.compute);
        let mut scaler = (compute.precision == Precision::Fp16).then(|| LossScaler::new(compute.loss_scaling, device));
        if let (Some(scaler), Some(optimizer)) = (&mut scaler, &start.optimizer) {
            scaler.load_state(optimizer)?;
        }
        let mut replica = Replica {
            device,
            net,
            sgd,
            buffers,
            label_smoothing,
            compute,
            scaler,
            group,
            communication: Duration::ZERO,
        };
        if let Some(group) = &replica.group {
            group.broadcast(replica.sgd.flat_params(), 0)?;
            group.broadcast(replica.sgd.flat_momentum(), 0)?;
            if let Some(flat) = replica.flat_buffers() {
                group.broadcast(&flat, 0)?;
                replica.set_flat_buffers(&flat);
            }
        }
        if let (Some(group), Some(scaler)) = (&replica.group, &mut replica.scaler) {
            let flat = scaler.as_flat();
            group.broadcast(&flat, 0)?;
            scaler.set_flat(&flat);
        }
        Ok(replica)
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Time spent all-reducing gradients so far.
    pub fn communication(&self) -> Duration {
        self.communication
    }

    /// This process's rank and the number of ranks (0 of 1 alone).
    pub fn rank(&self) -> (usize, usize) {
        self.group.as_ref().map_or((0, 1), |g| (g.rank(), g.world()))
    }

    /// The fp16 loss scale now (None in other precisions).
    pub fn loss_scale(&self) -> Option<f64> {
        self.scaler.as_ref().map(LossScaler::current_scale)
    }

    /// One training step on this rank's shard at rate `lr`; returns the global batch's statistics. A batch
    /// whose loss is not finite (on any rank) is not applied, so every rank keeps its last good state. In
    /// fp16 a step whose gradient is not finite is skipped too (its loss is counted) and the scale shrinks.
    pub fn train_step(&mut self, images: &Tensor, labels: &Tensor, lr: f64) -> Result<ClassificationStats> {
        let labels = labels.to_device(self.device);
        let (loss, logits, mut grad) = self.forward_backward(images, &labels)?;
        // Read back after queueing the backward pass, so that a GPU is not left idle waiting for it.
        let local = ClassificationStats::of_batch(&loss, &logits, &labels)?;
        let stats = self.reduce_stats(local)?;
        if !stats.loss_sum.is_finite() {
            return Ok(stats);
        }
        if let Some(group) = &self.group {
            // The global batch's mean loss: each shard's mean weighted by its share, summed over the ranks
            // (shards may differ in size when a data set skips unreadable images).
            let _ = grad.g_mul_scalar_(local.samples as f64 / stats.samples as f64);
            let started = Instant::now();
            group.all_reduce_sum(&grad)?;
            self.communication += started.elapsed();
        }
        // After the all-reduce, so that every rank sees the same gradient and skips the same steps.
        if let Some(scaler) = &mut self.scaler {
            if scaler.unscale_and_update(&mut grad)? {
                return Ok(stats);
            }
        }
        self.sgd.step(&grad, lr);
        Ok(stats)
    }

    /// The forward pass (at the setup's precision and layout; the loss in fp32 from fp32 logits, as
    /// autocast computes cross entropy) and the backward pass of this rank's shard: the mean loss, the
    /// logits and the flat gradient (times the loss scale in fp16).
    fn forward_backward(&self, images: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let logits = self.forward(images, true)?;
        let loss = cross_entropy(&logits, labels, self.label_smoothing);
        let scaled = self.scaler.as_ref().map(|s| s.scale(&loss));
        let grads = Tensor::f_run_backward(&[scaled.as_ref().unwrap_or(&loss)], self.sgd.params(), false, false)?;
        Ok((loss, logits, self.sgd.flatten(&grads)))
    }

    /// Float32 logits of `images` (moved to the device, laid out and autocast as the setup says).
    fn forward(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        let images = self.compute.input(&images.to_device(self.device));
        let logits = {
            let _autocast = self.compute.autocast(self.device)?;
            self.net.forward_t(&images, train)?
        };
        Ok(if logits.kind() == Kind::Float { logits } else { logits.to_kind(Kind::Float) })
    }

    /// Evaluation-mode statistics of this rank's shard of a batch (reduce the epoch's sum with [`reduce_stats`]).
    pub fn evaluate(&self, images: &Tensor, labels: &Tensor) -> Result<ClassificationStats> {
        tch::no_grad(|| {
            let labels = labels.to_device(self.device);
            let logits = self.forward(images, false)?;
            ClassificationStats::of_batch(&cross_entropy(&logits, &labels, 0.0), &logits, &labels)
        })
    }

    /// The sums of `stats` over the ranks (itself alone).
    pub fn reduce_stats(&self, stats: ClassificationStats) -> Result<ClassificationStats> {
        let Some(group) = &self.group else { return Ok(stats) };
        let packed = Tensor::from_slice(&[stats.samples as f64, stats.loss_sum, stats.top1_errors, stats.top5_errors]);
        group.all_reduce_sum(&packed)?;
        let v: Vec<f64> = Vec::try_from(&packed)?;
        Ok(ClassificationStats { samples: v[0] as usize, loss_sum: v[1], top1_errors: v[2], top5_errors: v[3] })
    }

    /// Sets the BN running statistics to their mean over the ranks (each saw only its shards).
    pub fn sync_buffers(&mut self) -> Result<()> {
        let (Some(group), Some(mut flat)) = (&self.group, self.flat_buffers()) else { return Ok(()) };
        group.all_reduce_mean(&mut flat)?;
        self.set_flat_buffers(&flat);
        Ok(())
    }

    fn flat_buffers(&self) -> Option<Tensor> {
        (!self.buffers.is_empty()).then(|| {
            Tensor::cat(&self.buffers.values().map(|t| t.detach().to_kind(Kind::Float).view(-1)).collect::<Vec<_>>(), 0)
        })
    }

    fn set_flat_buffers(&mut self, flat: &Tensor) {
        tch::no_grad(|| {
            let mut offset = 0;
            for t in self.buffers.values_mut() {
                let n = t.numel() as i64;
                t.copy_(&flat.narrow(0, offset, n).view(t.size().as_slice()).to_kind(t.kind()));
                offset += n;
            }
        });
    }

    /// CPU copies of every variable (sorted by name) and of the momentum buffers (with, in fp16, the loss
    /// scaler's state, so that a resumed run continues with the same scale).
    pub fn snapshot(&self) -> (NamedTensors, NamedTensors) {
        let mut weights: NamedTensors =
            self.sgd.names().map(str::to_string).zip(self.sgd.params().iter().map(cpu_copy)).collect();
        weights.extend(self.buffers.iter().map(|(n, t)| (n.clone(), cpu_copy(t))));
        let mut optimizer: NamedTensors = self.sgd.state().into_iter().map(|(n, t)| (n, cpu_copy(&t))).collect();
        optimizer.extend(self.scaler.iter().flat_map(LossScaler::state));
        (weights, optimizer)
    }
}

/// Copies `source` values into `vars` by name; every variable needs a value of its shape.
fn copy_named(vars: &NamedTensors, source: &NamedTensors, what: &str) -> Result<()> {
    tch::no_grad(|| {
        for (name, var) in vars {
            let src = super::checkpoint::find(source, name, what)?;
            ensure!(
                src.size() == var.size(),
                "{what}: {name} has shape {:?}, the model has {:?}",
                src.size(),
                var.size()
            );
            var.shallow_clone().f_copy_(&src.to_kind(var.kind()))?;
        }
        Ok(())
    })
}
