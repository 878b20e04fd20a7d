//! `sk-exp train`: one training run from a YAML file and/or flags; flags and `--set key=value` change
//! the file's values. `--resume` continues the run in its output folder from its last checkpoint.
use super::common::DEFAULT_CROP;
use anyhow::{Context, Result};
use clap::Args;
use sk_exp::data::DataSpec;
use sk_exp::overrides::{parse_assignment, set_dotted};
use sk_exp::train::run::ResolvedRun;
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
    /// The global batch, split over the devices.
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    /// Comma-separated: cpu, cuda, cuda:N (one replica each).
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
    /// libtorch intra-op threads per replica.
    #[arg(long)]
    threads: Option<i32>,
    /// Change any value by its dotted key, e.g. --set recipe.weight_decay=1e-4 --set model.overrides.sk.reduction=8.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Continue the run in the output folder from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Stop after this many completed epochs (the run can be resumed later).
    #[arg(long)]
    stop_after: Option<usize>,
    /// No progress bar or per-epoch lines.
    #[arg(long)]
    quiet: bool,
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
    let flags: [(&str, Option<Value>); 11] = [
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
    ];
    for (key, value) in flags {
        if let Some(value) = value {
            set_dotted(&mut tree, key, value)?;
        }
    }
    for assignment in &args.set {
        let (key, value) = parse_assignment(assignment)?;
        set_dotted(&mut tree, &key, value)?;
    }
    Ok(tree)
}

pub fn run(args: TrainArgs) -> Result<()> {
    let tree = run_tree(&args)?;
    let run = ResolvedRun::from_tree(tree).with_context(|| match &args.config {
        Some(path) => format!("{} (with the command line's changes)", path.display()),
        None => "the command line's run".into(),
    })?;
    let options = RunOptions { resume: args.resume, stop_after: args.stop_after, progress: !args.quiet };
    if !args.quiet {
        eprintln!(
            "training {} on {} for {} epochs (batch {}, devices {}), writing {}",
            run.model.name,
            run.data,
            run.recipe.epochs,
            run.recipe.batch_size,
            run.devices.join(","),
            run.out_dir.display()
        );
    }
    let finished = trainer::run(run, &options)?;
    let (run, trained) = (&finished.run, &finished.trained);
    let best = match (trained.best_eval_top1_err, trained.best_epoch) {
        (Some(err), Some(epoch)) => format!("best eval top-1 error {err:.2}% (epoch {epoch})"),
        _ => "no epoch evaluated".into(),
    };
    println!("{}: {} of {} epochs done, {best}", run.out_dir.display(), trained.epochs_done(), run.recipe.epochs);
    Ok(())
}
