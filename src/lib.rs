//! sk-exp: reproduce and extend Selective Kernel Networks on libtorch.
pub mod analysis;
pub mod data;
pub mod eval;
pub mod experiment;
pub mod interop;
pub mod models;
pub mod overrides;
pub mod paper;
pub mod report;
pub mod train;

/// Parses a device name as written in configs and flags: `cpu`, `cuda`, `cuda:N`.
pub fn parse_device(name: &str) -> anyhow::Result<tch::Device> {
    match name {
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" => Ok(tch::Device::Cuda(0)),
        _ => name
            .strip_prefix("cuda:")
            .and_then(|i| i.parse().ok())
            .map(tch::Device::Cuda)
            .ok_or_else(|| anyhow::anyhow!("device '{name}': expected cpu, cuda or cuda:N")),
    }
}
