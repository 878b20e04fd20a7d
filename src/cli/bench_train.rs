//! `sk-exp bench train`: images/s of whole training steps (forward, backward, gradient flattening, our SGD
//! step), through the same replica code `sk-exp train` runs, on random data. One key=value line, so that
//! benchmarks/train_step.sh can set it beside PyTorch eager.
use anyhow::{bail, Result};
use clap::Args;
use sk_exp::models::{complexity, registry, Model};
use sk_exp::train::checkpoint::NamedTensors;
use sk_exp::train::parallel::{Network, NetworkBuilder, ReplicaSetup, Replicas, StartState};
use sk_exp::train::recipe::Recipe;
use std::sync::Arc;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

#[derive(Args)]
pub struct BenchTrainArgs {
    /// Registered model name.
    #[arg(long)]
    model: String,
    #[arg(long, default_value_t = 64)]
    batch: i64,
    /// Input side; default the model's native size.
    #[arg(long)]
    size: Option<i64>,
    /// Timed steps (after warm-up).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Intra-op threads (libtorch's pool); default: libtorch's own choice.
    #[arg(long)]
    threads: Option<i32>,
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: BenchTrainArgs) -> Result<()> {
    if args.iters == 0 {
        bail!("--iters: expected at least 1");
    }
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    let device = sk_exp::parse_device(&args.device)?;
    let spec = registry::resolve(&args.model, None)?;
    let params = complexity::measure(&spec)?.params;
    let size = args.size.unwrap_or(spec.input_size());
    let build_spec = spec.clone();
    let build: NetworkBuilder =
        Arc::new(move |vs: &nn::Path| -> Result<Box<dyn Network>> { Ok(Box::new(Model::build(vs, &build_spec)?)) });
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    build(&vs.root())?;
    let weights: NamedTensors = vs.variables().into_iter().collect();
    let recipe = Recipe::preset("cifar10")?;
    let setup = ReplicaSetup { build, sgd: recipe.sgd(), label_smoothing: 0.0, threads: tch::get_num_threads() };
    let replicas = Replicas::start(&[device], setup, StartState { weights, optimizer: None })?;
    let images = Tensor::randn([args.batch, 3, size, size], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(spec.num_classes(), [args.batch], (Kind::Int64, Device::Cpu));
    for _ in 0..args.warmup {
        replicas.train_step(&images, &labels, 0.01)?;
    }
    // Each step reads its loss back, which waits for the device: the clock sees finished steps.
    let start = Instant::now();
    for _ in 0..args.iters {
        replicas.train_step(&images, &labels, 0.01)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let images_per_s = (args.batch as usize * args.iters) as f64 / seconds;
    println!(
        "impl=sk-exp model={} batch={} size={size} threads={} device={} params={params} images_per_s={images_per_s:.2}",
        args.model,
        args.batch,
        tch::get_num_threads(),
        args.device
    );
    Ok(())
}
