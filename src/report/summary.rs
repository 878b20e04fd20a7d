//! An experiment's summary: mean ± std of top-1 error over the seeds of each label (summary.csv).
use super::results::RunResult;
use crate::util::csv_file::{read_csv, write_csv};
use crate::util::stats::{first_appearance, mean_std};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const SUMMARY_HEADER: [&str; 7] =
    ["label", "model", "params", "n", "mean_top1_err", "std_top1_err", "paper_top1_err"];

/// One label of an experiment over its successful runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub label: String,
    pub model: String,
    pub params: u64,
    /// Number of successful runs (seeds).
    pub n: usize,
    pub mean_top1_err: f64,
    /// Sample standard deviation (n - 1 in the denominator); empty with a single run.
    pub std_top1_err: Option<f64>,
    /// The paper's figure for this label, when the experiment names one (filled in by the runner).
    pub paper_top1_err: Option<f64>,
}

/// One row per label (in order of first appearance) over its `ok` runs; labels without any are left out.
pub fn summarise_results(results: &[RunResult]) -> Vec<SummaryRow> {
    first_appearance(results.iter().filter(|r| r.is_ok()).map(|r| r.label.as_str()))
        .into_iter()
        .map(|label| {
            let runs: Vec<&RunResult> = results.iter().filter(|r| r.is_ok() && r.label == label).collect();
            // read_results guarantees top1_err and params on ok rows.
            let errors: Vec<f64> = runs.iter().filter_map(|r| r.top1_err).collect();
            let (mean_top1_err, std_top1_err) = mean_std(&errors);
            SummaryRow {
                label: label.to_string(),
                model: runs[0].model.clone(),
                params: runs[0].params.unwrap_or(0),
                n: runs.len(),
                mean_top1_err,
                std_top1_err,
                paper_top1_err: None,
            }
        })
        .collect()
}

pub fn write_summary(path: &Path, rows: &[SummaryRow]) -> Result<()> {
    write_csv(path, &SUMMARY_HEADER, rows)
}

pub fn read_summary(path: &Path) -> Result<Vec<SummaryRow>> {
    read_csv(path, &SUMMARY_HEADER, |row: &SummaryRow| {
        if row.n == 0 {
            bail!("n is 0: a summary row needs at least one run");
        }
        Ok(())
    })
}
