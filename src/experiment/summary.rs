//! An experiment's summary: mean ± std top-1 error per label beside the paper's figure, written as
//! summary.csv, summary.md and the bar chart.
use super::load::{Experiment, PlannedRun};
use super::store::ExperimentDir;
use crate::report::plots::bars::plot_summary;
use crate::report::results::RunResult;
use crate::report::summary::{summarise_results, write_summary, SummaryRow};
use crate::util::fs::write_atomic;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

/// Writes the summary files of the experiment's results under `results_root`; returns the markdown. The
/// experiment's lock is held throughout, so that two runners finishing together write one after the other
/// (each from the results.csv it reads under the lock).
pub fn summarise(exp: &Experiment, results_root: &Path) -> Result<String> {
    let store = ExperimentDir::create(results_root.join(&exp.name))?;
    let _guard = store.lock()?;
    let results = store.results()?;
    let mut rows = summarise_results(&results);
    for row in &mut rows {
        let planned = exp.runs.iter().find(|r| r.label == row.label);
        row.paper_top1_err = planned.and_then(PlannedRun::paper_row).and_then(|p| p.top1_err);
    }
    write_summary(&store.summary_csv(), &rows)?;
    let md = markdown(exp, &rows, &results)?;
    write_atomic(&store.summary_md(), md.as_bytes())?;
    if !rows.is_empty() {
        plot_summary(&rows, &exp.name, &store.summary_plot())?;
    }
    Ok(md)
}

fn markdown(exp: &Experiment, rows: &[SummaryRow], results: &[RunResult]) -> Result<String> {
    let mut md = format!("# {}\n\n", exp.name);
    if let Some(d) = &exp.description {
        writeln!(md, "{}\n", d.trim())?;
    }
    writeln!(
        md,
        "| variant | model | #params | runs | top-1 error (%) mean ± std | paper top-1 error (%) | difference |"
    )?;
    writeln!(md, "|---|---|---:|---:|---:|---:|---:|")?;
    for r in rows {
        let std = r.std_top1_err.map_or("-".into(), |s| format!("{s:.2}"));
        let (paper, diff) = match r.paper_top1_err {
            Some(p) => (format!("{p:.2}"), format!("{:+.2}", r.mean_top1_err - p)),
            None => ("-".into(), "-".into()),
        };
        let params = r.params as f64 / 1e6;
        writeln!(
            md,
            "| {} | {} | {params:.2}M | {} | {:.2} ± {std} | {paper} | {diff} |",
            r.label, r.model, r.n, r.mean_top1_err
        )?;
    }
    let failed: Vec<&RunResult> = results.iter().filter(|r| !r.is_ok()).collect();
    if !failed.is_empty() {
        writeln!(md, "\nFailed runs:\n")?;
        for f in failed {
            writeln!(md, "- {} seed {}: {}", f.label, f.seed, f.status)?;
        }
    }
    let reused: Vec<&RunResult> = results.iter().filter(|r| r.is_ok() && !r.reused_from.is_empty()).collect();
    if !reused.is_empty() {
        writeln!(
            md,
            "\nReused runs (the same configuration finished in another experiment; linked, not trained again):\n"
        )?;
        for r in reused {
            writeln!(md, "- {} seed {}: {}", r.label, r.seed, r.reused_from)?;
        }
    }
    Ok(md)
}
