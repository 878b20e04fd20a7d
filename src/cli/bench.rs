//! `sk-exp bench fwd-bwd` (forward+backward images/s of a registered model) and `sk-exp bench eval`
//! (eval-mode forward images/s of a TorchScript file or a model) on random data, one line of key=value
//! output per measurement so that benchmarks/*.sh can set it beside PyTorch's figure.
use super::eval::SourceArgs;
use anyhow::{bail, Result};
use clap::Args;
use sk_exp::models::{registry, Model};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

#[derive(Args)]
pub struct BenchArgs {
    /// Registered model name.
    #[arg(long)]
    model: String,
    #[arg(long, default_value_t = 8)]
    batch: i64,
    /// Input side; default the model's native size.
    #[arg(long)]
    size: Option<i64>,
    /// Timed iterations (after warm-up).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Intra-op threads (libtorch's pool); default: libtorch's own choice.
    #[arg(long)]
    threads: Option<i32>,
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.iters == 0 {
        bail!("--iters: expected at least 1");
    }
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    let device = sk_exp::parse_device(&args.device)?;
    let spec = registry::resolve(&args.model, None)?;
    let size = args.size.unwrap_or(spec.input_size());
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let model = Model::build(&vs.root(), &spec)?;
    let images = Tensor::randn([args.batch, 3, size, size], (Kind::Float, device));
    let labels = Tensor::randint(spec.num_classes(), [args.batch], (Kind::Int64, device));
    let step = || -> Result<()> {
        let loss = model.forward_t(&images, true)?.cross_entropy_for_logits(&labels);
        loss.backward();
        for mut v in vs.trainable_variables() {
            v.zero_grad();
        }
        Ok(())
    };
    for _ in 0..args.warmup {
        step()?;
    }
    sync(device);
    let start = Instant::now();
    for _ in 0..args.iters {
        step()?;
    }
    sync(device);
    let seconds = start.elapsed().as_secs_f64();
    let images_per_s = (args.batch as usize * args.iters) as f64 / seconds;
    println!(
        "impl=sk-exp model={} batch={} size={size} threads={} device={} images_per_s={images_per_s:.2}",
        args.model,
        args.batch,
        tch::get_num_threads(),
        args.device
    );
    Ok(())
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

#[derive(Args)]
pub struct EvalBenchArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[arg(long, default_value_t = 8)]
    batch: i64,
    /// Input side; default the model's native size (224 for a TorchScript file).
    #[arg(long)]
    size: Option<i64>,
    /// Timed iterations (after warm-up).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Untimed iterations first (TorchScript's executor profiles and optimises during its first runs).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Intra-op threads (libtorch's pool); default: libtorch's own choice.
    #[arg(long)]
    threads: Option<i32>,
}

pub fn run_eval(args: EvalBenchArgs) -> Result<()> {
    if args.iters == 0 {
        bail!("--iters: expected at least 1");
    }
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    let classifier = args.source.load()?;
    let size = args.size.or(args.source.spec()?.map(|s| s.input_size())).unwrap_or(224);
    let device = classifier.device();
    tch::manual_seed(0);
    let images = Tensor::randn([args.batch, 3, size, size], (Kind::Float, device));
    for _ in 0..args.warmup {
        let _logits = classifier.logits(&images)?;
    }
    sync(device);
    // Each iteration timed on its own too: on a shared machine the fastest is the least disturbed.
    let (start, mut fastest) = (Instant::now(), f64::INFINITY);
    for _ in 0..args.iters {
        let iteration = Instant::now();
        let _logits = classifier.logits(&images)?;
        sync(device);
        fastest = fastest.min(iteration.elapsed().as_secs_f64());
    }
    let images_per_s = (args.batch as usize * args.iters) as f64 / start.elapsed().as_secs_f64();
    println!(
        "impl=sk-exp source={} batch={} size={size} threads={} device={device:?} best_images_per_s={:.2} images_per_s={images_per_s:.2}",
        args.source.describe(),
        args.batch,
        tch::get_num_threads(),
        args.batch as f64 / fastest
    );
    Ok(())
}
