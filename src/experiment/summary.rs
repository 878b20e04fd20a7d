//! An experiment's summary: mean ± std top-1 error per label beside the paper's figure, written as
//! summary.csv, summary.md and the bar chart.
use super::dry_run::{note_borrowed_row, spec_for_data};
use super::load::{Experiment, PlannedRun};
use super::store::ExperimentDir;
use crate::models::complexity::{self, gmacs_text};
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
        "| variant | model | #params | GMACs | paper #params | paper GFLOPs | runs | top-1 error (%) mean ± std | \
         paper top-1 error (%) | difference |"
    )?;
    writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    let mut borrowed = Vec::new();
    for r in rows {
        let planned = exp.runs.iter().find(|p| p.label == r.label);
        let size = planned.map(|p| PaperSize::of(p, &mut borrowed)).unwrap_or_default();
        let std = r.std_top1_err.map_or("-".into(), |s| format!("{s:.2}"));
        let (paper, diff) = match r.paper_top1_err {
            Some(p) => (format!("{p:.2}"), format!("{:+.2}", r.mean_top1_err - p)),
            None => ("-".into(), "-".into()),
        };
        let params = r.params as f64 / 1e6;
        writeln!(
            md,
            "| {} | {} | {params:.2}M | {} | {} | {} | {} | {:.2} ± {std} | {paper} | {diff} |",
            r.label, r.model, size.gmacs, size.params, size.gflops, r.n, r.mean_top1_err
        )?;
    }
    if !borrowed.is_empty() {
        writeln!(
            md,
            "\n\\* the variant's paper row gives no #params or GFLOPs; these are its model's: {}",
            borrowed.join(", ")
        )?;
    }
    writeln!(md, "\nGMACs as the paper counts them: conv and linear layers plus the SK selection's elementwise work.")?;
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

/// A variant's multiply-adds (paper's convention) and the paper's #params and GFLOPs beside them, as text.
struct PaperSize {
    gmacs: String,
    params: String,
    gflops: String,
}

impl Default for PaperSize {
    fn default() -> Self {
        PaperSize { gmacs: "-".into(), params: "-".into(), gflops: "-".into() }
    }
}

impl PaperSize {
    /// `planned`'s figures; a row borrowed from its model's registry entry is starred and named in `borrowed`.
    fn of(planned: &PlannedRun, borrowed: &mut Vec<String>) -> PaperSize {
        let measured = spec_for_data(&planned.run).and_then(|spec| complexity::measure(&spec));
        let gmacs = measured.map_or("-".into(), |c| gmacs_text(c.paper_macs()));
        let Some(row) = planned.paper_size_row() else {
            return PaperSize { gmacs, ..PaperSize::default() };
        };
        let star = if note_borrowed_row(planned, borrowed) { "\\*" } else { "" };
        PaperSize {
            gmacs,
            params: row.params_m.map_or("-".into(), |p| format!("{p}M{star}")),
            gflops: row.gflops.map_or("-".into(), |f| format!("{f}{star}")),
        }
    }
}
