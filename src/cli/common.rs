//! Flag values several subcommands share: a model (a training run's or a registered one) with `--set`
//! changes, and its weights.
use anyhow::{anyhow, bail, ensure, Result};
use clap::Args;
use sk_exp::interop::hf;
use sk_exp::models::{registry, ModelSpec};
use sk_exp::overrides;
use sk_exp::precision::{Compute, Precision};
use sk_exp::train::run_dir::{locate_weights, RunDir};
use std::path::{Path, PathBuf};

/// `spec` with `key=value` assignments (dotted keys, YAML values) applied.
fn with_assignments(spec: ModelSpec, assignments: &[String]) -> Result<ModelSpec> {
    if assignments.is_empty() {
        return Ok(spec);
    }
    let mut tree = yaml_serde::to_value(&spec)?;
    for assignment in assignments {
        let (key, value) = overrides::parse_assignment(assignment)?;
        overrides::set_dotted(&mut tree, &key, value)?;
    }
    yaml_serde::from_value(tree).map_err(|e| anyhow!("model spec with --set: {e}"))
}

/// The model of a training run's folder (`run`, from `sk-exp train` or `sk-exp run`: its run file's model
/// with its last checkpoint's weights unless `weights` names others) or a registered model (`model`, with
/// `weights` if given), its spec changed by the `set` assignments. `weights` is a Hugging Face repository
/// (`hf:...`, found in the local cache by [`hf::resolve`]) or a path located with [`locate_weights`].
pub fn model_and_weights(
    run: Option<&Path>,
    model: Option<&str>,
    weights: Option<&Path>,
    set: &[String],
) -> Result<(ModelSpec, Option<PathBuf>)> {
    let spec = match (run, model) {
        (Some(dir), _) => RunDir::new(dir).read_run()?.model.spec,
        (None, Some(name)) => registry::resolve(name, None)?,
        (None, None) => bail!("give --run DIR or --model NAME"),
    };
    let spec = with_assignments(spec, set)?;
    let weights = match (weights, run) {
        (Some(path), _) => Some(match hf::repository(path) {
            Some(repo) => hf::resolve(repo, model.filter(|_| run.is_none()))?,
            None => locate_weights(path)?,
        }),
        (None, Some(dir)) => Some(RunDir::new(dir).weights_file()),
        (None, None) => None,
    };
    Ok((spec, weights))
}

/// The side of image folders' evaluation centre crop when no flag sets it.
pub const DEFAULT_CROP: usize = 224;

/// The largest input side a command takes (`--size`): far above any model's, far below an allocation that
/// cannot succeed.
pub const MAX_SIZE: i64 = 4096;

/// Checks an input side given by `flag`.
pub fn check_size(flag: &str, size: i64) -> Result<i64> {
    ensure!((1..=MAX_SIZE).contains(&size), "{flag}: expected an image side of 1 to {MAX_SIZE}, got {size}");
    Ok(size)
}

/// Sets libtorch's intra-op thread count from `--threads` (None: libtorch's own choice), checked first.
pub fn set_threads(threads: Option<i32>) -> Result<()> {
    if let Some(t) = threads {
        let max = sk_exp::train::run::MAX_THREADS;
        ensure!((1..=max as i32).contains(&t), "--threads: expected 1 to {max}, got {t}");
        tch::set_num_threads(t);
    }
    Ok(())
}

/// How a benchmark or an evaluation computes its forward pass.
#[derive(Args)]
pub struct ComputeArgs {
    /// fp32, or bf16 / fp16 autocast (fp32 weights; fp16 training with loss scaling).
    #[arg(long, default_value = "fp32")]
    precision: Precision,
    /// Inputs and convolution weights in channels_last.
    #[arg(long)]
    channels_last: bool,
}

impl ComputeArgs {
    pub fn compute(&self) -> Compute {
        Compute { precision: self.precision, channels_last: self.channels_last, ..Compute::default() }
    }

    /// The result line's ` key=value` pairs for these settings.
    pub fn describe(&self) -> String {
        format!(" precision={} channels_last={}", self.precision, self.channels_last)
    }
}
