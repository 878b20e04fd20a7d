//! `sk-exp train` with several ranks end to end, on the CPU with Gloo: ranks started by torchrun (one
//! machine, or two "machines" on 127.0.0.1) and by sk-exp itself (`--devices cpu,cpu`) give the same metrics; a rank killed with SIGKILL makes the other
//! stop with an error, and `--resume` then ends where an uninterrupted run ends; a run is not resumed with
//! another number of ranks unless asked.
use sk_exp::train::run_dir::RunDir;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const RUN: &str = "\
model:
  name: sknet29
  overrides: {stem_width: 8, blocks: [1, 1, 1], widths: [8, 16, 32], outputs: [16, 32, 32], groups: 4,
              sk: {groups: 4, reduction: 4, min_dim: 4}}
data: {kind: synthetic, train_size: 96, eval_size: 40}
recipe: {preset: cifar10, epochs: 2, batch_size: 16, lr: 0.05}
seed: 5
threads: 1
workers: 1
";

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("distributed").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: &Path, epochs: usize) -> PathBuf {
    let path = dir.join("run.yaml");
    std::fs::write(&path, RUN.replace("epochs: 2", &format!("epochs: {epochs}"))).unwrap();
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

/// Waits for `child` at most `limit`; kills it when the time is up (then the test fails).
fn wait_for(mut child: Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn run_ok(mut cmd: Command, what: &str) {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let out = wait_for(child, Duration::from_secs(240), what);
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// metrics.csv without its timing columns.
fn metrics(out: &Path) -> Vec<String> {
    RunDir::new(out).read_metrics().unwrap().iter().map(|m| m.deterministic_row().unwrap()).collect()
}

fn torchrun() -> PathBuf {
    let python = std::env::var("SK_EXP_PYTHON").expect("SK_EXP_PYTHON: run the tests through scripts/test.sh");
    Path::new(&python).with_file_name("torchrun")
}

#[test]
fn torchrun_and_devices_cpu_cpu_train_the_same_run() {
    let work = scratch("torchrun");
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
    let work = scratch("nodes");
    let config = config(&work, 2);
    let (own, nodes) = (work.join("own"), work.join("nodes"));
    let mut args = train_args(&config, &own);
    args.extend(["--devices".into(), "cpu,cpu".into()]);
    run_ok(sk_exp(&args), "sk-exp train --devices cpu,cpu");
    // What a two-machine launch runs on each machine, with the rendezvous on 127.0.0.1.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("127.0.0.1:{port}");
    let launched: Vec<Child> = (0..2)
        .map(|node| {
            Command::new(torchrun())
                .args(["--nnodes", "2", "--node-rank", &node.to_string(), "--nproc-per-node", "1"])
                .args(["--rdzv-backend", "c10d", "--rdzv-endpoint", &endpoint, "--no-python"])
                .arg(env!("CARGO_BIN_EXE_sk-exp"))
                .args(train_args(&config, &nodes))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (node, child) in launched.into_iter().enumerate() {
        let out = wait_for(child, Duration::from_secs(240), &format!("torchrun node {node}"));
        assert!(out.status.success(), "node {node}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(metrics(&own).len(), 2);
    assert_eq!(metrics(&own), metrics(&nodes));
    std::fs::remove_dir_all(work).ok();
}

/// Rank `rank` of 2 of `sk-exp train`, started by hand as a launcher would (rank 0 hosts the store).
fn rank(config: &Path, out: &Path, rank: usize, port: u16) -> Child {
    sk_exp(&train_args(config, out))
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("SK_EXP_DIST_TIMEOUT_S", "30")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn checkpoint_epoch(out: &Path) -> Option<usize> {
    RunDir::new(out).load_checkpoint().ok().flatten().map(|c| c.state.epoch)
}

#[test]
fn a_killed_rank_stops_the_other_and_the_run_resumes_to_the_uninterrupted_result() {
    let work = scratch("kill");
    let config = config(&work, 6);
    let straight = work.join("straight");
    let mut args = train_args(&config, &straight);
    args.extend(["--devices".into(), "cpu,cpu".into()]);
    run_ok(sk_exp(&args), "the uninterrupted run");

    let killed = work.join("killed");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut survivor = rank(&config, &killed, 0, port);
    let mut victim = rank(&config, &killed, 1, port);
    let started = Instant::now();
    // Six epochs leave four of slack after the epoch-2 checkpoint: the poll cannot miss the window.
    while checkpoint_epoch(&killed).is_none_or(|e| e < 2) {
        let ended = survivor.try_wait().unwrap().is_some() || victim.try_wait().unwrap().is_some();
        if ended || started.elapsed() > Duration::from_secs(240) {
            let _ = (survivor.kill(), victim.kill(), survivor.wait(), victim.wait());
            panic!("the ranks ended, or made no epoch-2 checkpoint, before the kill");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    let killed_at = Instant::now();
    let out = wait_for(survivor, Duration::from_secs(60), "the surviving rank");
    let stopped_after = killed_at.elapsed();
    assert!(!out.status.success(), "rank 0 must fail when rank 1 is gone");
    let stderr = String::from_utf8_lossy(&out.stderr);
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
    let work = scratch("world");
    let config = config(&work, 2);
    let out = work.join("run");
    let mut args = train_args(&config, &out);
    args.extend(["--devices".into(), "cpu,cpu".into(), "--stop-after".into(), "1".into()]);
    run_ok(sk_exp(&args), "one epoch on two ranks");
    let mut args = train_args(&config, &out);
    args.push("--resume".into());
    let refused = sk_exp(&args).output().unwrap();
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
    let work = scratch("nostore");
    let config = config(&work, 1);
    // Rank 1 alone: nobody hosts the store on this (free) port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = sk_exp(&train_args(&config, &work.join("run")))
        .env("RANK", "1")
        .env("WORLD_SIZE", "2")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("SK_EXP_DIST_TIMEOUT_S", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_for(child, Duration::from_secs(60), "a rank without a store");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: rank 1 cannot join the gloo group through the store at 127.0.0.1:"), "{err}");
    std::fs::remove_dir_all(work).ok();
}
