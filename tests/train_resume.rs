//! The loop's contract: a run stopped after epoch k and resumed ends bitwise equal to an uninterrupted
//! run; a non-finite loss stops the run and keeps the last good checkpoint; run directories are guarded.
mod train_common;
use sk_exp::data::DataSplits;
use sk_exp::report::results::read_metrics;
use sk_exp::train::checkpoint;
use sk_exp::train::metrics::{header_line, EpochMetrics};
use sk_exp::train::recipe::Recipe;
use sk_exp::train::schedule::Schedule;
use sk_exp::train::trainer::{train, TrainRun};
use std::path::PathBuf;
use tch::Device;
use train_common::{blobs, temp_dir, tiny_sknet};

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
    }
}

fn data() -> DataSplits {
    DataSplits { train: blobs(72, 0), eval: blobs(40, 10_000) }
}

fn run(out_dir: PathBuf, recipe: Recipe) -> TrainRun {
    let identity = yaml_serde::to_value(&recipe).unwrap();
    TrainRun {
        recipe,
        devices: vec![Device::Cpu],
        seed: 7,
        out_dir,
        workers: 2,
        threads: 1,
        identity,
        resume: false,
        stop_after: None,
        progress: false,
    }
}

/// The columns that must reproduce exactly (images/s and wall time are timings).
fn deterministic(rows: &[EpochMetrics]) -> Vec<[u64; 7]> {
    rows.iter().map(EpochMetrics::deterministic_bits).collect()
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
    let straight_dir = temp_dir("straight");
    let straight = train(&run(straight_dir.clone(), recipe()), &data(), tiny_sknet()).unwrap();
    assert_eq!(straight.epochs_done, 3);

    let resumed_dir = temp_dir("resumed");
    let mut first = run(resumed_dir.clone(), recipe());
    first.stop_after = Some(2);
    assert_eq!(train(&first, &data(), tiny_sknet()).unwrap().epochs_done, 2);
    let mut second = run(resumed_dir.clone(), recipe());
    second.resume = true;
    let resumed = train(&second, &data(), tiny_sknet()).unwrap();
    assert_eq!(resumed.metrics.len(), 1, "the resumed session trains only epoch 3");

    let a = read_metrics(&straight_dir.join("metrics.csv")).unwrap();
    let b = read_metrics(&resumed_dir.join("metrics.csv")).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(deterministic(&a), deterministic(&b), "metrics differ:\n{a:?}\n{b:?}");
    // The run learns something, and the schedule is applied: a warm-up epoch of 4 iterations, then the
    // base rate, divided by 10 at half of training (epoch 1.5, rounded to the start of epoch 3).
    assert!(a[2].train_loss < a[0].train_loss, "{a:?}");
    assert_eq!((a[0].lr, a[1].lr), (0.05 / 4.0, 0.05));
    assert!((a[2].lr - 0.005).abs() < 1e-15);

    let ca = checkpoint::load(&straight_dir).unwrap().unwrap();
    let cb = checkpoint::load(&resumed_dir).unwrap().unwrap();
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
    let dir = temp_dir("nan");
    let mut r = recipe();
    // Epoch 2 runs at lr 0.05 * 1e30: the weights blow up and the loss stops being finite.
    r.schedule = Schedule::Multistep { fractions: vec![0.3], gamma: 1e30 };
    r.warmup_epochs = 0;
    let err = train(&run(dir.clone(), r), &data(), tiny_sknet()).unwrap_err().to_string();
    assert!(err.contains("not finite") && err.contains("after epoch 1"), "{err}");
    let c = checkpoint::load(&dir).unwrap().unwrap();
    assert_eq!(c.state.epoch, 1);
    assert!(
        c.weights.iter().all(|(_, t)| t.isfinite().all().int64_value(&[]) == 1),
        "checkpoint holds non-finite weights"
    );
    let rows = read_metrics(&dir.join("metrics.csv")).unwrap();
    assert_eq!(rows.len(), 1);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn run_directories_are_guarded() {
    let dir = temp_dir("guard");
    let r = Recipe { epochs: 1, warmup_epochs: 0, ..recipe() };
    train(&run(dir.clone(), r.clone()), &data(), tiny_sknet()).unwrap();
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(text.lines().next(), Some(header_line().as_str()));

    let again = train(&run(dir.clone(), r.clone()), &data(), tiny_sknet()).unwrap_err().to_string();
    assert!(again.contains("already holds a run") && again.contains("--resume"), "{again}");

    let mut changed = run(dir.clone(), Recipe { lr: 0.2, ..r.clone() });
    changed.resume = true;
    let err = train(&changed, &data(), tiny_sknet()).unwrap_err().to_string();
    assert!(err.contains("'lr' is 0.05 in the run being resumed but 0.2 now"), "{err}");

    // Resuming a finished run trains nothing more.
    let mut done = run(dir.clone(), r);
    done.resume = true;
    assert!(train(&done, &data(), tiny_sknet()).unwrap().metrics.is_empty());
    std::fs::remove_dir_all(dir).ok();
}
