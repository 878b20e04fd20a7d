//! `sk-exp train`: one training run from a YAML file and/or flags; flags and `--set key=value` change
//! the file's values. `--resume` continues the run in its output folder from its last checkpoint.
use anyhow::{bail, Context, Result};
use clap::Args;
use sk_exp::overrides::{parse_assignment, set_dotted};
use sk_exp::train::config::{RunConfig, RunOptions};
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
    /// Data: `synthetic`, `cifar:ROOT` or `folder:ROOT`.
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

fn data_value(arg: &str) -> Result<Value> {
    let mut map = Mapping::new();
    let (kind, root) = match arg.split_once(':') {
        Some((kind, root)) => (kind, Some(root)),
        None => (arg, None),
    };
    match (kind, root) {
        ("synthetic", None) => {}
        ("cifar" | "folder", Some(root)) if !root.is_empty() => {
            map.insert("root".into(), root.into());
        }
        _ => bail!("--data '{arg}': expected synthetic, cifar:ROOT or folder:ROOT"),
    }
    map.insert("kind".into(), kind.into());
    Ok(Value::Mapping(map))
}

fn run_tree(args: &TrainArgs) -> Result<Value> {
    let mut tree = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            yaml_serde::from_str(&text).with_context(|| format!("{}: not valid YAML", path.display()))?
        }
        None => Value::Mapping(Mapping::new()),
    };
    let mut set = |key: &str, value: Value| set_dotted(&mut tree, key, value);
    if let Some(m) = &args.model {
        set("model.name", m.as_str().into())?;
    }
    if let Some(d) = &args.data {
        set("data", data_value(d)?)?;
    }
    if let Some(p) = &args.recipe {
        set("recipe.preset", p.as_str().into())?;
    }
    if let Some(e) = args.epochs {
        set("recipe.epochs", Value::from(e as u64))?;
    }
    if let Some(b) = args.batch_size {
        set("recipe.batch_size", Value::from(b as u64))?;
    }
    if let Some(lr) = args.lr {
        set("recipe.lr", Value::from(lr))?;
    }
    if let Some(d) = &args.devices {
        set("devices", Value::Sequence(d.split(',').map(|s| Value::from(s.trim())).collect()))?;
    }
    if let Some(s) = args.seed {
        set("seed", Value::from(s))?;
    }
    if let Some(o) = &args.out {
        set("out_dir", o.display().to_string().into())?;
    }
    if let Some(w) = args.workers {
        set("workers", Value::from(w as u64))?;
    }
    if let Some(t) = args.threads {
        set("threads", Value::from(t as i64))?;
    }
    for assignment in &args.set {
        let (key, value) = parse_assignment(assignment)?;
        set(&key, value)?;
    }
    Ok(tree)
}

pub fn run(args: TrainArgs) -> Result<()> {
    let tree = run_tree(&args)?;
    let config = RunConfig::from_value(tree).with_context(|| match &args.config {
        Some(path) => format!("{} (with the command line's changes)", path.display()),
        None => "the command line's run".into(),
    })?;
    let out = config.out_dir();
    let options = RunOptions { resume: args.resume, stop_after: args.stop_after, progress: !args.quiet };
    if !args.quiet {
        eprintln!(
            "training {} on {} for {} epochs (batch {}, devices {}), writing {}",
            config.model.name,
            data_name(&config),
            config.recipe.epochs,
            config.recipe.batch_size,
            config.devices.join(","),
            out.display()
        );
    }
    let summary = config.run(&options)?.summary;
    let best = match (summary.best_eval_top1_err, summary.best_epoch) {
        (Some(err), Some(epoch)) => format!("best eval top-1 error {err:.2}% (epoch {epoch})"),
        _ => "no epoch evaluated".into(),
    };
    println!("{}: {} of {} epochs done, {best}", out.display(), summary.epochs_done, config.recipe.epochs);
    Ok(())
}

fn data_name(config: &RunConfig) -> String {
    yaml_serde::to_value(&config.data)
        .ok()
        .and_then(|v| v.get("kind").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "data".into())
}
