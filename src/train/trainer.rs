//! The training loop: train, evaluate every epoch, one row of metrics.csv and one checkpoint per epoch,
//! a progress bar, and a clean stop on a non-finite loss. Resuming from a checkpoint reproduces the
//! uninterrupted run exactly (on CPU): weights, BN statistics, momentum and the epoch are saved, and every
//! random choice is seeded from (seed, epoch, index).
use super::checkpoint::{self, Checkpoint, NamedTensors, TrainState};
use super::metrics::EpochMetrics;
use super::replica::{network_builder, NetworkBuilder, Replica, ReplicaSetup, StartState};
use super::run::ResolvedRun;
use super::run_dir::RunDir;
use super::schedule::LrSchedule;
use super::step_counts::StepCounts;
use super::tensorboard::EventLog;
use crate::data::loader::{upload, Shard, Skipped};
use crate::data::{self, batches, seed, DataSplits, LoaderConfig};
use crate::dist::{self, Launch, ProcessGroup};
use crate::loss::{ClassificationStats, DeviceStats};
use anyhow::{anyhow, bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};
use tch::{nn, Device, Tensor};

/// How a session of a run is driven, beyond what the run is.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue from the run folder's checkpoint (or start if it has none).
    pub resume: bool,
    /// Return after this many completed epochs, as if interrupted (time-boxed sessions, tests).
    pub stop_after: Option<usize>,
    pub progress: bool,
    /// Resume a run although it was trained with another number of ranks (its per-rank batch changes).
    pub new_world_size: bool,
}

/// Keeps the seed of torch's generator apart from the data streams derived from the same (seed, epoch).
const TORCH_STREAM: u64 = 0x0074_6f72_6368; // "torch" in ASCII

/// What the loop leaves behind, earlier sessions of a resumed run included.
#[derive(Debug)]
pub struct Trained {
    /// Every completed epoch's metrics row, as metrics.csv holds them.
    pub history: Vec<EpochMetrics>,
    /// How many of them this call trained.
    pub new_epochs: usize,
    pub best_eval_top1_err: Option<f64>,
    pub best_epoch: Option<usize>,
}

impl Trained {
    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }
}

/// A finished training session: the run with its class count bound to the data, the data, and the loop's record.
pub struct Finished {
    pub run: ResolvedRun,
    pub data: DataSplits,
    pub trained: Trained,
}

/// Opens the data, binds the model's class count to it and trains the run in its folder: the one entry
/// point `sk-exp train` and the experiment runner share.
pub fn run(mut run: ResolvedRun, options: &RunOptions) -> Result<Finished> {
    let data = data::open(&run.data, run.data_root.as_deref())?;
    run.bind_classes(data.train.num_classes())?;
    let dir = RunDir::new(&run.out_dir);
    let trained = if run.devices.len() > 1 && Launch::from_env()?.is_none() {
        run.world_size = run.devices.len();
        train_in_local_ranks(&run, &dir, options)?
    } else {
        train(&run, &dir, &data, network_builder(&run.model.spec), options)?
    };
    Ok(Finished { run, data, trained })
}

/// The environment variable that hands a rank started by [`train_in_local_ranks`] its run.
pub const RANK_RUN_VAR: &str = "SK_EXP_RANK_RUN";

/// Trains `run` with one process per device on this machine (`sk-exp rank` children, as torchrun would
/// start them) and reads what rank 0 recorded.
fn train_in_local_ranks(run: &ResolvedRun, dir: &RunDir, options: &RunOptions) -> Result<Trained> {
    let earlier = if options.resume { dir.read_metrics().map(|m| m.len()).unwrap_or(0) } else { 0 };
    // SK_EXP_BIN: the sk-exp binary, for callers that are not sk-exp themselves (tests, other programs).
    let exe = match std::env::var_os("SK_EXP_BIN") {
        Some(path) => path.into(),
        None => std::env::current_exe().context("locating the sk-exp binary to start the ranks")?,
    };
    let mut command = std::process::Command::new(exe);
    command.arg("rank").env(RANK_RUN_VAR, yaml_serde::to_string(run)?);
    command.args(options.resume.then_some("--resume"));
    command.args(options.new_world_size.then_some("--new-world-size"));
    command.args(options.progress.then_some("--progress"));
    if let Some(k) = options.stop_after {
        command.args(["--stop-after", &k.to_string()]);
    }
    dist::spawn::run_local_ranks(&command, run.devices.len())?;
    let history = dir.read_metrics()?;
    let mut best = fresh_state(run.seed);
    for row in &history {
        best.note_eval(row.epoch as usize, row.eval_top1_err);
    }
    Ok(Trained {
        new_epochs: history.len().saturating_sub(earlier),
        best_eval_top1_err: best.best_eval_top1_err,
        best_epoch: best.best_epoch,
        history,
    })
}

/// What a rank started by [`train_in_local_ranks`] (or by torchrun) runs: `run` on its data, as rank
/// RANK of WORLD_SIZE.
pub fn run_as_rank(mut run: ResolvedRun, options: &RunOptions) -> Result<Trained> {
    let data = data::open(&run.data, run.data_root.as_deref())?;
    run.bind_classes(data.train.num_classes())?;
    train(&run, &RunDir::new(&run.out_dir), &data, network_builder(&run.model.spec), options)
}

/// Trains the network `build` makes, as `run` says, on `data`, in the run folder `dir`: alone, or as one
/// rank of a group when the environment says so (torchrun's RANK, WORLD_SIZE, ...). Rank 0 alone writes
/// the run folder; the others receive its starting state.
pub fn train(
    run: &ResolvedRun,
    dir: &RunDir,
    data: &DataSplits,
    build: NetworkBuilder,
    options: &RunOptions,
) -> Result<Trained> {
    let recipe = &run.recipe;
    recipe.validate()?;
    // libtorch intra-op threads per rank: as configured, else libtorch's current setting.
    let threads = run.threads.unwrap_or_else(tch::get_num_threads);
    ensure!(threads >= 1, "threads: expected at least 1");
    ensure!(
        !data.train.is_empty(),
        "the training set is empty (an image folder needs train/<class>/ folders to train on; val/ alone serves evaluation)"
    );
    let launch = Launch::from_env()?;
    let (rank, world) = launch.as_ref().map_or((0, 1), |l| (l.rank, l.world));
    let device = rank_device(run, launch.as_ref())?;
    ensure!(
        recipe.batch_size.is_multiple_of(world),
        "recipe.batch_size: {} cannot be split evenly over {world} ranks",
        recipe.batch_size
    );
    tch::set_num_threads(threads);
    let group = match &launch {
        Some(launch) => Some(ProcessGroup::join_for_device(launch, device, group_timeout()?)?),
        None => None,
    };
    let mut run = run.clone();
    run.world_size = world;
    let (mut state, start, history) = if rank == 0 {
        let resumed = dir.start_training(&run, options.resume, options.new_world_size)?;
        match resumed.checkpoint {
            Some(c) => (c.state, StartState { weights: c.weights, optimizer: Some(c.optimizer) }, resumed.history),
            None => (fresh_state(run.seed), fresh_start(run.seed, &build)?, resumed.history),
        }
    } else {
        (fresh_state(run.seed), fresh_start(run.seed, &build)?, Vec::new())
    };
    if let Some(group) = &group {
        state = share_state(group, state, device)?;
    }
    let compute = run.compute(device);
    let setup = ReplicaSetup { build, sgd: recipe.sgd(), label_smoothing: recipe.label_smoothing, compute };
    let replica = Replica::start(device, &setup, &start, group)?;
    drop(start);
    let earlier = history.len();
    let shard = Shard { rank, world };
    let events = EventLog::new((rank == 0).then(|| dir.events_dir()), &run.tensorboard);
    let writer = checkpoint::Writer::default();
    let mut training = Loop { run: &run, dir, options, data, replica, shard, state, history, events, writer };
    training.run()?;
    Ok(Trained {
        new_epochs: training.history.len() - earlier,
        best_eval_top1_err: training.state.best_eval_top1_err,
        best_epoch: training.state.best_epoch,
        history: training.history,
    })
}

/// How long a rank waits for the others (joining, and in every collective) before it gives up. A rank that
/// dies is usually noticed at once (its connections close); this bounds the rest. SK_EXP_DIST_TIMEOUT_S
/// changes it.
fn group_timeout() -> Result<Duration> {
    let seconds = match std::env::var("SK_EXP_DIST_TIMEOUT_S") {
        Ok(text) => text
            .parse::<u64>()
            .ok()
            .filter(|&s| s > 0)
            .with_context(|| format!("SK_EXP_DIST_TIMEOUT_S={text}: expected a whole number of seconds"))?,
        Err(_) => 600,
    };
    Ok(Duration::from_secs(seconds))
}

/// This process's device: alone, the run's one device; as rank r, `devices[LOCAL_RANK]` when the list
/// names one per local rank, else the list's one kind (`cuda` -> cuda:LOCAL_RANK, as torchrun users
/// expect; `cpu` -> cpu).
fn rank_device(run: &ResolvedRun, launch: Option<&Launch>) -> Result<Device> {
    let devices = run.devices.iter().map(|d| crate::device::parse(d)).collect::<Result<Vec<_>>>()?;
    let device = match (launch, devices.as_slice()) {
        (None, [device]) => *device,
        (None, _) => bail!(
            "devices: {} devices need one process each: start them with `sk-exp train` or torchrun",
            devices.len()
        ),
        (Some(l), list) if list.len() > l.local_rank && list.len() > 1 => list[l.local_rank],
        (Some(l), [Device::Cuda(_)]) => Device::Cuda(l.local_rank),
        (Some(_), [device]) => *device,
        (Some(l), list) => bail!("devices: {} listed, but this is local rank {}", list.len(), l.local_rank),
    };
    crate::device::check(device)?;
    if let Device::Cuda(index) = device {
        dist::set_cuda_device(index)?;
    }
    Ok(device)
}

fn fresh_state(seed: u64) -> TrainState {
    TrainState { epoch: 0, seed, step: 0, best_eval_top1_err: None, best_epoch: None }
}

fn fresh_start(seed: u64, build: &NetworkBuilder) -> Result<StartState> {
    Ok(StartState { weights: initial_weights(seed, build)?, optimizer: None })
}

/// Rank 0's training state, on every rank (where a resumed run continues, and its best epoch so far).
fn share_state(group: &ProcessGroup, state: TrainState, device: Device) -> Result<TrainState> {
    let packed = Tensor::from_slice(&[
        state.epoch as f64,
        state.step as f64,
        state.best_eval_top1_err.unwrap_or(f64::NAN),
        state.best_epoch.map_or(-1.0, |e| e as f64),
    ])
    .to_device(device); // NCCL broadcasts device tensors only
    group.broadcast(&packed, 0)?;
    let v: Vec<f64> = Vec::try_from(packed.to_device(Device::Cpu))?;
    Ok(TrainState {
        epoch: v[0] as usize,
        seed: state.seed,
        step: v[1] as u64,
        best_eval_top1_err: (!v[2].is_nan()).then_some(v[2]),
        best_epoch: (v[3] >= 0.0).then_some(v[3] as usize),
    })
}

/// Weights of a fresh run: the network built on the CPU right after seeding torch, so every device list
/// starts from the same initialisation.
fn initial_weights(seed: u64, build: &NetworkBuilder) -> Result<NamedTensors> {
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    build(&vs.root())?;
    Ok(vs.variables().into_iter().collect())
}

struct Loop<'a> {
    run: &'a ResolvedRun,
    dir: &'a RunDir,
    options: &'a RunOptions,
    data: &'a DataSplits,
    replica: Replica,
    /// This rank's part of every batch.
    shard: Shard,
    state: TrainState,
    history: Vec<EpochMetrics>,
    events: EventLog,
    /// Writes each epoch's checkpoint while the next epoch trains.
    writer: checkpoint::Writer,
}

impl Loop<'_> {
    /// The epochs, then the wait for the last checkpoint: the run reports nothing, success or error,
    /// before the checkpoint it may name is on disk.
    fn run(&mut self) -> Result<()> {
        let trained = self.epochs();
        let written = self.writer.finish();
        match (trained, written) {
            (Ok(()), written) => written,
            (Err(err), Ok(())) => Err(err),
            (Err(err), Err(write_err)) => {
                Err(anyhow!("{err:#}; writing the last checkpoint failed too: {write_err:#}"))
            }
        }
    }

    fn epochs(&mut self) -> Result<()> {
        let recipe = &self.run.recipe;
        let iters = self.data.train.len() / recipe.batch_size;
        ensure!(
            iters > 0,
            "recipe.batch_size: {} is larger than the training set ({} samples)",
            recipe.batch_size,
            self.data.train.len()
        );
        let schedule = LrSchedule {
            base_lr: recipe.lr,
            schedule: recipe.schedule.clone(),
            epochs: recipe.epochs,
            warmup_epochs: recipe.warmup_epochs,
            iters_per_epoch: iters,
        };
        let run_start = Instant::now();
        let first = self.state.epoch;
        for epoch in first..recipe.epochs {
            if self.options.stop_after.is_some_and(|k| epoch >= k) {
                break;
            }
            let started = Instant::now();
            let (trained, seconds) = self.train_epoch(epoch, &schedule)?;
            let eval = self.evaluate(epoch)?;
            let row = EpochMetrics {
                epoch: epoch as u32 + 1,
                lr: schedule.lr(epoch, 0),
                train_loss: trained.loss(),
                train_top1_err: trained.top1_err(),
                eval_loss: Some(eval.loss()),
                eval_top1_err: Some(eval.top1_err()),
                eval_top5_err: Some(eval.top5_err()),
                images_per_s: trained.samples as f64 / seconds,
                wall_s: started.elapsed().as_secs_f64(),
            };
            self.record(row)?;
            if self.options.progress && self.shard.rank == 0 {
                let per_epoch = run_start.elapsed().as_secs_f64() / (epoch + 1 - first) as f64;
                let eta = per_epoch * (recipe.epochs - epoch - 1) as f64;
                let eta = indicatif::HumanDuration(Duration::try_from_secs_f64(eta).unwrap_or(Duration::MAX));
                let row = self.history.last().expect("recorded above");
                eprintln!("epoch {}/{}: {}  (run ETA {eta})", row.epoch, recipe.epochs, progress_line(row));
            }
        }
        Ok(())
    }

    /// One pass over the shuffled training set, a step per batch: the summed counts and the seconds it took.
    fn train_epoch(&mut self, epoch: usize, schedule: &LrSchedule) -> Result<(ClassificationStats, f64)> {
        let started = Instant::now();
        // Anything that draws from torch's generator during the epoch gets a stream fixed by (seed, epoch).
        tch::manual_seed(seed::derive(&[self.run.seed, epoch as u64, TORCH_STREAM]) as i64);
        let (batch_size, workers) = (self.run.recipe.batch_size, self.run.workers());
        let device = self.replica.device();
        let config =
            LoaderConfig { shard: self.shard, ..LoaderConfig::train(batch_size, self.run.seed, epoch as u64, workers) }
                .for_device(device)?;
        let mut loader = batches(self.data.train.clone(), config)?;
        let bar = self.progress_bar(epoch, loader.num_batches() as u64);
        self.replica.set_planned_batch(batch_size);
        let mut train = ClassificationStats::default();
        let mut steps = StepCounts::new(self.replica.device());
        let first_step = self.state.step;
        for (iter, batch) in loader.by_ref().enumerate() {
            let (images, labels) = upload(&batch?, device);
            if iter == 0 && self.shard.rank == 0 {
                dump_input(&images)?;
            }
            let stats = self.replica.train_step(&images, &labels, schedule.lr(epoch, iter))?;
            self.state.step += 1;
            if steps.push(&stats) {
                self.add_steps(&mut steps, &mut train, (epoch, first_step), schedule, &bar)?;
                let rate = train.samples as f64 / started.elapsed().as_secs_f64();
                bar.set_message(format!("loss {:.4}  err {:.2}%  {rate:.0} img/s", train.loss(), train.top1_err()));
            }
            bar.inc(1);
        }
        self.add_steps(&mut steps, &mut train, (epoch, first_step), schedule, &bar)?;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        report_skipped("training", epoch, &loader.skipped());
        Ok((train, seconds))
    }

    /// Reads the steps' counts kept on the device into the epoch's sums (and the per-step event log), in
    /// step order; a non-finite loss stops the run before the epoch's checkpoint (every rank reads the same
    /// reduced counts, so all stop). `first_step` is the optimizer step count before the epoch.
    fn add_steps(
        &mut self,
        steps: &mut StepCounts,
        train: &mut ClassificationStats,
        (epoch, first_step): (usize, u64),
        schedule: &LrSchedule,
        bar: &ProgressBar,
    ) -> Result<()> {
        for (iter, stats) in steps.read()? {
            if !stats.loss_sum.is_finite() {
                bar.abandon();
                bail!(
                    "epoch {}, iteration {}: the training loss is {} (not finite), so the run stopped; {}",
                    epoch + 1,
                    iter + 1,
                    stats.loss(),
                    self.last_good()
                );
            }
            train.add(stats);
            self.events.step(first_step + iter as u64 + 1, stats, schedule.lr(epoch, iter));
        }
        Ok(())
    }

    /// The evaluation set's counts, with the replicas' BN statistics averaged first.
    fn evaluate(&mut self, epoch: usize) -> Result<ClassificationStats> {
        self.replica.sync_buffers()?;
        let device = self.replica.device();
        let mut sums = DeviceStats::zeros(device);
        let config =
            LoaderConfig { shard: self.shard, ..LoaderConfig::eval(self.run.recipe.batch_size, self.run.workers()) }
                .for_device(device)?;
        let mut loader = batches(self.data.eval.clone(), config)?;
        for batch in loader.by_ref() {
            let (images, labels) = upload(&batch?, device);
            sums.add(&self.replica.evaluate(&images, &labels)?);
        }
        report_skipped("evaluation", epoch, &loader.skipped());
        let eval = self.replica.reduce_stats(sums)?;
        ensure!(eval.samples > 0, "the evaluation set is empty");
        if !eval.loss().is_finite() {
            bail!(
                "epoch {}: the evaluation loss is {} (not finite), so the run stopped; {}",
                epoch + 1,
                eval.loss(),
                self.last_good()
            );
        }
        Ok(eval)
    }

    /// The epoch's row into metrics.csv, the best epoch so far, and the checkpoint.
    /// Every rank keeps the state; rank 0 alone writes.
    fn record(&mut self, row: EpochMetrics) -> Result<()> {
        self.state.epoch = row.epoch as usize;
        self.state.note_eval(self.state.epoch, row.eval_top1_err);
        if self.shard.rank != 0 {
            return Ok(());
        }
        self.dir.append_metrics(&row)?;
        self.events.epoch(self.state.step, &row);
        self.history.push(row);
        let (weights, optimizer) = self.replica.snapshot();
        self.writer.write(self.dir.checkpoint_slots(), Checkpoint { weights, optimizer, state: self.state.clone() })
    }

    fn last_good(&self) -> String {
        match self.state.epoch {
            0 => "no checkpoint was written yet".into(),
            k => format!("the last good checkpoint (after epoch {k}) is in {}", self.dir.checkpoint_dir().display()),
        }
    }

    fn progress_bar(&self, epoch: usize, iters: u64) -> ProgressBar {
        if !self.options.progress || self.shard.rank != 0 {
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
/// The environment variable naming a file into which each epoch's first training batch is written as the
/// model gets it (8-bit batches normalised on the device): raw little-endian float32, NCHW order. A
/// debugging aid that compares the 8-bit and float input paths (scripts/cuda_check.sh).
pub const DUMP_INPUT_ENV: &str = "SK_EXP_DUMP_INPUT";

fn dump_input(images: &Tensor) -> Result<()> {
    let Some(path) = std::env::var_os(DUMP_INPUT_ENV) else {
        return Ok(());
    };
    let values = Vec::<f32>::try_from(images.to_device(Device::Cpu).contiguous().flatten(0, -1))?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    crate::util::fs::write_atomic(std::path::Path::new(&path), &bytes).with_context(|| DUMP_INPUT_ENV)
}

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
