//! results.csv (one row per finished or failed run of an experiment: its schema, reader and writer) and a
//! run folder's training history for the curves. Every error names the file, and the line where one is at fault.
use crate::train::metrics::EpochMetrics;
use crate::train::run_dir::RunDir;
use crate::util::csv_file::{read_csv, write_csv};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

pub const RESULTS_HEADER: [&str; 11] =
    ["label", "seed", "model", "params", "macs", "top1_err", "top5_err", "epochs", "images_per_s", "wall_s", "status"];

/// A run directory: its label is the directory name.
#[derive(Clone, Debug)]
pub struct RunHistory {
    pub label: String,
    /// The run's model name, when its folder has a run file.
    pub model: Option<String>,
    pub epochs: Vec<EpochMetrics>,
}

/// One row of results.csv: a finished (or failed) run of an experiment.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RunResult {
    pub label: String,
    pub seed: u64,
    pub model: String,
    pub params: Option<u64>,
    pub macs: Option<u64>,
    pub top1_err: Option<f64>,
    pub top5_err: Option<f64>,
    pub epochs: Option<u32>,
    pub images_per_s: Option<f64>,
    pub wall_s: Option<f64>,
    /// `ok` or `failed: reason`.
    pub status: String,
}

impl RunResult {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

pub fn read_results(path: &Path) -> Result<Vec<RunResult>> {
    read_csv(path, &RESULTS_HEADER, |row: &RunResult| {
        if row.is_ok() {
            if row.top1_err.is_none() || row.params.is_none() {
                bail!("status ok but top1_err or params is empty");
            }
        } else if !row.status.starts_with("failed") {
            bail!("status {:?}: expected `ok` or `failed: reason`", row.status);
        }
        Ok(())
    })
}

/// Reads a run folder: metrics.csv (required) and its run file's model name (optional).
pub fn read_run_dir(dir: &Path) -> Result<RunHistory> {
    let full = dir.canonicalize().with_context(|| format!("cannot open run folder {}", dir.display()))?;
    let label = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{}: a run folder needs a name (it is the run's label)", dir.display()))?;
    let run = RunDir::new(dir);
    Ok(RunHistory { label, epochs: run.read_metrics()?, model: run.model_name()? })
}

pub fn write_results(path: &Path, rows: &[RunResult]) -> Result<()> {
    write_csv(path, &RESULTS_HEADER, rows)
}

/// Every results.csv under `dir` (recursively), sorted so that output does not depend on the file system.
/// Symlinked folders are followed, each real folder once (a link back up the tree would otherwise be walked
/// without end), and each real results.csv is listed once: by its path under `dir` when it lies there, else
/// by the first path found to it, shallowest and in name order.
pub fn find_results_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let real = |path: &Path| path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let real_dir = real(dir);
    let mut visited = HashSet::from([real_dir.clone()]);
    let mut found: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    let mut pending = VecDeque::from([dir.to_path_buf()]);
    while let Some(current) = pending.pop_front() {
        let mut paths = std::fs::read_dir(&current)
            .and_then(|entries| entries.map(|entry| entry.map(|e| e.path())).collect::<std::io::Result<Vec<_>>>())
            .with_context(|| format!("cannot list {}", current.display()))?;
        paths.sort();
        for path in paths {
            if path.is_dir() {
                if visited.insert(real(&path)) {
                    pending.push_back(path);
                }
            } else if path.file_name().is_some_and(|n| n == "results.csv") {
                let file = real(&path);
                let shown = file.strip_prefix(&real_dir).map_or(path, |inside| dir.join(inside));
                found.entry(file).or_insert(shown);
            }
        }
    }
    let mut found: Vec<PathBuf> = found.into_values().collect();
    found.sort();
    Ok(found)
}
