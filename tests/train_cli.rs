//! `sk-exp train` end to end: a run killed with SIGKILL mid-run (after its epoch-2 checkpoint) and resumed
//! ends with the same metrics (bitwise, timings aside) and the same weights as an uninterrupted run.
use sk_exp::train::run_dir::RunDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUN: &str = "\
model:
  name: sknet29
  overrides: {stem_width: 8, blocks: [1, 1, 1], widths: [8, 16, 32], outputs: [16, 32, 32], groups: 4,
              sk: {groups: 4, reduction: 4, min_dim: 4}}
data: {kind: synthetic, train_size: 96, eval_size: 32}
recipe: {preset: cifar10, epochs: 6, batch_size: 16, lr: 0.05, label_smoothing: 0.1}
seed: 3
threads: 1
workers: 2
";

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sk-exp-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn train(config: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sk-exp"));
    cmd.arg("train").arg("--config").arg(config).arg("--out").arg(out).arg("--quiet").args(extra);
    cmd
}

/// The epoch of the run's last complete checkpoint (None before the first, or while one is being swapped in).
fn checkpoint_epoch(out: &Path) -> Option<usize> {
    RunDir::new(out).load_checkpoint().ok().flatten().map(|c| c.state.epoch)
}

#[test]
fn a_run_killed_after_epoch_two_resumes_to_the_uninterrupted_result() {
    let work = dir("kill");
    let config = work.join("run.yaml");
    std::fs::write(&config, RUN).unwrap();

    let straight = work.join("straight");
    let status = train(&config, &straight, &[]).stdout(Stdio::null()).status().unwrap();
    assert!(status.success());

    let killed = work.join("killed");
    let mut child = train(&config, &killed, &[]).stdout(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    // Any moment between the epoch-2 checkpoint and the end of the run will do; with six epochs there are
    // four epochs of slack, so the poll cannot miss it.
    while checkpoint_epoch(&killed).is_none_or(|e| e < 2) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(300), "no epoch-2 checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let at = checkpoint_epoch(&killed).expect("a checkpoint survives the kill");
    assert!((2..6).contains(&at), "killed after epoch {at}: too late to test resuming");

    let again = train(&config, &killed, &[]).output().unwrap();
    assert!(!again.status.success(), "a second run into the same folder must not start over");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    let status = train(&config, &killed, &["--resume"]).stdout(Stdio::null()).status().unwrap();
    assert!(status.success());

    let columns = |out: &Path| -> Vec<String> {
        RunDir::new(out).read_metrics().unwrap().iter().map(|m| m.deterministic_row().unwrap()).collect()
    };
    assert_eq!(columns(&straight).len(), 6);
    assert_eq!(columns(&straight), columns(&killed));
    let load = |out: &Path| RunDir::new(out).load_checkpoint().unwrap().unwrap();
    let (a, b) = (load(&straight), load(&killed));
    assert_eq!(a.state, b.state);
    for ((name, ta), (_, tb)) in a.weights.iter().zip(&b.weights).chain(a.optimizer.iter().zip(&b.optimizer)) {
        assert!(ta.equal(tb), "{name} differs after resuming");
    }
    std::fs::remove_dir_all(work).ok();
}

#[test]
fn bad_flags_give_one_line_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_sk-exp"))
        .args(["train", "--model", "sknet29", "--data", "imagenet", "--quiet"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("--data imagenet: expected synthetic, cifar:ROOT, folder:ROOT"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sk-exp"))
        .args(["train", "--model", "sknet29", "--set", "recipe.momentum=1.5", "--quiet"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("recipe.momentum"), "{err}");
}
