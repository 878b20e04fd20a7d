//! Processes training together through PyTorch's own distributed engine (c10d): the launch environment
//! torchrun sets (or our own spawner sets the same way), and a process group with the collectives data
//! parallel needs. The C++ side is `shim.cpp`; everything here is safe Rust over it.
pub mod spawn;

use anyhow::{bail, ensure, Context, Result};
use std::ffi::{c_char, CStr, CString};
use std::time::Duration;
use tch::{Device, Tensor};

#[repr(C)]
struct SkGroup {
    _private: [u8; 0],
}

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn skdist_new_group(
        backend: *const c_char,
        host: *const c_char,
        port: u16,
        rank: i32,
        world: i32,
        host_store: i32,
        prefix: *const c_char,
        timeout_ms: i64,
        error: *mut *mut c_char,
    ) -> *mut SkGroup;
    fn skdist_allreduce_sum(group: *mut SkGroup, tensor: *const torch_sys::C_tensor, error: *mut *mut c_char) -> i32;
    fn skdist_broadcast(
        group: *mut SkGroup,
        tensor: *const torch_sys::C_tensor,
        root: i32,
        error: *mut *mut c_char,
    ) -> i32;
    fn skdist_barrier(group: *mut SkGroup, error: *mut *mut c_char) -> i32;
    fn skdist_free_group(group: *mut SkGroup);
    fn skdist_free_error(error: *mut c_char);
    fn skdist_set_cuda_device(index: i32, error: *mut *mut c_char) -> i32;
    fn skdist_has_nccl() -> i32;
}

/// Calls a shim function that reports failure through an error string, and turns it into a Result
/// (`crate::precision` calls the shim's other entry points through it too).
pub(crate) fn checked<T>(call: impl FnOnce(*mut *mut c_char) -> T, failed: impl Fn(&T) -> bool) -> Result<T> {
    let mut error: *mut c_char = std::ptr::null_mut();
    let value = call(&mut error);
    if !failed(&value) {
        return Ok(value);
    }
    let message = if error.is_null() {
        "the C++ shim failed without a message".to_string()
    } else {
        // SAFETY: the shim hands over a NUL-terminated strdup'ed string, freed once here.
        let text = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
        unsafe { skdist_free_error(error) };
        text
    };
    // c10d messages run over several lines (with a C++ trace); the first says what happened.
    bail!("{}", message.lines().next().unwrap_or_default().trim())
}

/// Whether this build can make NCCL groups (it was compiled against libtorch_cuda and NCCL's headers).
pub fn has_nccl() -> bool {
    unsafe { skdist_has_nccl() != 0 }
}

/// Makes cuda:`index` this process's current device, as `torch.cuda.set_device` does.
pub fn set_cuda_device(index: usize) -> Result<()> {
    checked(|error| unsafe { skdist_set_cuda_device(index as i32, error) }, |rc| *rc != 0)
        .with_context(|| format!("cannot make cuda:{index} the current device"))?;
    Ok(())
}

/// Where this process stands in the group: what torchrun (or sk-exp's own spawner) puts in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent already hosts the store (TORCHELASTIC_USE_AGENT_STORE): every rank is a client.
    pub agent_store: bool,
    /// torchrun's restart count: a restarted group must not read the keys of the failed one.
    pub attempt: u32,
}

impl Launch {
    /// The launch described by the environment, or None when this process was not started as a rank.
    pub fn from_env() -> Result<Option<Launch>> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Launch>> {
        let Some(world) = var("WORLD_SIZE") else { return Ok(None) };
        fn parse<T: std::str::FromStr>(name: &str, value: Option<String>, default: Option<&str>) -> Result<T> {
            let value = value.or(default.map(str::to_string));
            let Some(value) = value else { bail!("{name} is not set (expected by a distributed launch)") };
            value.trim().parse().map_err(|_| anyhow::anyhow!("{name}={value}: expected a non-negative integer"))
        }
        let world: usize = parse("WORLD_SIZE", Some(world), None)?;
        let rank: usize = parse("RANK", var("RANK"), None)?;
        let launch = Launch {
            rank,
            world,
            local_rank: parse("LOCAL_RANK", var("LOCAL_RANK"), Some(&rank.to_string()))?,
            master_addr: var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
            master_port: parse("MASTER_PORT", var("MASTER_PORT"), Some("29500"))?,
            agent_store: var("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            attempt: parse("TORCHELASTIC_RESTART_COUNT", var("TORCHELASTIC_RESTART_COUNT"), Some("0"))?,
        };
        if world == 0 || rank >= world {
            bail!("RANK={rank} with WORLD_SIZE={world}: expected 0 <= RANK < WORLD_SIZE");
        }
        Ok(Some(launch))
    }
}

/// A c10d process group. Collectives are blocking and fail (instead of hanging) when a peer stops or the
/// group's timeout passes.
pub struct ProcessGroup {
    raw: *mut SkGroup,
    rank: usize,
    world: usize,
}

// The group is used from one thread at a time (the trainer's); c10d backends are thread-safe anyway.
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    /// Joins the group of `launch` with `backend` ("gloo" or "nccl").
    pub fn join(launch: &Launch, backend: &str, timeout: Duration) -> Result<ProcessGroup> {
        let host_store = !launch.agent_store && launch.rank == 0;
        let prefix = format!("sk-exp/attempt_{}/", launch.attempt);
        let cstr = |s: &str| CString::new(s).context("NUL byte in a launch setting");
        let (backend_c, host, prefix) = (cstr(backend)?, cstr(&launch.master_addr)?, cstr(&prefix)?);
        let raw = checked(
            |error| unsafe {
                skdist_new_group(
                    backend_c.as_ptr(),
                    host.as_ptr(),
                    launch.master_port,
                    launch.rank as i32,
                    launch.world as i32,
                    host_store as i32,
                    prefix.as_ptr(),
                    timeout.as_millis().min(i64::MAX as u128) as i64,
                    error,
                )
            },
            |raw| raw.is_null(),
        )
        .with_context(|| {
            format!(
                "rank {} cannot join the {backend} group through the store at {}:{}",
                launch.rank, launch.master_addr, launch.master_port
            )
        })?;
        Ok(ProcessGroup { raw, rank: launch.rank, world: launch.world })
    }

    /// Joins the launch's group with the backend for `device`: NCCL between GPUs, Gloo between CPUs
    /// (SK_EXP_DIST_BACKEND=gloo makes GPUs use Gloo too, e.g. two ranks on one GPU, which NCCL refuses).
    pub fn join_for_device(launch: &Launch, device: Device, timeout: Duration) -> Result<ProcessGroup> {
        let backend = match std::env::var("SK_EXP_DIST_BACKEND") {
            Ok(name) if name == "gloo" || name == "nccl" => name,
            Ok(other) => bail!("SK_EXP_DIST_BACKEND={other}: expected gloo or nccl"),
            Err(_) => (if device.is_cuda() { "nccl" } else { "gloo" }).to_string(),
        };
        ensure!(
            backend == "gloo" || has_nccl(),
            "this sk-exp was built without NCCL (no libtorch_cuda or NCCL headers at build time): cannot train on {device:?} with several ranks"
        );
        ProcessGroup::join(launch, &backend, timeout)
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world(&self) -> usize {
        self.world
    }

    /// Sums `tensor` over the ranks, in place (it must be contiguous).
    pub fn all_reduce_sum(&self, tensor: &Tensor) -> Result<()> {
        checked(|error| unsafe { skdist_allreduce_sum(self.raw, tensor.as_ptr(), error) }, |rc| *rc != 0)
            .with_context(|| format!("rank {}: all-reduce failed (did another rank stop?)", self.rank))?;
        Ok(())
    }

    /// Averages `tensor` over the ranks, in place.
    pub fn all_reduce_mean(&self, tensor: &mut Tensor) -> Result<()> {
        self.all_reduce_sum(tensor)?;
        let _ = tensor.g_div_scalar_(self.world as f64);
        Ok(())
    }

    /// Overwrites every rank's `tensor` with rank `root`'s, in place.
    pub fn broadcast(&self, tensor: &Tensor, root: usize) -> Result<()> {
        checked(|error| unsafe { skdist_broadcast(self.raw, tensor.as_ptr(), root as i32, error) }, |rc| *rc != 0)
            .with_context(|| {
                format!("rank {}: broadcast from rank {root} failed (did another rank stop?)", self.rank)
            })?;
        Ok(())
    }

    /// Waits until every rank reaches this point.
    pub fn barrier(&self) -> Result<()> {
        checked(|error| unsafe { skdist_barrier(self.raw, error) }, |rc| *rc != 0)
            .with_context(|| format!("rank {}: barrier failed (did another rank stop?)", self.rank))?;
        Ok(())
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        unsafe { skdist_free_group(self.raw) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch_of(vars: &[(&str, &str)]) -> Result<Option<Launch>> {
        Launch::from_vars(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn torchrun_environment_is_read_and_checked() {
        assert_eq!(launch_of(&[]).unwrap(), None);
        let launch = launch_of(&[
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "1234"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((launch.rank, launch.world, launch.local_rank), (3, 4, 1));
        assert_eq!(
            (launch.master_addr.as_str(), launch.master_port, launch.agent_store, launch.attempt),
            ("node0", 1234, true, 2)
        );
        let error = launch_of(&[("WORLD_SIZE", "2"), ("RANK", "2")]).unwrap_err().to_string();
        assert!(error.contains("RANK=2 with WORLD_SIZE=2"), "{error}");
        let error = launch_of(&[("WORLD_SIZE", "2")]).unwrap_err().to_string();
        assert!(error.contains("RANK is not set"), "{error}");
    }
}
