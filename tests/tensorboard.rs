//! TensorBoard event files of `sk-exp train`, read back by TensorBoard's own readers (the venv's
//! `tensorboard` package): every epoch scalar equals its metrics.csv value, the per-step points have
//! increasing steps and the schedule's learning rate, and a resumed run (after a session killed past its
//! checkpoint left events behind) shows each step once.
mod common;

use sk_exp::loss::ClassificationStats;
use sk_exp::train::metrics::EpochMetrics;
use sk_exp::train::run_dir::RunDir;
use sk_exp::train::schedule::LrSchedule;
use sk_exp::train::tensorboard::{EventLog, TensorBoardConfig};
use std::collections::BTreeMap;
use std::path::Path;

const EPOCHS: usize = 3;
const TRAIN_SIZE: usize = 96;
const BATCH: usize = 16;
const ITERS: u64 = (TRAIN_SIZE / BATCH) as u64;
/// The per-step cadence the test sets (`tensorboard.every`): three points per epoch.
const EVERY: u64 = 2;

fn run_yaml(tensorboard: &str) -> String {
    format!(
        "model:\n  name: {}\n  overrides: {}\n\
         data: {{kind: synthetic, train_size: {TRAIN_SIZE}, eval_size: 32}}\n\
         recipe: {{preset: cifar10, epochs: {EPOCHS}, batch_size: {BATCH}, lr: 0.05, warmup_epochs: 1}}\n\
         seed: 5\nthreads: 1\nworkers: 1\n{tensorboard}\n",
        common::TINY_BASE,
        common::tiny_flow(&[])
    )
}

fn train(config: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["train", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"];
    args.extend_from_slice(extra);
    let output = common::sk_exp(&args);
    assert!(output.status.success(), "sk-exp {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// What TensorBoard reads in the folder: (file name, first event's file_version), and every scalar by tag.
type Read = (Vec<(String, String)>, BTreeMap<String, Vec<(u64, f64)>>);

fn read_back(folder: &Path) -> Read {
    let text = common::run_python("tests/python/tensorboard_events.py", [folder]);
    let (mut files, mut scalars) = (Vec::new(), BTreeMap::<String, Vec<(u64, f64)>>::new());
    for line in text.lines() {
        match line.split(' ').collect::<Vec<_>>()[..] {
            ["file", name, version, _] => files.push((name.to_string(), version.to_string())),
            ["scalar", tag, step, value] => {
                scalars.entry(tag.to_string()).or_default().push((step.parse().unwrap(), value.parse().unwrap()))
            }
            _ => panic!("unexpected line from the reader: {line}"),
        }
    }
    (files, scalars)
}

/// A metrics.csv column of `row` by its header name.
fn value(row: &EpochMetrics, column: &str) -> f64 {
    row.columns().iter().find(|c| c.0 == column).and_then(|c| c.1).unwrap_or_else(|| panic!("no {column}"))
}

#[test]
fn a_resumed_run_reads_back_in_tensorboard_as_metrics_csv_has_it() {
    let work = common::fresh_dir("tensorboard/resumed");
    let config = work.join("run.yaml");
    std::fs::write(&config, run_yaml(&format!("tensorboard: {{every: {EVERY}}}"))).unwrap();
    let out = work.join("run");
    train(&config, &out, &["--stop-after", "2"]);
    // A session killed after its epoch-3 events but before that checkpoint leaves these behind.
    let mut killed = EventLog::new(Some(&out), &TensorBoardConfig { enabled: true, every: EVERY });
    let junk = ClassificationStats { samples: 1, loss_sum: 1e6, ..Default::default() };
    for step in 2 * ITERS + 1..=3 * ITERS {
        killed.step(step, junk, 1e6);
    }
    let mut junk_row = RunDir::new(&out).read_metrics().unwrap()[1].clone();
    (junk_row.epoch, junk_row.train_loss) = (3, 1e6);
    killed.epoch(3 * ITERS, &junk_row);
    drop(killed);
    train(&config, &out, &["--resume"]);

    let (files, scalars) = read_back(&out);
    assert_eq!(files.len(), 2, "one file per session that kept events: {files:?}");
    assert!(files.iter().all(|(_, version)| version == "brain.Event:2"), "{files:?}");

    let rows = RunDir::new(&out).read_metrics().unwrap();
    assert_eq!(rows.len(), EPOCHS);
    for (column, _) in rows[0].columns() {
        let got = &scalars[&format!("epoch/{column}")];
        // TensorBoard's scalars are float32.
        let want: Vec<(u64, f64)> =
            rows.iter().map(|r| (u64::from(r.epoch) * ITERS, f64::from(value(r, column) as f32))).collect();
        assert_eq!(got, &want, "epoch/{column}");
    }

    let run = RunDir::new(&out).read_run().unwrap();
    let schedule = LrSchedule {
        base_lr: run.recipe.lr,
        schedule: run.recipe.schedule.clone(),
        epochs: run.recipe.epochs,
        warmup_epochs: run.recipe.warmup_epochs,
        iters_per_epoch: ITERS as usize,
    };
    let steps: Vec<u64> = (1..=EPOCHS as u64 * ITERS / EVERY).map(|k| k * EVERY).collect();
    let lr = &scalars["step/lr"];
    assert_eq!(lr.iter().map(|p| p.0).collect::<Vec<_>>(), steps);
    for &(step, value) in lr {
        let (epoch, iter) = ((step - 1) / ITERS, (step - 1) % ITERS);
        assert_eq!(value, f64::from(schedule.lr(epoch as usize, iter as usize) as f32), "step/lr at step {step}");
    }
    // Each step's loss and error average the steps since the last point: an epoch's points average to its row.
    for (tag, column) in [("step/train_loss", "train_loss"), ("step/train_top1_err", "train_top1_err")] {
        let points = &scalars[tag];
        assert_eq!(points.iter().map(|p| p.0).collect::<Vec<_>>(), steps, "{tag}");
        for (row, epoch_points) in rows.iter().zip(points.chunks((ITERS / EVERY) as usize)) {
            let mean = epoch_points.iter().map(|p| p.1).sum::<f64>() / epoch_points.len() as f64;
            let want = value(row, column);
            assert!((mean - want).abs() <= 1e-5 * want.abs().max(1.0), "{tag}, epoch {}: {mean} vs {want}", row.epoch);
        }
    }
    std::fs::remove_dir_all(work).ok();
}

#[test]
fn tensorboard_can_be_turned_off_and_its_settings_are_checked() {
    let work = common::fresh_dir("tensorboard/off");
    let is_event_file = |e: &std::fs::DirEntry| e.file_name().to_string_lossy().contains("tfevents");
    let count = |out: &Path| std::fs::read_dir(out).unwrap().filter(|e| is_event_file(e.as_ref().unwrap())).count();
    let config = work.join("run.yaml");
    std::fs::write(&config, run_yaml("")).unwrap();
    train(&config, &work.join("flag"), &["--stop-after", "1", "--no-tensorboard"]);
    assert_eq!(count(&work.join("flag")), 0);
    let off = work.join("off.yaml");
    std::fs::write(&off, run_yaml("tensorboard: {enabled: false}")).unwrap();
    train(&off, &work.join("key"), &["--stop-after", "1"]);
    assert_eq!(count(&work.join("key")), 0);
    // On by default.
    train(&config, &work.join("default"), &["--stop-after", "1"]);
    assert_eq!(count(&work.join("default")), 1);

    let bad = work.join("bad.yaml");
    std::fs::write(&bad, run_yaml("tensorboard: {evry: 5}")).unwrap();
    let output = common::sk_exp(["train", "--config", bad.to_str().unwrap(), "--quiet"]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && err.contains("evry") && err.lines().count() == 1, "{err}");
    std::fs::remove_dir_all(work).ok();
}
