//! SGD with momentum, Nesterov momentum and weight decay, step for step as `torch.optim.SGD` with
//! dampening 0. tch cannot save its optimizer's state, so this one keeps its momentum in a buffer we own
//! and writes it out by variable name; a resumed run continues exactly.
//!
//! All trainable parameters are re-pointed into one flat buffer (each variable becomes a view of its
//! slice), so a step is a handful of large element-wise operations instead of several per variable, and
//! the flattened gradient that data parallelism averages is exactly the operand the step needs. A slice
//! keeps its variable's memory layout (a channels_last weight is stored NHWC in its slice).
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SgdConfig {
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    /// Decay 1-D parameters too (BN gamma/beta, biases); the paper's recipes decay everything.
    pub wd_on_bn_bias: bool,
}

/// Where one variable lives in the flat buffer.
#[derive(Debug)]
struct Slot {
    name: String,
    shape: Vec<i64>,
    offset: i64,
    numel: i64,
    /// The variable's dimensions from outermost to innermost in memory: 0, 1, ... for a contiguous one,
    /// [0, 2, 3, 1] for a channels_last weight.
    order: Vec<i64>,
}

impl Slot {
    /// This variable's slice of a buffer laid out like the flat parameters, in its shape and layout.
    fn view(&self, buffer: &Tensor) -> Tensor {
        let stored: Vec<i64> = self.order.iter().map(|&d| self.shape[d as usize]).collect();
        let mut back = vec![0i64; self.order.len()];
        for (i, &d) in self.order.iter().enumerate() {
            back[d as usize] = i as i64;
        }
        buffer.narrow(0, self.offset, self.numel).view(stored.as_slice()).permute(back.as_slice())
    }

    /// A gradient of this variable flattened in the slice's order (a view when it has the variable's layout).
    fn flatten(&self, grad: &Tensor) -> Tensor {
        grad.permute(self.order.as_slice()).reshape([-1])
    }
}

/// `t`'s dimensions by decreasing stride (ties in index order, so a contiguous tensor gives 0, 1, ...).
fn memory_order(t: &Tensor) -> Vec<i64> {
    let stride = t.stride();
    let mut order: Vec<i64> = (0..stride.len() as i64).collect();
    order.sort_by_key(|&d| std::cmp::Reverse(stride[d as usize]));
    order
}

/// Slices start at multiples of this many elements (256 bytes in f32), as fast kernels like aligned data.
const ALIGN: i64 = 64;

#[derive(Debug)]
pub struct Sgd {
    config: SgdConfig,
    slots: Vec<Slot>,
    /// The variables themselves, in slot order (views into `flat`); gradients are taken against them.
    params: Vec<Tensor>,
    flat: Tensor,
    momentum: Tensor,
    /// The weight-decay factor multiplying `flat`: per element (the decay or 0) when 1-D parameters are
    /// exempt, else a 0-dim tensor; None without weight decay. Kept on the buffers' device.
    decay: Option<Tensor>,
    /// -lr as a 0-dim tensor on the buffers' device, refilled each step (a kernel, no host-to-device copy).
    neg_lr: Tensor,
    /// Zero fillers between slices, so that a concatenated gradient lines up with `flat`.
    padding: Vec<Option<Tensor>>,
}

impl Sgd {
    /// Takes over `vars` (trainable, float32, one device): their values move into one flat buffer and each
    /// variable becomes a view of its slice. Slot order is the order given; callers sort by name so that
    /// every replica lays out its buffer identically.
    pub fn new(vars: Vec<(String, Tensor)>, config: SgdConfig) -> Result<Sgd> {
        ensure!(!vars.is_empty(), "optimizer: the model has no trainable variables");
        if config.momentum < 0.0 || config.weight_decay < 0.0 {
            bail!("optimizer: momentum and weight_decay must be >= 0");
        }
        let device = vars[0].1.device();
        let mut slots = Vec::with_capacity(vars.len());
        let mut offset = 0;
        for (name, var) in &vars {
            ensure!(var.kind() == Kind::Float, "optimizer: variable {name} is {:?}, expected float32", var.kind());
            ensure!(
                var.device() == device,
                "optimizer: variable {name} is on {:?}, the others on {device:?}",
                var.device()
            );
            let numel = var.numel() as i64;
            slots.push(Slot { name: name.clone(), shape: var.size(), offset, numel, order: memory_order(var) });
            offset += (numel + ALIGN - 1) / ALIGN * ALIGN;
        }
        let total = offset;
        let flat = Tensor::zeros([total], (Kind::Float, device));
        let mut params = Vec::with_capacity(vars.len());
        tch::no_grad(|| {
            for ((_, mut var), slot) in vars.into_iter().zip(&slots) {
                let mut view = slot.view(&flat);
                view.copy_(&var);
                var.set_data(&view);
                params.push(var);
            }
        });
        let mut padding = Vec::with_capacity(slots.len());
        for (i, slot) in slots.iter().enumerate() {
            let end = slots.get(i + 1).map_or(total, |next| next.offset);
            let gap = end - slot.offset - slot.numel;
            padding.push((gap > 0).then(|| Tensor::zeros([gap], (Kind::Float, device))));
        }
        let decay = (config.weight_decay > 0.0).then(|| {
            if config.wd_on_bn_bias {
                return Tensor::from(config.weight_decay as f32).to_device(device);
            }
            let mask = Tensor::zeros([total], (Kind::Float, device));
            for slot in slots.iter().filter(|s| s.shape.len() > 1) {
                let _ = mask.narrow(0, slot.offset, slot.numel).fill_(config.weight_decay);
            }
            mask
        });
        let momentum = flat.zeros_like();
        let neg_lr = Tensor::zeros([], (Kind::Float, device));
        Ok(Sgd { config, slots, params, flat, momentum, decay, neg_lr, padding })
    }

    /// The trainable variables, in slot order.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.name.as_str())
    }

    /// All parameters as one flat tensor (a view; copy it before keeping it).
    pub fn flat_params(&self) -> &Tensor {
        &self.flat
    }

    /// The momentum buffers as one flat tensor, laid out like [`Sgd::flat_params`].
    pub fn flat_momentum(&self) -> &Tensor {
        &self.momentum
    }

    /// Gradients in slot order laid out like the flat buffer, in one concatenation.
    pub fn flatten(&self, grads: &[Tensor]) -> Tensor {
        Tensor::cat(&self.flat_pieces(grads), 0)
    }

    /// [`Sgd::flatten`] with `tail` (1-D float32) appended in the same concatenation: values that travel
    /// with the gradient in one collective. The gradient is the first `flat_params().numel()` values.
    pub fn flatten_with_tail(&self, grads: &[Tensor], tail: &Tensor) -> Tensor {
        let mut pieces = self.flat_pieces(grads);
        pieces.push(tail.shallow_clone());
        Tensor::cat(&pieces, 0)
    }

    fn flat_pieces(&self, grads: &[Tensor]) -> Vec<Tensor> {
        let mut pieces = Vec::with_capacity(2 * grads.len() + 1);
        for ((grad, pad), slot) in grads.iter().zip(&self.padding).zip(&self.slots) {
            pieces.push(slot.flatten(grad));
            if let Some(pad) = pad {
                pieces.push(pad.shallow_clone());
            }
        }
        pieces
    }

    /// One step with the flat gradient `grad` (read only: replicas may share it) at learning rate `lr`:
    /// d = g + wd p; buf = m buf + d; d = d + m buf (Nesterov) or buf; p = p - lr d.
    pub fn step(&mut self, grad: &Tensor, lr: f64) {
        let SgdConfig { momentum, nesterov, .. } = self.config;
        tch::no_grad(|| {
            if momentum > 0.0 && !nesterov {
                // The common case in place, without full-size temporaries (fresh buffers of the model's size
                // cost page faults every step): buf = m buf + g + wd p; p = p + (-lr) buf.
                let _ = self.momentum.g_mul_scalar_(momentum).g_add_(grad);
                if let Some(decay) = &self.decay {
                    let _ = self.momentum.addcmul_(&self.flat, decay);
                }
                let _ = self.neg_lr.fill_(-lr);
                let _ = self.flat.addcmul_(&self.momentum, &self.neg_lr);
                return;
            }
            let mut d = match &self.decay {
                Some(decay) => grad + &self.flat * decay,
                None => grad.shallow_clone(),
            };
            if momentum > 0.0 {
                // torch starts the buffer at d on the first step; m * 0 + d is the same number.
                let _ = self.momentum.g_mul_scalar_(momentum).g_add_(&d);
                // Not `+=`: d may share its storage with the gradient, which must stay unchanged.
                #[allow(clippy::assign_op_pattern)]
                {
                    d = d + &self.momentum * momentum;
                }
            }
            let _ = self.flat.g_sub_(&(d * lr));
        });
    }

    /// The variables' slices of `flat` (a buffer laid out like [`Sgd::flat_params`], e.g. a host copy of
    /// it) by variable name: views in the variables' layouts (channels_last ones are not contiguous), so one
    /// copy of the whole buffer serves every variable.
    pub fn named_slices(&self, flat: &Tensor) -> Vec<(String, Tensor)> {
        self.slots.iter().map(|s| (s.name.clone(), s.view(flat))).collect()
    }

    /// Momentum buffers by variable name (views in the variables' layouts; the caller copies them where it
    /// keeps them).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.named_slices(&self.momentum)
    }

    /// Restores momentum buffers saved by [`Sgd::state`]; every variable must be present with its shape.
    pub fn load_state(&mut self, named: &[(String, Tensor)]) -> Result<()> {
        tch::no_grad(|| {
            for slot in &self.slots {
                let (_, saved) = named
                    .iter()
                    .find(|(n, _)| *n == slot.name)
                    .with_context(|| format!("optimizer state: no momentum buffer for {}", slot.name))?;
                ensure!(
                    saved.size() == slot.shape,
                    "optimizer state: {} has shape {:?}, the model has {:?}",
                    slot.name,
                    saved.size(),
                    slot.shape
                );
                slot.view(&self.momentum).copy_(&saved.to_kind(Kind::Float));
            }
            Ok(())
        })
    }
}
