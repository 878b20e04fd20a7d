use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use sk_exp::experiment::store::ExperimentDir;
use sk_exp::report::plots::{bars, curves, figure2};
use sk_exp::report::results::{read_results, read_run_dir};
use sk_exp::report::summary::{read_summary, summarise_results, SummaryRow};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct PlotArgs {
    #[command(subcommand)]
    plot: Plot,
}

#[derive(Subcommand)]
enum Plot {
    /// Top-1 error vs #params (Figure 2, Table S2 models), with your runs added by --results.
    Figure2 {
        /// Add every results.csv under this folder: each label's mean top-1 error as a cross.
        #[arg(long)]
        results: Option<PathBuf>,
        /// Output path without extension (.png and .svg are written).
        #[arg(long, default_value = "results/figure2")]
        out: PathBuf,
    },
    /// Loss and top-1 error per epoch (train dashed, eval solid) of one or more run folders.
    Curves {
        /// Run folders holding metrics.csv (and optionally their run file, for the model's name).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Output path without extension (.png and .svg are written).
        #[arg(long, default_value = "results/curves")]
        out: PathBuf,
    },
    /// Bar chart of an experiment: mean ± std top-1 error per label (summary.csv, else results.csv).
    Summary {
        experiment: PathBuf,
        /// Output path without extension (default: EXPERIMENT/summary).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// The runner's summary.csv (which carries the paper's figures) when there is one, else one made from
/// results.csv.
fn experiment_summary(dir: &Path) -> Result<Vec<SummaryRow>> {
    let experiment = ExperimentDir { root: dir.to_path_buf() };
    let (summary, results) = (experiment.summary_csv(), experiment.results_path());
    if summary.exists() {
        return read_summary(&summary);
    }
    if !results.exists() {
        bail!("{}: neither summary.csv nor results.csv found", dir.display());
    }
    Ok(summarise_results(&read_results(&results)?))
}

pub fn run(args: PlotArgs) -> Result<()> {
    let written = match args.plot {
        Plot::Figure2 { results, out } => {
            let measured = match results {
                Some(dir) => figure2::measured_points(&dir)?,
                None => Vec::new(),
            };
            figure2::plot_figure2(&measured, &out)?
        }
        Plot::Curves { runs, out } => {
            let runs = runs.iter().map(|dir| read_run_dir(dir)).collect::<Result<Vec<_>>>()?;
            curves::plot_curves(&runs, &out)?
        }
        Plot::Summary { experiment, out } => {
            let rows = experiment_summary(&experiment)?;
            let name = experiment
                .canonicalize()
                .with_context(|| format!("cannot open {}", experiment.display()))?
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let title = format!("{name}: top-1 error per variant");
            bars::plot_summary(&rows, &title, &out.unwrap_or_else(|| experiment.join("summary")))?
        }
    };
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
