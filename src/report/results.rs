//! results.csv (one row per finished or failed run of an experiment: its schema, reader and writer) and a
//! run folder's training history for the curves. Every error names the file, and the line where one is at fault.
use crate::data::DataSpec;
use crate::train::metrics::EpochMetrics;
use crate::train::run_dir::RunDir;
use crate::util::csv_file::{read_csv, write_csv};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

/// The columns every results.csv has; files written before the data set and the run's identity were
/// recorded have only these (the others then read as empty: see [`RunResult::data_set`]).
pub const RESULTS_HEADER: [&str; 11] =
    ["label", "seed", "model", "params", "macs", "top1_err", "top5_err", "epochs", "images_per_s", "wall_s", "status"];

/// The columns written today: [`RESULTS_HEADER`] and the run folder, its identity, where a reused run was
/// trained, and its data set.
pub const RESULTS_COLUMNS: [&str; 17] = [
    "label",
    "seed",
    "model",
    "params",
    "macs",
    "top1_err",
    "top5_err",
    "epochs",
    "images_per_s",
    "wall_s",
    "status",
    "run",
    "config_id",
    "reused_from",
    "data_kind",
    "data_name",
    "data_crop",
];

/// What a run trained and evaluated on, as results.csv records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSet {
    /// `synthetic`, `cifar10`, `cifar100`, `cifar100_coarse`, `cifar` (class count not known: a run that
    /// failed before opening its data) or `folder`.
    pub kind: String,
    /// The folder's or CIFAR files' path as the run file gives it; `synthetic` for the built-in set.
    pub name: String,
    /// The evaluation images' side: an image folder's centre crop, 32 for CIFAR, the synthetic size.
    pub crop: Option<u32>,
}

/// The side of the paper's ImageNet evaluation crop (single 224x224 crop, Table S2 and Figure 2).
pub const PAPER_CROP: u32 = 224;

impl DataSet {
    /// The data set of a run on `spec` whose model has `classes` outputs (bound to the data; None before).
    pub fn of(spec: &DataSpec, classes: Option<i64>) -> DataSet {
        let (kind, name, crop) = match spec {
            DataSpec::Synthetic(s) => ("synthetic".into(), "synthetic".into(), s.image_size),
            DataSpec::Cifar(c) => {
                let kind = match classes {
                    Some(10) => "cifar10",
                    Some(100) => "cifar100",
                    Some(20) => "cifar100_coarse",
                    _ => "cifar",
                };
                (kind.into(), c.root.display().to_string(), 32)
            }
            DataSpec::Folder(f) => ("folder".into(), f.root.display().to_string(), f.eval_crop),
        };
        DataSet { kind, name, crop: u32::try_from(crop).ok() }
    }

    /// An image folder at the paper's crop: what Figure 2's ImageNet axes may show.
    pub fn is_imagenet_like(&self) -> bool {
        self.kind == "folder" && self.crop == Some(PAPER_CROP)
    }
}

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
    /// The run folder's name in the experiment folder (empty in files written before it was recorded).
    #[serde(default)]
    pub run: String,
    /// The run's identity ([`crate::train::run::ResolvedRun::config_id`]); empty in older files.
    #[serde(default)]
    pub config_id: String,
    /// `EXPERIMENT/RUN` when this run was not trained here but reused from there; empty when trained here.
    #[serde(default)]
    pub reused_from: String,
    /// The data set ([`DataSet`]); empty in files written before it was recorded.
    #[serde(default)]
    pub data_kind: String,
    #[serde(default)]
    pub data_name: String,
    #[serde(default)]
    pub data_crop: Option<u32>,
}

impl RunResult {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }

    /// The recorded data set; None in results.csv files written before sk-exp recorded it.
    pub fn data_set(&self) -> Option<DataSet> {
        (!self.data_kind.is_empty()).then(|| DataSet {
            kind: self.data_kind.clone(),
            name: self.data_name.clone(),
            crop: self.data_crop,
        })
    }

    /// Records `data` in the row's data columns.
    pub fn set_data_set(&mut self, data: DataSet) {
        (self.data_kind, self.data_name, self.data_crop) = (data.kind, data.name, data.crop);
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

/// The row's data set: its own columns, else (a results.csv written before they existed) the run file in
/// its run folder inside `experiment` (the folder holding the results.csv); None when neither tells.
pub fn data_set_of(row: &RunResult, experiment: &Path) -> Option<DataSet> {
    row.data_set().or_else(|| {
        let folder = if row.run.is_empty() { format!("{}_s{}", row.label, row.seed) } else { row.run.clone() };
        let run = RunDir::new(experiment.join(folder)).read_run().ok()?;
        Some(DataSet::of(&run.data, Some(run.model.spec.num_classes())))
    })
}

pub fn write_results(path: &Path, rows: &[RunResult]) -> Result<()> {
    write_csv(path, &RESULTS_COLUMNS, rows)
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
