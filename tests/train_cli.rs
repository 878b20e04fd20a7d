//! `sk-exp train` end to end: a run killed with SIGKILL mid-run (after its epoch-2 checkpoint) and resumed
//! ends with the same metrics (bitwise, timings aside) and the same weights as an uninterrupted run.
mod common;

use common::KillOnDrop;
use sk_exp::train::run_dir::RunDir;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const EPOCHS: usize = 6;

/// The tiny SKNet for 6 epochs on the synthetic set. The size of the training set sets how long an epoch
/// takes, and so how long the test has to kill the run between its epoch-2 checkpoint and its end (epochs 3
/// to 6): 384 images make an epoch about 0.9 s on a slow 2-core machine (96 took 0.2 s, a window a fast or
/// busy machine could miss), so even a machine several times faster leaves the poll about a second.
fn run_yaml() -> String {
    format!(
        "model:\n  name: {}\n  overrides: {}\n\
         data: {{kind: synthetic, train_size: 384, eval_size: 32}}\n\
         recipe: {{preset: cifar10, epochs: {EPOCHS}, batch_size: 16, lr: 0.05, label_smoothing: 0.1}}\n\
         seed: 3\nthreads: 1\nworkers: 2\n",
        common::TINY_BASE,
        common::tiny_flow(&[])
    )
}

fn train(config: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sk-exp"));
    cmd.arg("train").arg("--config").arg(config).arg("--out").arg(out).arg("--quiet").args(extra);
    cmd
}

fn assert_success(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// The epoch of the run's last complete checkpoint (None before the first, or while one is being swapped in).
fn checkpoint_epoch(out: &Path) -> Option<usize> {
    RunDir::new(out).load_checkpoint().ok().flatten().map(|c| c.state.epoch)
}

#[test]
fn a_run_killed_after_epoch_two_resumes_to_the_uninterrupted_result() {
    let work = common::fresh_dir("train_cli/kill");
    let config = work.join("run.yaml");
    std::fs::write(&config, run_yaml()).unwrap();

    let straight = work.join("straight");
    let started = Instant::now();
    assert_success(&common::output(&mut train(&config, &straight, &[])), "the uninterrupted run");
    let straight_took = started.elapsed();

    let killed = work.join("killed");
    let stderr = std::fs::File::create(work.join("killed.stderr")).unwrap();
    let spawned = train(&config, &killed, &[]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr).spawn();
    // Killed and reaped on every path out of this test, a failed assertion included.
    let mut child = KillOnDrop(spawned.unwrap());
    let started = Instant::now();
    // The kill must land between the epoch-2 checkpoint and the end of the run: the four epochs 3 to 6 are
    // the slack (see run_yaml; no sleep slows the run), against a poll every few milliseconds. A run that
    // ends first fails here, saying so, rather than as a mismatch further down.
    while checkpoint_epoch(&killed).is_none_or(|e| e < 2) {
        let ended = child.0.try_wait().unwrap();
        assert!(ended.is_none(), "the run ended ({ended:?}) before its epoch-2 checkpoint was seen");
        assert!(started.elapsed() < common::CHILD_DEADLINE, "no epoch-2 checkpoint after {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    let ended = child.0.try_wait().unwrap();
    assert!(
        ended.is_none(),
        "the run ended ({ended:?}) between its epoch-2 checkpoint and the kill: the uninterrupted run took \
         {straight_took:?}, too short for the poll; give it more data (data.train_size)"
    );
    child.0.kill().unwrap(); // SIGKILL: no chance to clean up
    child.0.wait().unwrap();
    let at = checkpoint_epoch(&killed).expect("a checkpoint survives the kill");
    assert!((2..EPOCHS).contains(&at), "killed after epoch {at}: too late to test resuming");

    let again = common::output(&mut train(&config, &killed, &[]));
    assert!(!again.status.success(), "a second run into the same folder must not start over");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    assert_success(&common::output(&mut train(&config, &killed, &["--resume"])), "the resumed run");

    let columns = |out: &Path| -> Vec<String> {
        RunDir::new(out).read_metrics().unwrap().iter().map(|m| m.deterministic_row().unwrap()).collect()
    };
    assert_eq!(columns(&straight).len(), EPOCHS);
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
    let out = common::sk_exp(["train", "--model", "sknet29", "--data", "imagenet", "--quiet"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("--data imagenet: expected synthetic, cifar:ROOT, folder:ROOT"),
        "{err}"
    );
    let out = common::sk_exp(["train", "--model", "sknet29", "--set", "recipe.momentum=1.5", "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("recipe.momentum"), "{err}");
}
