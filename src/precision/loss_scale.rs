//! Dynamic loss scaling for fp16, as PyTorch's `GradScaler`: the loss is multiplied by the scale before
//! the backward pass so that small gradients survive fp16; the gradient is divided by it again before the
//! step. A step whose gradient holds an inf or NaN is skipped and the scale shrinks (`backoff_factor`);
//! after `growth_interval` finite steps in a row it grows (`growth_factor`). The scale and the count of
//! finite steps live on the device and are updated by libtorch's own `_amp_*` kernels; whether to skip is
//! read on the host once per step (PyTorch's `GradScaler.step` reads it too).
use anyhow::{ensure, Context, Result};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// The scale's schedule; the default is PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScaling {
    pub init_scale: f64,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    pub growth_interval: i64,
}

impl Default for LossScaling {
    fn default() -> LossScaling {
        LossScaling { init_scale: 65536.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000 }
    }
}

/// Names of the scaler's state among the optimizer's tensors in a checkpoint (PyTorch's state_dict keys).
pub const SCALE: &str = "grad_scaler.scale";
pub const GROWTH_TRACKER: &str = "grad_scaler.growth_tracker";

pub struct LossScaler {
    config: LossScaling,
    /// 0-dim float32: the current scale.
    scale: Tensor,
    /// 0-dim int32: finite steps since the scale last changed.
    growth_tracker: Tensor,
    /// 0-dim float32, reused: whether the last gradient held a non-finite value.
    found_inf: Tensor,
}

impl LossScaler {
    pub fn new(config: LossScaling, device: Device) -> LossScaler {
        LossScaler {
            config,
            scale: Tensor::full([], config.init_scale, (Kind::Float, device)),
            growth_tracker: Tensor::zeros([], (Kind::Int, device)),
            found_inf: Tensor::zeros([], (Kind::Float, device)),
        }
    }

    /// `loss` times the scale (what the backward pass starts from).
    pub fn scale(&self, loss: &Tensor) -> Tensor {
        loss * &self.scale
    }

    /// Divides the flat gradient `grad` by the scale in place, checks it for inf/NaN and updates the scale;
    /// true when the gradient is not finite, so the step must be skipped.
    pub fn unscale_and_update(&mut self, grad: &mut Tensor) -> Result<bool> {
        let _ = self.found_inf.zero_();
        // As GradScaler: the reciprocal in double precision, then float32.
        let inv_scale = self.scale.to_kind(Kind::Double).reciprocal().to_kind(Kind::Float);
        grad.f_internal_amp_non_finite_check_and_unscale(&mut self.found_inf, &inv_scale)?;
        let c = self.config;
        let _ = self.scale.f_internal_amp_update_scale_(
            &self.growth_tracker,
            &self.found_inf,
            c.growth_factor,
            c.backoff_factor,
            c.growth_interval,
        )?;
        Ok(self.found_inf.double_value(&[]) != 0.0)
    }

    /// The current scale (a host read).
    pub fn current_scale(&self) -> f64 {
        self.scale.double_value(&[])
    }

    /// The scale and the growth tracker as 1-element CPU tensors under [`SCALE`] and [`GROWTH_TRACKER`].
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let cpu = |t: &Tensor| t.to_device(Device::Cpu).copy().view([1]);
        vec![(SCALE.into(), cpu(&self.scale)), (GROWTH_TRACKER.into(), cpu(&self.growth_tracker))]
    }

    /// Restores what [`LossScaler::state`] saved, if `saved` holds it; a checkpoint without it (an fp16 run
    /// written before the scaler was saved) starts again from the initial scale.
    pub fn load_state(&mut self, saved: &BTreeMap<String, Tensor>) -> Result<()> {
        let (Some(scale), Some(tracker)) = (saved.get(SCALE), saved.get(GROWTH_TRACKER)) else { return Ok(()) };
        ensure!(
            scale.numel() == 1 && tracker.numel() == 1,
            "optimizer state: {SCALE} and {GROWTH_TRACKER} must hold one value each"
        );
        let value = scale.double_value(&[0]);
        ensure!(value.is_finite() && value > 0.0, "optimizer state: {SCALE} is {value}, expected a positive number");
        tch::no_grad(|| -> Result<()> {
            self.scale.f_copy_(&scale.view([]).to_kind(Kind::Float)).context(SCALE)?;
            self.growth_tracker.f_copy_(&tracker.view([]).to_kind(Kind::Int)).context(GROWTH_TRACKER)?;
            Ok(())
        })
    }

    /// The scale and the growth tracker as one float64 CPU tensor (what a process group broadcasts).
    pub fn as_flat(&self) -> Tensor {
        Tensor::stack(&[self.scale.to_kind(Kind::Double), self.growth_tracker.to_kind(Kind::Double)], 0)
            .to_device(Device::Cpu)
    }

    /// Sets the state from [`LossScaler::as_flat`]'s values.
    pub fn set_flat(&mut self, flat: &Tensor) {
        let _ = self.scale.fill_(flat.double_value(&[0]));
        let _ = self.growth_tracker.fill_(flat.double_value(&[1]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_halves_on_inf_and_grows_after_the_interval() {
        let config = LossScaling { growth_interval: 3, ..LossScaling::default() };
        let mut scaler = LossScaler::new(config, Device::Cpu);
        let mut grad = Tensor::from_slice(&[65536f32, f32::INFINITY]);
        assert!(scaler.unscale_and_update(&mut grad).unwrap());
        assert_eq!(scaler.current_scale(), 32768.0);
        for step in 1..=3 {
            let mut grad = Tensor::from_slice(&[32768f32, -65536.0]);
            assert!(!scaler.unscale_and_update(&mut grad).unwrap());
            assert_eq!(Vec::<f32>::try_from(&grad).unwrap(), vec![1.0, -2.0]);
            assert_eq!(scaler.current_scale(), if step < 3 { 32768.0 } else { 65536.0 }, "step {step}");
        }
        let saved: BTreeMap<String, Tensor> = scaler.state().into_iter().collect();
        let mut resumed = LossScaler::new(config, Device::Cpu);
        resumed.load_state(&saved).unwrap();
        assert_eq!(resumed.current_scale(), 65536.0);
    }
}
