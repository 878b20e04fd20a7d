//! `sk-exp train` with several ranks end to end, on the CPU with Gloo: ranks started by torchrun (one
//! machine, or two "machines" on 127.0.0.1) and by sk-exp itself (`--devices cpu,cpu`) give the same metrics; a rank killed with SIGKILL makes the other
//! stop with an error, and `--resume` then ends where an uninterrupted run ends; a run is not resumed with
//! another number of ranks unless asked.
use sk_exp::dist::spawn::free_port;
use sk_exp::train::run_dir::RunDir;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::KillOnDrop;

/// The tiny SKNet on the synthetic set, `epochs` epochs of 6 global batches of 16 (8 per rank).
fn config(dir: &Path, epochs: usize) -> PathBuf {
    let path = dir.join("run.yaml");
    let text = format!(
        "model:\n  name: {}\n  overrides: {}\n\
         data: {{kind: synthetic, train_size: 96, eval_size: 40}}\n\
         recipe: {{preset: cifar10, epochs: {epochs}, batch_size: 16, lr: 0.05}}\n\
         seed: 5\nthreads: 1\nworkers: 1\n",
        common::TINY_BASE,
        common::tiny_flow(&[])
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn train_args(config: &Path, out: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec!["train".into(), "--config".into(), config.display().to_string()];
    args.extend(["--out".into(), out.display().to_string(), "--quiet".into()]);
    args
}

fn sk_exp(args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sk-exp"));
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// Waits for `child` at most `limit` (failing the test, which kills it, when the time is up); returns its
/// exit status and what it wrote to its piped stderr.
fn wait_for(child: &mut KillOnDrop, limit: Duration, what: &str) -> (ExitStatus, String) {
    let status = common::wait_within(child, limit, what);
    let mut stderr = String::new();
    if let Some(mut pipe) = child.0.stderr.take() {
        pipe.read_to_string(&mut stderr).unwrap();
    }
    (status, stderr)
}

fn run_ok(mut cmd: Command, what: &str) {
    let out = common::output(&mut cmd);
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// metrics.csv without its timing columns.
fn metrics(out: &Path) -> Vec<String> {
    RunDir::new(out).read_metrics().unwrap().iter().map(|m| m.deterministic_row().unwrap()).collect()
}

fn torchrun() -> PathBuf {
    Path::new(&common::python()).with_file_name("torchrun")
}

#[test]
fn torchrun_and_devices_cpu_cpu_train_the_same_run() {
    let work = common::fresh_dir("distributed/torchrun");
    let config = config(&work, 2);
    let (own, launched) = (work.join("own"), work.join("torchrun"));
    let mut args = train_args(&config, &own);
    args.extend(["--devices".into(), "cpu,cpu".into()]);
    run_ok(sk_exp(&args), "sk-exp train --devices cpu,cpu");
    let mut cmd = Command::new(torchrun());
    cmd.args(["--standalone", "--nproc-per-node", "2", "--no-python", env!("CARGO_BIN_EXE_sk-exp")]);
    cmd.args(train_args(&config, &launched)).stdin(Stdio::null());
    run_ok(cmd, "torchrun --nproc-per-node 2 sk-exp train");
    let rows = metrics(&own);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows, metrics(&launched));
    assert_eq!(RunDir::new(&launched).read_run().unwrap().world_size, 2);
    // One process with the whole batch trains another run (BN sees 8 images per rank, not 16).
    let single = work.join("single");
    run_ok(sk_exp(&train_args(&config, &single)), "sk-exp train");
    assert_ne!(metrics(&single), rows);
    std::fs::remove_dir_all(work).ok();
}

#[test]
fn two_torchrun_nodes_on_one_machine_train_the_same_run() {
    let work = common::fresh_dir("distributed/nodes");
    let config = config(&work, 2);
    let (own, nodes) = (work.join("own"), work.join("nodes"));
    let mut args = train_args(&config, &own);
    args.extend(["--devices".into(), "cpu,cpu".into()]);
    run_ok(sk_exp(&args), "sk-exp train --devices cpu,cpu");
    // What a two-machine launch runs on each machine, with the rendezvous on 127.0.0.1.
    let port = free_port().unwrap();
    let endpoint = format!("127.0.0.1:{port}");
    let mut launched: Vec<KillOnDrop> = (0..2)
        .map(|node| {
            let child = Command::new(torchrun())
                .args(["--nnodes", "2", "--node-rank", &node.to_string(), "--nproc-per-node", "1"])
                .args(["--rdzv-backend", "c10d", "--rdzv-endpoint", &endpoint, "--no-python"])
                .arg(env!("CARGO_BIN_EXE_sk-exp"))
                .args(train_args(&config, &nodes))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            KillOnDrop(child)
        })
        .collect();
    for (node, child) in launched.iter_mut().enumerate() {
        let (status, stderr) = wait_for(child, Duration::from_secs(240), &format!("torchrun node {node}"));
        assert!(status.success(), "node {node}: {stderr}");
    }
    assert_eq!(metrics(&own).len(), 2);
    assert_eq!(metrics(&own), metrics(&nodes));
    std::fs::remove_dir_all(work).ok();
}

/// Rank `rank` of 2 of `sk-exp train`, started by hand as a launcher would (rank 0 hosts the store).
fn rank(config: &Path, out: &Path, rank: usize, port: u16) -> KillOnDrop {
    let child = sk_exp(&train_args(config, out))
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("SK_EXP_DIST_TIMEOUT_S", "30")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

fn checkpoint_epoch(out: &Path) -> Option<usize> {
    RunDir::new(out).load_checkpoint().ok().flatten().map(|c| c.state.epoch)
}

#[test]
fn a_killed_rank_stops_the_other_and_the_run_resumes_to_the_uninterrupted_result() {
    let work = common::fresh_dir("distributed/kill");
    let config = config(&work, 6);
    let straight = work.join("straight");
    let mut args = train_args(&config, &straight);
    args.extend(["--devices".into(), "cpu,cpu".into()]);
    run_ok(sk_exp(&args), "the uninterrupted run");

    let killed = work.join("killed");
    let port = free_port().unwrap();
    let mut survivor = rank(&config, &killed, 0, port);
    let mut victim = rank(&config, &killed, 1, port);
    let started = Instant::now();
    // Six epochs leave four of slack after the epoch-2 checkpoint: the poll cannot miss the window.
    while checkpoint_epoch(&killed).is_none_or(|e| e < 2) {
        let ended = survivor.0.try_wait().unwrap().is_some() || victim.0.try_wait().unwrap().is_some();
        assert!(!ended, "a rank ended before the kill");
        assert!(started.elapsed() < Duration::from_secs(240), "no epoch-2 checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    victim.0.kill().unwrap(); // SIGKILL
    victim.0.wait().unwrap();
    let killed_at = Instant::now();
    let (status, stderr) = wait_for(&mut survivor, Duration::from_secs(60), "the surviving rank");
    let stopped_after = killed_at.elapsed();
    assert!(!status.success(), "rank 0 must fail when rank 1 is gone");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line of error: {stderr}");
    assert!(lines[0].starts_with("error: rank 0:"), "{stderr}");
    assert!(stopped_after < Duration::from_secs(40), "stopped {stopped_after:?} after the kill (timeout 30 s)");
    let at = checkpoint_epoch(&killed).expect("a checkpoint survives the kill");
    assert!((2..6).contains(&at), "killed after epoch {at}: too late to test resuming");

    let mut args = train_args(&config, &killed);
    args.extend(["--devices".into(), "cpu,cpu".into(), "--resume".into()]);
    run_ok(sk_exp(&args), "the resumed run");
    assert_eq!(metrics(&straight).len(), 6);
    assert_eq!(metrics(&straight), metrics(&killed));
    std::fs::remove_dir_all(work).ok();
}

#[test]
fn resuming_with_another_world_size_is_refused_unless_asked() {
    let work = common::fresh_dir("distributed/world");
    let config = config(&work, 2);
    let out = work.join("run");
    let mut args = train_args(&config, &out);
    args.extend(["--devices".into(), "cpu,cpu".into(), "--stop-after".into(), "1".into()]);
    run_ok(sk_exp(&args), "one epoch on two ranks");
    let mut args = train_args(&config, &out);
    args.push("--resume".into());
    let refused = common::output(&mut sk_exp(&args));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("trained by 2 rank(s) (8 images per rank)") && err.contains("--new-world-size"), "{err}");
    args.push("--new-world-size".into());
    run_ok(sk_exp(&args), "resuming on one rank when asked");
    assert_eq!(metrics(&out).len(), 2);
    std::fs::remove_dir_all(work).ok();
}

#[test]
fn a_rank_that_cannot_reach_the_store_fails_with_a_clear_message() {
    let work = common::fresh_dir("distributed/nostore");
    let config = config(&work, 1);
    // Rank 1 alone: nobody hosts the store on this (free) port.
    let port = free_port().unwrap();
    let out = common::output(
        sk_exp(&train_args(&config, &work.join("run")))
            .env("RANK", "1")
            .env("WORLD_SIZE", "2")
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("SK_EXP_DIST_TIMEOUT_S", "3"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: rank 1 cannot join the gloo group through the store at 127.0.0.1:"), "{err}");
    std::fs::remove_dir_all(work).ok();
}
