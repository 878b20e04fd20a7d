//! libtorch's OpenMP runtime (libgomp) lets idle team threads spin for a while (GOMP_SPINCOUNT, 300,000
//! rounds by default) before they sleep: on an idle machine that keeps consecutive parallel regions fast,
//! but when other processes want the cores the spinning burns their time and the team's barriers wait for
//! descheduled threads (measured on a loaded 2-core machine: about 3x more CPU time per step and 2-5x fewer
//! images/s, in PyTorch the same). libgomp reads its settings once, when it is loaded, so a process started
//! on an oversubscribed machine (load average at or above its CPUs) starts itself again with a short spin.
use std::os::unix::process::CommandExt;

/// Spin rounds before a waiting libgomp thread sleeps, on a loaded machine (tens of microseconds: still
/// enough to bridge the gaps between one operator's parallel region and the next).
const LOADED_SPIN_COUNT: &str = "10000";

/// Restarts this process (same pid, same arguments) with GOMP_SPINCOUNT set when the machine is
/// oversubscribed and neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT was chosen by the user; else returns.
pub fn adapt_to_load() {
    if std::env::var_os("OMP_WAIT_POLICY").is_some() || std::env::var_os("GOMP_SPINCOUNT").is_some() {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Some(load) = std::fs::read_to_string("/proc/loadavg").ok().and_then(|t| first_number(&t)) else { return };
    if load < cpus as f64 {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    // exec only returns on failure: then this process goes on with libgomp's defaults.
    let _ = std::process::Command::new(exe).arg0(argv0).args(args).env("GOMP_SPINCOUNT", LOADED_SPIN_COUNT).exec();
}

fn first_number(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}
