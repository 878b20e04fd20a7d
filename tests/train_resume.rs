//! The loop's contract: a run stopped after epoch k and resumed ends bitwise equal to an uninterrupted
//! run; a non-finite loss stops the run and keeps the last good checkpoint; run directories are guarded.
mod common;
mod train_common;
use anyhow::Result;
use sk_exp::data::DataSplits;
use sk_exp::precision::Precision;
use sk_exp::train::checkpoint;
use sk_exp::train::metrics::{EpochMetrics, METRICS_HEADER};
use sk_exp::train::recipe::Recipe;
use sk_exp::train::run_dir::RunDir;
use sk_exp::train::schedule::Schedule;
use sk_exp::train::trainer::{train, RunOptions, Trained};
use std::path::Path;
use train_common::{blobs, tiny_run, tiny_sknet};

fn recipe() -> Recipe {
    Recipe {
        epochs: 3,
        batch_size: 16,
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-4,
        wd_on_bn_bias: false,
        schedule: Schedule::Multistep { fractions: vec![0.5], gamma: 0.1 },
        warmup_epochs: 1,
        label_smoothing: 0.1,
        precision: Precision::Fp32,
    }
}

fn data() -> DataSplits {
    DataSplits { train: blobs(72, 0), eval: blobs(40, 10_000) }
}

/// Trains the tiny SKNet with `recipe` (seed 7) in `dir`.
fn session(dir: &Path, recipe: Recipe, resume: bool, stop_after: Option<usize>) -> Result<Trained> {
    let run = tiny_run(dir.to_path_buf(), recipe, 7, &["cpu"]);
    let options = RunOptions { resume, stop_after, ..RunOptions::default() };
    train(&run, &RunDir::new(dir), &data(), tiny_sknet(), &options)
}

/// The columns that must reproduce exactly (images/s and wall time are timings).
fn deterministic(rows: &[EpochMetrics]) -> Vec<String> {
    rows.iter().map(|r| r.deterministic_row().unwrap()).collect()
}

fn assert_same_tensors(a: &checkpoint::NamedTensors, b: &checkpoint::NamedTensors, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: tensor counts differ");
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{what}: {na} differs");
    }
}

#[test]
fn stopped_and_resumed_run_matches_the_uninterrupted_run_bitwise() {
    // Trains in this process: seeded draws from torch's generator, one test at a time.
    let _training = common::torch_rng();
    let straight_dir = common::fresh_dir("train_resume/straight");
    let straight = session(&straight_dir, recipe(), false, None).unwrap();
    assert_eq!(straight.epochs_done(), 3);

    let resumed_dir = common::fresh_dir("train_resume/resumed");
    assert_eq!(session(&resumed_dir, recipe(), false, Some(2)).unwrap().epochs_done(), 2);
    let resumed = session(&resumed_dir, recipe(), true, None).unwrap();
    assert_eq!(resumed.new_epochs, 1, "the resumed session trains only epoch 3");

    let a = RunDir::new(&straight_dir).read_metrics().unwrap();
    let b = RunDir::new(&resumed_dir).read_metrics().unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(deterministic(&a), deterministic(&b), "metrics differ:\n{a:?}\n{b:?}");
    // What the loop returns is what metrics.csv holds, earlier sessions included.
    assert_eq!(deterministic(&resumed.history), deterministic(&b));
    // The run learns something, and the schedule is applied: a warm-up epoch of 4 iterations, then the
    // base rate, divided by 10 at half of training (epoch 1.5, rounded to the start of epoch 3).
    assert!(a[2].train_loss < a[0].train_loss, "{a:?}");
    assert_eq!((a[0].lr, a[1].lr), (0.05 / 4.0, 0.05));
    assert!((a[2].lr - 0.005).abs() < 1e-15);

    let ca = RunDir::new(&straight_dir).load_checkpoint().unwrap().unwrap();
    let cb = RunDir::new(&resumed_dir).load_checkpoint().unwrap().unwrap();
    assert_eq!(ca.state, cb.state);
    assert_eq!(ca.state.epoch, 3);
    assert_same_tensors(&ca.weights, &cb.weights, "weights");
    assert_same_tensors(&ca.optimizer, &cb.optimizer, "momentum");
    assert!(ca.weights.iter().any(|(n, _)| n.ends_with("running_mean")), "BN statistics are saved");
    assert!(ca.weights.iter().any(|(n, _)| n == "layer1.0.conv2.attn.fc_select.weight"), "state_dict names");
    for dir in [straight_dir, resumed_dir] {
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    // Trains in this process: seeded draws from torch's generator, one test at a time.
    let _training = common::torch_rng();
    let dir = common::fresh_dir("train_resume/nan");
    let mut r = recipe();
    // Epoch 2 runs at lr 0.05 * 1e30: the weights blow up and the loss stops being finite.
    r.schedule = Schedule::Multistep { fractions: vec![0.3], gamma: 1e30 };
    r.warmup_epochs = 0;
    let err = session(&dir, r, false, None).unwrap_err().to_string();
    assert!(err.contains("not finite") && err.contains("after epoch 1"), "{err}");
    let c = RunDir::new(&dir).load_checkpoint().unwrap().unwrap();
    assert_eq!(c.state.epoch, 1);
    assert!(
        c.weights.iter().all(|(_, t)| t.isfinite().all().int64_value(&[]) == 1),
        "checkpoint holds non-finite weights"
    );
    let rows = RunDir::new(&dir).read_metrics().unwrap();
    assert_eq!(rows.len(), 1);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn run_directories_are_guarded() {
    let dir = common::fresh_dir("train_resume/guard");
    let r = Recipe { epochs: 1, warmup_epochs: 0, ..recipe() };
    session(&dir, r.clone(), false, None).unwrap();
    let text = std::fs::read_to_string(RunDir::new(&dir).metrics_file()).unwrap();
    assert_eq!(text.lines().next(), Some(METRICS_HEADER.join(",").as_str()));

    let again = session(&dir, r.clone(), false, None).unwrap_err().to_string();
    assert!(again.contains("already holds a run") && again.contains("--resume"), "{again}");

    let err = format!("{:#}", session(&dir, Recipe { lr: 0.2, ..r.clone() }, true, None).unwrap_err());
    assert!(err.contains("'recipe.lr' is 0.05 in the run being resumed but 0.2 now"), "{err}");
    assert!(err.contains("run.yaml"), "the message names the run file: {err}");

    // Resuming a finished run trains nothing more.
    assert_eq!(session(&dir, r, true, None).unwrap().new_epochs, 0);
    std::fs::remove_dir_all(dir).ok();
}
