use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use sk_exp::experiment::store::ExperimentDir;
use sk_exp::report::measured::{Measured, Point};
use sk_exp::report::plots::{bars, cifar, curves, figure2};
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
    /// ImageNet top-1 error vs #params (Figure 2, Table S2 models), with your runs added by --results.
    Figure2 {
        /// Add every results.csv under this folder: each label's mean top-1 error as a cross, for runs on an
        /// image folder at the paper's 224 crop (the others are counted and left out).
        #[arg(long)]
        results: Option<PathBuf>,
        /// Output path without extension (.png and .svg are written).
        #[arg(long, default_value = "results/figure2")]
        out: PathBuf,
    },
    /// CIFAR-10 and CIFAR-100 top-1 error vs #params (Table 5 models), with your CIFAR runs from --results.
    Cifar {
        /// Add the CIFAR runs of every results.csv under this folder (the others are counted and left out).
        #[arg(long)]
        results: Option<PathBuf>,
        /// Output path without extension (.png and .svg are written).
        #[arg(long, default_value = "results/cifar")]
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

/// The measured points of the runs under `results` (none without it), saying which runs were left out.
fn measured_panels(results: Option<PathBuf>, read: fn(&Path) -> Result<Measured>) -> Result<Vec<Vec<Point>>> {
    let Some(dir) = results else { return Ok(Vec::new()) };
    let measured = read(&dir)?;
    if let Some(message) = measured.left_out.message() {
        println!("{message}");
    }
    Ok(measured.panels)
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
            let panels = measured_panels(results, figure2::measured_points)?;
            figure2::plot_figure2(panels.first().map_or(&[][..], Vec::as_slice), &out)?
        }
        Plot::Cifar { results, out } => cifar::plot_cifar(&measured_panels(results, cifar::measured_points)?, &out)?,
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
