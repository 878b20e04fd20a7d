//! `sk-exp bench fwd-bwd | train | eval`: images/s on random data of forward+backward, whole training steps
//! (through the same replica code `sk-exp train` runs) and eval-mode forward passes. Each prints one
//! key=value line, so that benchmarks/*.sh can set it beside PyTorch's figure for the same work.
use super::common::{check_size, set_threads, ComputeArgs};
use super::eval::SourceArgs;
use anyhow::{bail, ensure, Result};
use clap::Args;
use sk_exp::dist::{Launch, ProcessGroup};
use sk_exp::models::{complexity, registry, Model, ModelSpec};
use sk_exp::train::recipe::Recipe;
use sk_exp::train::replica::{network_builder, Replica, ReplicaSetup, StartState};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// The timing loop's settings, common to every benchmark.
#[derive(Args)]
pub struct LoopArgs {
    /// Input side; default the model's native size (224 for a TorchScript file).
    #[arg(long)]
    size: Option<i64>,
    /// Timed iterations (after warm-up).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Untimed iterations first (allocator warm-up; TorchScript's executor also optimises during them).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Intra-op threads (libtorch's pool); default: libtorch's own choice.
    #[arg(long)]
    threads: Option<i32>,
}

/// A registered model to benchmark.
#[derive(Args)]
pub struct ModelArgs {
    /// Registered model name.
    #[arg(long)]
    model: String,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[command(flatten)]
    compute: ComputeArgs,
}

#[derive(Args)]
pub struct FwdBwdArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value_t = 8)]
    batch: i64,
    #[command(flatten)]
    timing: LoopArgs,
}

#[derive(Args)]
pub struct TrainBenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value_t = 64)]
    batch: i64,
    #[command(flatten)]
    timing: LoopArgs,
}

#[derive(Args)]
pub struct EvalBenchArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[arg(long, default_value_t = 8)]
    batch: i64,
    #[command(flatten)]
    timing: LoopArgs,
}

/// The largest `--batch`.
const MAX_BATCH: i64 = 4096;

/// How long a benchmark rank waits for the others.
const GROUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// What a timing loop measured.
struct Timing {
    images_per_s: f64,
    /// From the fastest iteration: on a shared machine it is the least disturbed one.
    best_images_per_s: f64,
}

impl LoopArgs {
    /// Checks the settings and applies the thread count (before any tensor work).
    fn apply(&self, batch: i64) -> Result<()> {
        ensure!((1..=MAX_BATCH).contains(&batch), "--batch: expected 1 to {MAX_BATCH}, got {batch}");
        if self.iters == 0 {
            bail!("--iters: expected at least 1");
        }
        if let Some(size) = self.size {
            check_size("--size", size)?;
        }
        set_threads(self.threads)
    }

    /// Runs `step` warm-up + timed times; each timed iteration waits for `device` before its clock stops.
    fn time(&self, batch: i64, device: Device, mut step: impl FnMut() -> Result<()>) -> Result<Timing> {
        for _ in 0..self.warmup {
            step()?;
        }
        sync(device);
        let (start, mut fastest) = (Instant::now(), f64::INFINITY);
        for _ in 0..self.iters {
            let iteration = Instant::now();
            step()?;
            sync(device);
            fastest = fastest.min(iteration.elapsed().as_secs_f64());
        }
        let images_per_s = (batch as usize * self.iters) as f64 / start.elapsed().as_secs_f64();
        Ok(Timing { images_per_s, best_images_per_s: batch as f64 / fastest })
    }
}

impl ModelArgs {
    fn resolve(&self) -> Result<(ModelSpec, Device)> {
        let device = sk_exp::device::parse(&self.device)?;
        sk_exp::device::check(device)?;
        Ok((registry::resolve(&self.model, None)?, device))
    }

    /// The result line; `extra` is more ` key=value` pairs.
    fn print(&self, batch: i64, size: i64, extra: &str, timing: &Timing) {
        println!(
            "impl=sk-exp model={} batch={batch} size={size} threads={} device={}{}{extra} images_per_s={:.2}",
            self.model,
            tch::get_num_threads(),
            self.device,
            self.compute.describe(),
            timing.images_per_s
        );
    }
}

/// A random batch of images and labels, the same for every run (seed 0).
fn random_batch(batch: i64, size: i64, classes: i64, device: Device) -> Result<(Tensor, Tensor)> {
    tch::manual_seed(0);
    let images = Tensor::f_randn([batch, 3, size, size], (Kind::Float, device))?;
    let labels = Tensor::f_randint(classes, [batch], (Kind::Int64, device))?;
    Ok((images, labels))
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

pub fn run_fwd_bwd(args: FwdBwdArgs) -> Result<()> {
    args.timing.apply(args.batch)?;
    let (spec, device) = args.model.resolve()?;
    let size = args.timing.size.unwrap_or(spec.input_size());
    let (images, labels) = random_batch(args.batch, size, spec.num_classes(), device)?;
    let vs = nn::VarStore::new(device);
    let model = Model::build(&vs.root(), &spec)?;
    let compute = args.model.compute.compute();
    compute.lay_out_weights(vs.variables().values());
    compute.configure_cudnn(device)?;
    let images = compute.input(&images);
    let timing = args.timing.time(args.batch, device, || {
        let logits = {
            let _autocast = compute.autocast(device)?;
            model.forward_t(&images, true)?
        };
        let loss = logits.to_kind(Kind::Float).cross_entropy_for_logits(&labels);
        loss.backward();
        for mut v in vs.trainable_variables() {
            v.zero_grad();
        }
        Ok(())
    })?;
    args.model.print(args.batch, size, "", &timing);
    Ok(())
}

pub fn run_train(args: TrainBenchArgs) -> Result<()> {
    args.timing.apply(args.batch)?;
    let (spec, device) = args.model.resolve()?;
    let size = args.timing.size.unwrap_or(spec.input_size());
    // The batch starts on the CPU, as the loader's batches do: the replica moves it to its device.
    let (images, labels) = random_batch(args.batch, size, spec.num_classes(), Device::Cpu)?;
    let build = network_builder(&spec);
    let vs = nn::VarStore::new(Device::Cpu);
    build(&vs.root())?;
    let params = complexity::count_params(&vs);
    let weights = vs.variables().into_iter().collect();
    let recipe = Recipe::preset("cifar10")?;
    let setup = ReplicaSetup { build, sgd: recipe.sgd(), label_smoothing: 0.0, compute: args.model.compute.compute() };
    // Under torchrun: one rank of data parallel, --batch per rank, as PyTorch's DDP side of the benchmark.
    let launch = Launch::from_env()?;
    let device = match (&launch, device) {
        (Some(launch), Device::Cuda(_)) => {
            sk_exp::dist::set_cuda_device(launch.local_rank)?;
            Device::Cuda(launch.local_rank)
        }
        _ => device,
    };
    let group = launch.map(|launch| ProcessGroup::join_for_device(&launch, device, GROUP_TIMEOUT)).transpose()?;
    let (rank, world) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.world()));
    let mut replica = Replica::start(device, &setup, &StartState { weights, optimizer: None }, group)?;
    // A step queues its work without waiting for it; the clock waits for the device after each step.
    let timing = args.timing.time(args.batch, device, || replica.train_step(&images, &labels, 0.01).map(drop))?;
    let steps = (args.timing.warmup + args.timing.iters) as f64;
    let comm_ms = 1e3 * replica.communication().as_secs_f64() / steps;
    if rank == 0 {
        let timing = Timing { images_per_s: timing.images_per_s * world as f64, ..timing };
        args.model.print(
            args.batch,
            size,
            &format!(" params={params} world={world} comm_ms_per_step={comm_ms:.2}"),
            &timing,
        );
    }
    Ok(())
}

pub fn run_eval(args: EvalBenchArgs) -> Result<()> {
    args.timing.apply(args.batch)?;
    let classifier = args.source.load()?;
    let size = args.timing.size.or(classifier.spec().map(|s| s.input_size())).unwrap_or(224);
    let device = classifier.device();
    let (images, _) = random_batch(args.batch, size, 1, device)?;
    let timing = args.timing.time(args.batch, device, || classifier.logits(&images).map(drop))?;
    println!(
        "impl=sk-exp source={} batch={} size={size} threads={} device={device:?}{} best_images_per_s={:.2} images_per_s={:.2}",
        args.source.describe(),
        args.batch,
        tch::get_num_threads(),
        args.source.describe_compute(),
        timing.best_images_per_s,
        timing.images_per_s
    );
    Ok(())
}
