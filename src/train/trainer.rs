//! The training loop: train, evaluate every epoch, one row of metrics.csv and one checkpoint per epoch,
//! a progress bar, and a clean stop on a non-finite loss. Resuming from a checkpoint reproduces the
//! uninterrupted run exactly (on CPU): weights, BN statistics, momentum and the epoch are saved, and every
//! random choice is seeded from (seed, epoch, index).
use super::checkpoint::{self, Checkpoint, NamedTensors, TrainState};
use super::metrics::{header_line, EpochMetrics, METRICS_FILE};
use super::parallel::{BatchStats, NetworkBuilder, ReplicaSetup, Replicas, StartState};
use super::recipe::Recipe;
use super::schedule::LrSchedule;
use crate::data::loader::Skipped;
use crate::data::{batches, seed, DataSplits, LoaderConfig};
use anyhow::{bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tch::{nn, Device};

/// Everything the loop needs besides the data and the network.
#[derive(Clone, Debug)]
pub struct TrainRun {
    pub recipe: Recipe,
    pub devices: Vec<Device>,
    pub seed: u64,
    pub out_dir: PathBuf,
    /// Data loading threads.
    pub workers: usize,
    /// libtorch intra-op threads per replica.
    pub threads: i32,
    /// What the run is (model, data, recipe, seed), as YAML: saved as run.yaml, compared on resume.
    pub identity: yaml_serde::Value,
    /// Continue from the run directory's checkpoint (or start if it has none).
    pub resume: bool,
    /// Return after this many completed epochs, as if interrupted (time-boxed sessions, tests).
    pub stop_after: Option<usize>,
    pub progress: bool,
}

/// Keeps the seed of torch's generator apart from the data streams derived from the same (seed, epoch).
const TORCH_STREAM: u64 = 0x0074_6f72_6368; // "torch" in ASCII
const RUN_FILE: &str = "run.yaml";

#[derive(Debug)]
pub struct Summary {
    pub out_dir: PathBuf,
    /// Epochs completed (including those of earlier sessions of a resumed run).
    pub epochs_done: usize,
    /// The epochs trained in this call.
    pub metrics: Vec<EpochMetrics>,
    pub best_eval_top1_err: Option<f64>,
    pub best_epoch: Option<usize>,
}

fn percent(errors: f64, samples: usize) -> f64 {
    100.0 * errors / samples as f64
}

/// Trains the network `build` makes, as `run` says, on `data`.
pub fn train(run: &TrainRun, data: &DataSplits, build: NetworkBuilder) -> Result<Summary> {
    let recipe = &run.recipe;
    recipe.validate()?;
    ensure!(!run.devices.is_empty(), "devices: expected at least one device");
    ensure!(
        data.train.len() > 0,
        "the training set is empty (an image folder needs train/<class>/ folders to train on; val/ alone serves evaluation)"
    );
    let out = run.out_dir.as_path();
    fs::create_dir_all(out).with_context(|| format!("creating the run directory {}", out.display()))?;
    let checkpoint = prepare_run_dir(run)?;

    let state = match &checkpoint {
        Some(c) => c.state.clone(),
        None => TrainState { epoch: 0, seed: run.seed, step: 0, best_eval_top1_err: None, best_epoch: None },
    };
    let start = match checkpoint {
        Some(c) => StartState { weights: c.weights, optimizer: Some(c.optimizer) },
        None => StartState { weights: initial_weights(run.seed, &build)?, optimizer: None },
    };
    let setup =
        ReplicaSetup { build, sgd: recipe.sgd(), label_smoothing: recipe.label_smoothing, threads: run.threads };
    let replicas = Replicas::start(&run.devices, setup, start)?;
    Loop { run, data, replicas, state }.run()
}

/// Weights of a fresh run: the network built on the CPU right after seeding torch, so every device list
/// starts from the same initialisation.
fn initial_weights(seed: u64, build: &NetworkBuilder) -> Result<NamedTensors> {
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    build(&vs.root())?;
    let mut weights: NamedTensors = vs.variables().into_iter().collect();
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(weights)
}

/// Checks the run directory against `run` and returns its checkpoint when resuming; writes run.yaml and
/// the metrics header for a fresh run, and drops metrics rows newer than the checkpoint when resuming.
fn prepare_run_dir(run: &TrainRun) -> Result<Option<Checkpoint>> {
    let out = run.out_dir.as_path();
    let checkpoint = checkpoint::load(out)?;
    let run_file = out.join(RUN_FILE);
    if !run.resume {
        if let Some(c) = &checkpoint {
            bail!(
                "{} already holds a run (checkpoint after epoch {}); resume it with --resume or choose another output directory",
                out.display(),
                c.state.epoch
            );
        }
    } else if run_file.exists() {
        let text = fs::read_to_string(&run_file).with_context(|| format!("reading {}", run_file.display()))?;
        let saved: yaml_serde::Value =
            yaml_serde::from_str(&text).with_context(|| format!("{}: not YAML", run_file.display()))?;
        if saved != run.identity {
            bail!("{}: {}", run_file.display(), describe_difference(&saved, &run.identity));
        }
    }
    crate::util::fs::write_atomic(&run_file, yaml_serde::to_string(&run.identity)?.as_bytes())?;
    if let Some(c) = &checkpoint {
        if c.state.seed != run.seed {
            bail!(
                "{}: the checkpoint was trained with seed {}, this run has seed {}",
                out.display(),
                c.state.seed,
                run.seed
            );
        }
    }
    let done = checkpoint.as_ref().map_or(0, |c| c.state.epoch);
    let metrics = out.join(METRICS_FILE);
    let mut text = format!("{}\n", header_line());
    if metrics.exists() && done > 0 {
        let old = fs::read_to_string(&metrics).with_context(|| format!("reading {}", metrics.display()))?;
        // Rows of epochs after the checkpoint were written by a session that died before checkpointing.
        for line in old.lines().skip(1) {
            let epoch: usize = line.split(',').next().and_then(|e| e.parse().ok()).unwrap_or(usize::MAX);
            if epoch <= done {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    crate::util::fs::write_atomic(&metrics, text.as_bytes())?;
    Ok(checkpoint)
}

/// Names the first (dotted) key whose value differs between the saved run and this one.
fn describe_difference(saved: &yaml_serde::Value, now: &yaml_serde::Value) -> String {
    fn show(v: Option<&yaml_serde::Value>) -> String {
        v.map_or("nothing".into(), |v| yaml_serde::to_string(v).unwrap_or_default().trim().replace('\n', " "))
    }
    fn first_difference(path: &str, saved: &yaml_serde::Value, now: &yaml_serde::Value) -> Option<String> {
        let (Some(a), Some(b)) = (saved.as_mapping(), now.as_mapping()) else {
            return (saved != now).then(|| {
                format!("'{path}' is {} in the run being resumed but {} now", show(Some(saved)), show(Some(now)))
            });
        };
        let keys = b.keys().chain(a.keys().filter(|k| !b.contains_key(*k)));
        keys.into_iter().find_map(|key| {
            let name = key.as_str().unwrap_or("?");
            let child = if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
            match (a.get(key), b.get(key)) {
                (Some(x), Some(y)) => first_difference(&child, x, y),
                (x, y) => Some(format!("'{child}' is {} in the run being resumed but {} now", show(x), show(y))),
            }
        })
    }
    let what = first_difference("", saved, now).unwrap_or_else(|| "the settings differ".into());
    format!("{what}; resume with the same settings or choose another output directory")
}

struct Loop<'a> {
    run: &'a TrainRun,
    data: &'a DataSplits,
    replicas: Replicas,
    state: TrainState,
}

impl Loop<'_> {
    fn run(mut self) -> Result<Summary> {
        let recipe = &self.run.recipe;
        let iters = self.data.train.len() / recipe.batch_size;
        ensure!(
            iters > 0,
            "recipe.batch_size: {} is larger than the training set ({} samples)",
            recipe.batch_size,
            self.data.train.len()
        );
        ensure!(
            recipe.batch_size >= self.replicas.len(),
            "recipe.batch_size: {} cannot be split over {} devices",
            recipe.batch_size,
            self.replicas.len()
        );
        let schedule = LrSchedule {
            base_lr: recipe.lr,
            schedule: recipe.schedule.clone(),
            epochs: recipe.epochs,
            warmup_epochs: recipe.warmup_epochs,
            iters_per_epoch: iters,
        };
        let mut metrics = Vec::new();
        let run_start = Instant::now();
        let first = self.state.epoch;
        for epoch in first..recipe.epochs {
            if self.run.stop_after.is_some_and(|k| epoch >= k) {
                break;
            }
            let m = self.epoch(epoch, &schedule)?;
            if self.run.progress {
                let per_epoch = run_start.elapsed().as_secs_f64() / (epoch + 1 - first) as f64;
                let eta = per_epoch * (recipe.epochs - epoch - 1) as f64;
                eprintln!(
                    "epoch {}/{}: {}  (run ETA {})",
                    m.epoch,
                    recipe.epochs,
                    progress_line(&m),
                    indicatif::HumanDuration(std::time::Duration::from_secs_f64(eta))
                );
            }
            metrics.push(m);
        }
        Ok(Summary {
            out_dir: self.run.out_dir.clone(),
            epochs_done: self.state.epoch,
            metrics,
            best_eval_top1_err: self.state.best_eval_top1_err,
            best_epoch: self.state.best_epoch,
        })
    }

    fn epoch(&mut self, epoch: usize, schedule: &LrSchedule) -> Result<EpochMetrics> {
        let started = Instant::now();
        // Anything that draws from torch's generator during the epoch gets a stream fixed by (seed, epoch).
        tch::manual_seed(seed::derive(&[self.run.seed, epoch as u64, TORCH_STREAM]) as i64);
        let (batch_size, workers) = (self.run.recipe.batch_size, self.run.workers);
        let mut loader =
            batches(self.data.train.clone(), LoaderConfig::train(batch_size, self.run.seed, epoch as u64, workers))?;
        let bar = self.progress_bar(epoch, loader.num_batches() as u64);
        let mut train = BatchStats::default();
        for (iter, batch) in loader.by_ref().enumerate() {
            let batch = batch?;
            let lr = schedule.lr(epoch, iter);
            let stats = self.replicas.train_step(&batch.images, &batch.labels, lr)?;
            if !stats.loss_sum.is_finite() {
                bar.abandon();
                bail!(
                    "epoch {}, iteration {}: the training loss is {} (not finite), so the run stopped; {}",
                    epoch + 1,
                    iter + 1,
                    stats.loss_sum / stats.samples as f64,
                    self.last_good()
                );
            }
            train.add(stats);
            self.state.step += 1;
            let rate = train.samples as f64 / started.elapsed().as_secs_f64();
            bar.set_message(format!(
                "loss {:.4}  err {:.2}%  {rate:.0} img/s",
                train.loss_sum / train.samples as f64,
                percent(train.top1_errors, train.samples)
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let train_s = started.elapsed().as_secs_f64();
        report_skipped("training", epoch, &loader.skipped());

        self.replicas.sync_buffers()?;
        let mut eval = BatchStats::default();
        let mut loader = batches(self.data.eval.clone(), LoaderConfig::eval(batch_size, workers))?;
        for batch in loader.by_ref() {
            let batch = batch?;
            eval.add(self.replicas.evaluate(&batch.images, &batch.labels)?);
        }
        report_skipped("evaluation", epoch, &loader.skipped());
        ensure!(eval.samples > 0, "the evaluation set is empty");
        let eval_loss = eval.loss_sum / eval.samples as f64;
        if !eval_loss.is_finite() {
            bail!(
                "epoch {}: the evaluation loss is {eval_loss} (not finite), so the run stopped; {}",
                epoch + 1,
                self.last_good()
            );
        }
        let eval_top1_err = percent(eval.top1_errors, eval.samples);
        let m = EpochMetrics {
            epoch: epoch as u32 + 1,
            lr: schedule.lr(epoch, 0),
            train_loss: train.loss_sum / train.samples as f64,
            train_top1_err: percent(train.top1_errors, train.samples),
            eval_loss: Some(eval_loss),
            eval_top1_err: Some(eval_top1_err),
            eval_top5_err: Some(percent(eval.top5_errors, eval.samples)),
            images_per_s: train.samples as f64 / train_s,
            wall_s: started.elapsed().as_secs_f64(),
        };
        self.append_metrics(&m)?;
        self.state.epoch = epoch + 1;
        if self.state.best_eval_top1_err.is_none_or(|best| eval_top1_err < best) {
            self.state.best_eval_top1_err = Some(eval_top1_err);
            self.state.best_epoch = Some(epoch + 1);
        }
        let (weights, optimizer) = self.replicas.snapshot(0)?;
        checkpoint::save(&self.run.out_dir, &Checkpoint { weights, optimizer, state: self.state.clone() })?;
        Ok(m)
    }

    fn last_good(&self) -> String {
        match self.state.epoch {
            0 => "no checkpoint was written yet".into(),
            k => format!(
                "the last good checkpoint (after epoch {k}) is in {}",
                checkpoint::dir(&self.run.out_dir).display()
            ),
        }
    }

    fn append_metrics(&self, m: &EpochMetrics) -> Result<()> {
        let path = self.run.out_dir.join(METRICS_FILE);
        let mut file =
            fs::OpenOptions::new().append(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{}", m.csv_row()).with_context(|| format!("writing {}", path.display()))?;
        file.sync_all().with_context(|| format!("syncing {}", path.display()))
    }

    fn progress_bar(&self, epoch: usize, iters: u64) -> ProgressBar {
        if !self.run.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(iters), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len}  {msg}  ETA {eta}")
            .expect("valid progress template")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, self.run.recipe.epochs));
        bar
    }
}

/// The epoch's numbers for the log line printed after it.
fn progress_line(m: &EpochMetrics) -> String {
    let eval = match (m.eval_loss, m.eval_top1_err, m.eval_top5_err) {
        (Some(loss), Some(top1), Some(top5)) => format!("eval loss {loss:.4} top-1 {top1:.2}% top-5 {top5:.2}%"),
        _ => "no evaluation".to_string(),
    };
    format!(
        "lr {:.4}  train loss {:.4} err {:.2}%  {eval}  {:.0} img/s  {:.1}s",
        m.lr, m.train_loss, m.train_top1_err, m.images_per_s, m.wall_s
    )
}

/// Says how many undecodable images the loader left out (data sets that allow skipping them).
fn report_skipped(split: &str, epoch: usize, skipped: &Skipped) {
    if skipped.count > 0 {
        eprintln!(
            "epoch {}: skipped {} unreadable {split} image(s), e.g. {}",
            epoch + 1,
            skipped.count,
            skipped.examples.join("; ")
        );
    }
}
