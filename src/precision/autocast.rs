//! libtorch's autocast for any device type and lower-precision dtype (tch's `autocast` is CUDA fp16 only),
//! and cuDNN's determinism switch, through the C++ shim (`src/dist/shim.cpp`). Autocast state belongs to
//! the thread: a guard is made on the thread that runs the forward pass.
use super::Precision;
use crate::dist::checked;
use anyhow::{Context, Result};
use std::ffi::c_char;
use tch::Device;

extern "C" {
    fn skprec_get_autocast(cuda: i32, enabled: *mut i32, half: *mut i32, error: *mut *mut c_char) -> i32;
    fn skprec_set_autocast(cuda: i32, enabled: i32, half: i32, enter: i32, error: *mut *mut c_char) -> i32;
    fn skprec_set_cudnn(benchmark: i32, deterministic: i32, error: *mut *mut c_char) -> i32;
}

/// Autocast switched on for one device type on this thread; dropping it restores the state before (and,
/// leaving the outermost region, clears autocast's cache of cast weights, which the next step must not
/// reuse once the optimizer has changed them). At fp32 it touches nothing.
pub struct Autocast {
    /// The device type and the state to restore; None at fp32.
    saved: Option<(bool, (bool, Precision))>,
}

impl Autocast {
    pub fn new(precision: Precision, device: Device) -> Result<Autocast> {
        if precision.is_fp32() {
            return Ok(Autocast { saved: None });
        }
        let cuda = device.is_cuda();
        let before = state(device)?;
        set(cuda, true, precision, true).with_context(|| format!("cannot start {precision} autocast on {device:?}"))?;
        Ok(Autocast { saved: Some((cuda, before)) })
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        if let Some((cuda, (enabled, precision))) = self.saved {
            // Restoring can fail only if libtorch itself is broken; nothing better to do then than go on.
            let _ = set(cuda, enabled, precision, false);
        }
    }
}

/// Whether autocast is on for `device`'s type on this thread, and its lower precision (bf16 or fp16).
pub fn state(device: Device) -> Result<(bool, Precision)> {
    let (mut enabled, mut half) = (0, 0);
    checked(|e| unsafe { skprec_get_autocast(device.is_cuda() as i32, &mut enabled, &mut half, e) }, |rc| *rc != 0)?;
    Ok((enabled != 0, if half != 0 { Precision::Fp16 } else { Precision::Bf16 }))
}

fn set(cuda: bool, enabled: bool, precision: Precision, enter: bool) -> Result<()> {
    let half = (precision == Precision::Fp16) as i32;
    checked(|e| unsafe { skprec_set_autocast(cuda as i32, enabled as i32, half, enter as i32, e) }, |rc| *rc != 0)?;
    Ok(())
}

/// cuDNN's algorithm choice for the process: autotuned (`benchmark`) or deterministic.
pub fn set_cudnn(benchmark: bool, deterministic: bool) -> Result<()> {
    checked(|e| unsafe { skprec_set_cudnn(benchmark as i32, deterministic as i32, e) }, |rc| *rc != 0)
        .context("cannot configure cuDNN")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn the_guard_switches_this_thread_and_restores_it() {
        let before = state(Device::Cpu).unwrap();
        assert!(!before.0);
        let x = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        {
            let _outer = Autocast::new(Precision::Bf16, Device::Cpu).unwrap();
            assert_eq!(state(Device::Cpu).unwrap(), (true, Precision::Bf16));
            assert_eq!(x.matmul(&x.tr()).kind(), Kind::BFloat16);
            {
                let _inner = Autocast::new(Precision::Fp16, Device::Cpu).unwrap();
                assert_eq!(x.matmul(&x.tr()).kind(), Kind::Half);
            }
            assert_eq!(state(Device::Cpu).unwrap(), (true, Precision::Bf16));
            // Another thread has its own state.
            std::thread::spawn(|| assert!(!state(Device::Cpu).unwrap().0)).join().unwrap();
        }
        assert_eq!(state(Device::Cpu).unwrap(), before);
        assert_eq!(x.matmul(&x.tr()).kind(), Kind::Float);
        let _fp32 = Autocast::new(Precision::Fp32, Device::Cpu).unwrap();
        assert!(!state(Device::Cpu).unwrap().0);
    }
}
