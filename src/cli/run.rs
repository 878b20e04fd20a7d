//! `sk-exp run EXPERIMENT.yaml`: train a declared sweep (resumable), then summarise it beside the paper.
use anyhow::{bail, Result};
use clap::Args;
use sk_exp::experiment::dry_run::{dry_run, reuse_plan};
use sk_exp::experiment::load::{load, ExperimentOptions};
use sk_exp::experiment::runner;
use sk_exp::experiment::summary::summarise;
use sk_exp::overrides::parse_assignment;
use std::path::PathBuf;

#[derive(Args)]
pub struct RunArgs {
    /// The experiment file (experiments/*.yaml).
    experiment: PathBuf,
    /// List every run with its #params and MACs beside the paper's figures; train nothing.
    #[arg(long)]
    dry_run: bool,
    /// Change a value of every run by its dotted key, e.g. --set recipe.epochs=1.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Relative data paths are taken from here.
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Only the runs with this label (or run id).
    #[arg(long)]
    only: Option<String>,
    /// Where experiment folders go.
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// Train runs recorded as failed again (by default they are kept as failed).
    #[arg(long)]
    retry_failed: bool,
    /// Train every run here, even one finished with the same configuration in another experiment under
    /// --results (by default such a run is linked, not trained again).
    #[arg(long)]
    no_reuse: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: RunArgs) -> Result<()> {
    let options = ExperimentOptions {
        results_root: args.results,
        overrides: args.set.iter().map(|s| parse_assignment(s)).collect::<Result<_>>()?,
        data_root: args.data_root,
        only: args.only,
        retry_failed: args.retry_failed,
        reuse: !args.no_reuse,
        progress: !args.quiet,
    };
    let experiment = load(&args.experiment, &options)?;
    if args.dry_run {
        print!("{}{}", dry_run(&experiment)?, reuse_plan(&experiment, &options)?);
        return Ok(());
    }
    let outcome = runner::run(&experiment, &options)?;
    println!("{}", summarise(&experiment, &options.results_root)?);
    println!(
        "{} trained, {} reused from other experiments, {} skipped (finished earlier), {} failed, {} held by another runner; results in {}",
        outcome.trained.len(),
        outcome.reused.len(),
        outcome.skipped.len(),
        outcome.failed.len(),
        outcome.locked.len(),
        options.results_root.join(&experiment.name).display()
    );
    let failed = outcome.failed.len() + outcome.failed_earlier.len();
    if failed > 0 {
        bail!(
            "{failed} of {} runs failed (reasons in {})",
            experiment.runs.len(),
            options.results_root.join(&experiment.name).join("results.csv").display()
        );
    }
    Ok(())
}
