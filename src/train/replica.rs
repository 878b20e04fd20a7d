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
use crate::loss::{count_errors, cross_entropy, ClassificationStats, DeviceStats};
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
    /// See [`Replica::set_planned_batch`].
    planned_batch: Option<usize>,
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
            planned_batch: None,
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

    /// One training step on this rank's shard at rate `lr`; returns the global batch's counts, still on
    /// the device: nothing here waits for the device (but the fp16 skip decision, as `GradScaler.step`), so
    /// the host can queue the next step while this one runs. A non-finite loss is not caught here but by
    /// whoever reads the counts (the loop stops the run there, before its next checkpoint); in a group every
    /// rank reads the same reduced counts, so all stop at the same step. In fp16 a step whose gradient is
    /// not finite is skipped (its loss is counted) and the scale shrinks.
    pub fn train_step(&mut self, images: &Tensor, labels: &Tensor, lr: f64) -> Result<DeviceStats> {
        let labels = labels.to_device(self.device);
        let (loss, logits, grads) = self.forward_backward(images, &labels)?;
        let local = DeviceStats::of_batch(&loss, &logits, &labels);
        let Some(group) = &self.group else {
            let mut grad = self.sgd.flatten(&grads);
            if !self.unscale_skips(&mut grad)? {
                self.sgd.step(&grad, lr);
            }
            return Ok(local);
        };
        let samples = labels.size()[0] as usize;
        let (rank, world) = (group.rank(), group.world());
        // The step's counts ride in the gradient's all-reduce (one collective per step), see [`StepTail`].
        let tail = StepTail { rank, world };
        let flat = self.sgd.flatten_with_tail(&grads, &tail.local(&loss, &logits, &labels));
        let mut grad = flat.narrow(0, 0, flat.size()[0] - tail.len());
        // The global batch's mean loss: each shard's mean weighted by its share, summed over the ranks.
        // The share is taken of the planned global batch (the same on every rank) and corrected below
        // when samples were skipped, so that without skipping the arithmetic is the per-step reduction of before.
        let planned = self.planned_batch.unwrap_or(samples * world);
        let _ = grad.g_mul_scalar_(samples as f64 / planned as f64);
        let started = Instant::now();
        group.all_reduce_sum(&flat)?;
        self.communication += started.elapsed();
        let stats = tail.global(&flat.narrow(0, flat.size()[0] - tail.len(), tail.len()));
        tch::no_grad(|| {
            // planned / actual samples: exactly 1 unless a rank skipped unreadable samples.
            let planned = Tensor::full([], planned as f64, (Kind::Double, self.device));
            let correction = planned / stats.packed().get(0);
            let _ = grad.g_mul_(&correction.to_kind(Kind::Float));
        });
        // After the all-reduce, so that every rank sees the same gradient and skips the same steps.
        if !self.unscale_skips(&mut grad)? {
            self.sgd.step(&grad, lr);
        }
        Ok(stats)
    }

    /// In fp16: unscales `grad` and updates the scale; true when the step must be skipped (a non-finite
    /// gradient). False in other precisions.
    fn unscale_skips(&mut self, grad: &mut Tensor) -> Result<bool> {
        match &mut self.scaler {
            Some(scaler) => scaler.unscale_and_update(grad),
            None => Ok(false),
        }
    }

    /// The forward pass (at the setup's precision and layout; the loss in fp32 from fp32 logits, as
    /// autocast computes cross entropy) and the backward pass of this rank's shard: the mean loss, the
    /// logits and the gradients (times the loss scale in fp16).
    fn forward_backward(&self, images: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor, Vec<Tensor>)> {
        let logits = self.forward(images, true)?;
        let loss = cross_entropy(&logits, labels, self.label_smoothing);
        let scaled = self.scaler.as_ref().map(|s| s.scale(&loss));
        let grads = Tensor::f_run_backward(&[scaled.as_ref().unwrap_or(&loss)], self.sgd.params(), false, false)?;
        Ok((loss, logits, grads))
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

    /// The number of samples a global batch has when none is skipped (every rank's shards together);
    /// without it a rank assumes its own shard's size times the number of ranks.
    pub fn set_planned_batch(&mut self, samples: usize) {
        self.planned_batch = Some(samples);
    }

    /// Evaluation-mode counts of this rank's shard of a batch, on the device (add them up with
    /// [`DeviceStats::add`], read them once, and reduce the sum over the ranks with [`Replica::reduce_stats`]).
    pub fn evaluate(&self, images: &Tensor, labels: &Tensor) -> Result<DeviceStats> {
        tch::no_grad(|| {
            let labels = labels.to_device(self.device);
            let logits = self.forward(images, false)?;
            Ok(DeviceStats::of_batch(&cross_entropy(&logits, &labels, 0.0), &logits, &labels))
        })
    }

    /// The sums of `stats` (this rank's, on its device) over the ranks, read to the host: one all-reduce of
    /// the packed counts where they are (NCCL reduces device tensors only), then one transfer.
    pub fn reduce_stats(&self, stats: DeviceStats) -> Result<ClassificationStats> {
        if let Some(group) = &self.group {
            group.all_reduce_sum(stats.packed())?;
        }
        stats.read()
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
    /// scaler's state, so that a resumed run continues with the same scale), gathered in a few transfers
    /// (the flat parameters, the flat momentum, the buffers of each dtype) rather than one per variable;
    /// the named tensors are views of those copies (contiguous copies of channels_last ones).
    pub fn snapshot(&self) -> (NamedTensors, NamedTensors) {
        let mut weights: NamedTensors = contiguous_slices(&self.sgd, self.sgd.flat_params());
        let mut kinds: Vec<Kind> = Vec::new();
        for kind in self.buffers.values().map(Tensor::kind) {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        for kind in kinds {
            let group: Vec<(&String, &Tensor)> = self.buffers.iter().filter(|(_, t)| t.kind() == kind).collect();
            let flat = cpu_copy(&Tensor::cat(&group.iter().map(|(_, t)| t.detach().view(-1)).collect::<Vec<_>>(), 0));
            let mut offset = 0;
            for (name, t) in group {
                let n = t.numel() as i64;
                weights.insert(name.clone(), flat.narrow(0, offset, n).view(t.size().as_slice()));
                offset += n;
            }
        }
        let mut optimizer = contiguous_slices(&self.sgd, self.sgd.flat_momentum());
        optimizer.extend(self.scaler.iter().flat_map(LossScaler::state));
        (weights, optimizer)
    }
}

/// The step's counts appended to the flat gradient of a group, as float32 values whose sum over the
/// ranks is exact: each rank writes its shard's mean loss and sample count into slots of its own (the
/// others hold zeros there), and the error counts (whole numbers) into shared slots. From the reduced
/// tail every rank derives the global counts with the arithmetic of a float64 all-reduce of each rank's
/// (mean x samples): the same numbers on every rank, so every rank takes the same stop/continue decision.
struct StepTail {
    rank: usize,
    world: usize,
}

impl StepTail {
    /// Values appended: a mean loss and a sample count per rank, the top-1 and top-5 error counts.
    fn len(&self) -> i64 {
        2 * self.world as i64 + 2
    }

    /// This rank's tail (on the logits' device).
    fn local(&self, mean_loss: &Tensor, logits: &Tensor, labels: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let tail = Tensor::zeros([self.len()], (Kind::Float, logits.device()));
            let (w, r) = (self.world as i64, self.rank as i64);
            tail.get(r).copy_(&mean_loss.detach().to_kind(Kind::Float));
            let _ = tail.get(w + r).fill_(labels.size()[0] as f64);
            tail.narrow(0, 2 * w, 2).copy_(&count_errors(logits, labels).to_kind(Kind::Float));
            tail
        })
    }

    /// The global batch's counts from the reduced tail.
    fn global(&self, reduced: &Tensor) -> DeviceStats {
        tch::no_grad(|| {
            let w = self.world as i64;
            let reduced = reduced.to_kind(Kind::Double);
            let means = reduced.narrow(0, 0, w);
            let samples = reduced.narrow(0, w, w);
            // Each rank's loss sum, added in rank order (for two ranks the order of any all-reduce).
            let per_rank = &means * &samples;
            let loss_sum = (1..w).fold(per_rank.get(0), |sum, r| sum + per_rank.get(r));
            let head = Tensor::stack(&[samples.sum(Kind::Double), loss_sum], 0);
            DeviceStats::from_packed(Tensor::cat(&[head, reduced.narrow(0, 2 * w, 2)], 0))
        })
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

/// The variables' slices of a host copy of `flat` (one transfer), each contiguous as checkpoints store them:
/// views for the usual layout, copies for channels_last weights.
fn contiguous_slices(sgd: &Sgd, flat: &Tensor) -> NamedTensors {
    sgd.named_slices(&cpu_copy(flat)).into_iter().map(|(name, t)| (name, t.contiguous())).collect()
}
