//! `sk-exp train`: one training run from a YAML file and/or flags; flags and `--set key=value` change
//! the file's values. `--resume` continues the run in its output folder from its last checkpoint.
use super::common::DEFAULT_CROP;
use anyhow::{bail, Context, Result};
use clap::Args;
use sk_exp::data::DataSpec;
use sk_exp::dist::Launch;
use sk_exp::overrides::{parse_assignment, set_dotted};
use sk_exp::precision::Precision;
use sk_exp::train::run::{apply_assignments, ResolvedRun};
use sk_exp::train::run_dir::RunDir;
use sk_exp::train::trainer::{self, RunOptions};
use std::path::PathBuf;
use yaml_serde::{Mapping, Value};

#[derive(Args)]
pub struct TrainArgs {
    /// A run file (model, data, recipe, devices, seed, out_dir, ...).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A registered model (`sk-exp models` lists them).
    #[arg(long)]
    model: Option<String>,
    /// Data: `synthetic`, `cifar:ROOT`, `folder:ROOT` (holding train/ and val/), a data folder (image
    /// folders told apart by a val/ inside, else CIFAR) or a YAML file holding a `data:` section's fields.
    #[arg(long)]
    data: Option<String>,
    /// Start the recipe from a paper recipe: cifar10, cifar100, imagenet, imagenet_light.
    #[arg(long)]
    recipe: Option<String>,
    #[arg(long)]
    epochs: Option<usize>,
    /// The global batch, split over the ranks (one per device, or torchrun's).
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    /// Comma-separated: cpu, cuda, cuda:N. Several: one process (rank) per device, started by sk-exp.
    /// Under torchrun: each rank's device (`cuda` = cuda:LOCAL_RANK).
    #[arg(long)]
    devices: Option<String>,
    #[arg(long)]
    seed: Option<u64>,
    /// Output folder (default runs/<model>_s<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Data loading threads.
    #[arg(long)]
    workers: Option<usize>,
    /// libtorch intra-op threads per rank.
    #[arg(long)]
    threads: Option<i32>,
    /// fp32, bf16 (autocast) or fp16 (autocast with loss scaling): recipe.precision.
    #[arg(long)]
    precision: Option<Precision>,
    /// Inputs and convolution weights in channels_last (the default on CUDA; memory_format: channels_last).
    #[arg(long)]
    channels_last: bool,
    /// CUDA: deterministic cuDNN algorithms instead of autotuned ones.
    #[arg(long)]
    deterministic: bool,
    /// Change any value by its dotted key, e.g. --set recipe.weight_decay=1e-4 --set model.overrides.sk.reduction=8.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Continue the run in the output folder from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Stop after this many completed epochs (the run can be resumed later).
    #[arg(long)]
    stop_after: Option<usize>,
    /// With --resume: continue although the run was trained with another number of ranks (the per-rank
    /// batch and BN's batch statistics change).
    #[arg(long)]
    new_world_size: bool,
    /// No progress bar or per-epoch lines.
    #[arg(long)]
    quiet: bool,
    /// Write no TensorBoard event files (the run file's `tensorboard.enabled: false`).
    #[arg(long)]
    no_tensorboard: bool,
}

fn run_tree(args: &TrainArgs) -> Result<Value> {
    let mut tree = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            yaml_serde::from_str(&text).with_context(|| format!("{}: not valid YAML", path.display()))?
        }
        None => Value::Mapping(Mapping::new()),
    };
    let data = args.data.as_deref().map(|d| DataSpec::from_source(d, DEFAULT_CROP, None)).transpose()?;
    // Each flag given sets the run file's value at its dotted key.
    let flags: [(&str, Option<Value>); 15] = [
        ("model.name", args.model.as_deref().map(Value::from)),
        ("data", data.map(yaml_serde::to_value).transpose()?),
        ("recipe.preset", args.recipe.as_deref().map(Value::from)),
        ("recipe.epochs", args.epochs.map(|e| Value::from(e as u64))),
        ("recipe.batch_size", args.batch_size.map(|b| Value::from(b as u64))),
        ("recipe.lr", args.lr.map(Value::from)),
        ("devices", args.devices.as_ref().map(|d| d.split(',').map(|s| Value::from(s.trim())).collect())),
        ("seed", args.seed.map(Value::from)),
        ("out_dir", args.out.as_ref().map(|o| Value::from(o.display().to_string()))),
        ("workers", args.workers.map(|w| Value::from(w as u64))),
        ("threads", args.threads.map(|t| Value::from(t as i64))),
        ("tensorboard.enabled", args.no_tensorboard.then_some(Value::from(false))),
        ("recipe.precision", args.precision.map(|p| Value::from(p.to_string()))),
        ("memory_format", args.channels_last.then(|| Value::from("channels_last"))),
        ("deterministic", args.deterministic.then_some(Value::Bool(true))),
    ];
    for (key, value) in flags {
        if let Some(value) = value {
            set_dotted(&mut tree, key, value)?;
        }
    }
    // `--set` as in `sk-exp run`: the same grammar (spec fields and their list entries included).
    let assignments = args.set.iter().map(|a| parse_assignment(a)).collect::<Result<Vec<_>>>()?;
    apply_assignments(&mut tree, &assignments)?;
    Ok(tree)
}

pub fn run(args: TrainArgs) -> Result<()> {
    let tree = run_tree(&args)?;
    let run = ResolvedRun::from_tree(tree).with_context(|| match &args.config {
        Some(path) => format!("{} (with the command line's changes)", path.display()),
        None => "the command line's run".into(),
    })?;
    let options = RunOptions {
        resume: args.resume,
        stop_after: args.stop_after,
        progress: !args.quiet,
        new_world_size: args.new_world_size,
    };
    let rank = Launch::from_env()?.map_or(0, |l| l.rank);
    if !args.quiet && rank == 0 {
        eprintln!(
            "training {} on {} for {} epochs (batch {}, {}, devices {}), writing {}",
            run.model.name,
            run.data,
            run.recipe.epochs,
            run.recipe.batch_size,
            run.recipe.precision,
            run.devices.join(","),
            run.out_dir.display()
        );
    }
    // One training per run folder: rank 0 (alone, or torchrun's) holds the lock for the whole run; the ranks
    // `sk-exp train` starts itself (`sk-exp rank`) run under their parent's. The kernel releases the lock of a
    // process that dies, so a crashed run never leaves a stale one.
    let dir = RunDir::new(&run.out_dir);
    let _lock = match rank {
        0 => match dir.lock()? {
            Some(lock) => Some(lock),
            None => bail!(
                "{}: another sk-exp process is training this run (it holds {}); wait for it or choose another output directory",
                run.out_dir.display(),
                dir.lock_file().display()
            ),
        },
        _ => None,
    };
    let finished = trainer::run(run, &options)?;
    if rank != 0 {
        return Ok(());
    }
    let (run, trained) = (&finished.run, &finished.trained);
    let best = match (trained.best_eval_top1_err, trained.best_epoch) {
        (Some(err), Some(epoch)) => format!("best eval top-1 error {err:.2}% (epoch {epoch})"),
        _ => "no epoch evaluated".into(),
    };
    println!("{}: {} of {} epochs done, {best}", run.out_dir.display(), trained.epochs_done(), run.recipe.epochs);
    Ok(())
}

/// `sk-exp rank`: one rank of a run that `sk-exp train` or the experiment runner started with one process
/// per device (not for direct use: the run comes in the environment, the rank in torchrun's variables).
#[derive(Args)]
pub struct RankArgs {
    #[arg(long)]
    resume: bool,
    #[arg(long)]
    stop_after: Option<usize>,
    #[arg(long)]
    progress: bool,
    #[arg(long)]
    new_world_size: bool,
}

pub fn run_rank(args: RankArgs) -> Result<()> {
    let text = std::env::var(trainer::RANK_RUN_VAR)
        .with_context(|| format!("{} is not set: `sk-exp rank` is started by `sk-exp train`", trainer::RANK_RUN_VAR))?;
    let run: ResolvedRun = yaml_serde::from_str(&text).context("the rank's run")?;
    let options = RunOptions {
        resume: args.resume,
        stop_after: args.stop_after,
        progress: args.progress,
        new_world_size: args.new_world_size,
    };
    trainer::run_as_rank(run, &options)?;
    Ok(())
}
