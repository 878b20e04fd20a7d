//! Devices as written in configs and flags, and the one check that a CUDA device exists before libtorch
//! is asked to use it (libtorch aborts the process instead of returning an error).
use anyhow::{anyhow, bail, Result};
use tch::Device;

/// Parses a device name as written in configs and flags: `cpu`, `cuda`, `cuda:N`.
pub fn parse(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => name
            .strip_prefix("cuda:")
            .and_then(|i| i.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| anyhow!("device '{name}': expected cpu, cuda or cuda:N")),
    }
}

/// Fails with a clear message when `device` is a CUDA device this machine does not have.
pub fn check(device: Device) -> Result<()> {
    if let Device::Cuda(index) = device {
        let count = tch::Cuda::device_count();
        if index as i64 >= count {
            bail!("device cuda:{index}: this machine has {count} CUDA device(s) usable by libtorch");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_missing_gpus_are_errors() {
        assert_eq!(parse("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse("cuda:1").unwrap(), Device::Cuda(1));
        assert!(parse("gpu").unwrap_err().to_string().contains("expected cpu, cuda or cuda:N"));
        let missing = tch::Cuda::device_count() as usize;
        let err = check(Device::Cuda(missing)).unwrap_err().to_string();
        assert!(err.contains(&format!("cuda:{missing}")) && err.contains("CUDA device(s)"), "{err}");
    }
}
