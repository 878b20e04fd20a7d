//! An experiment's folder: results.csv (one row per finished run, rewritten atomically under a lock), the
//! run folders, and the summary files.
use crate::report::results::{read_results, write_results, RunResult};
use crate::train::run_dir::RunDir;
use crate::util::fs::{try_lock, FileLock};
use anyhow::{Context, Result};
use std::path::PathBuf;

pub struct ExperimentDir {
    pub root: PathBuf,
}

impl ExperimentDir {
    pub fn create(root: PathBuf) -> Result<ExperimentDir> {
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        Ok(ExperimentDir { root })
    }

    pub fn results_path(&self) -> PathBuf {
        self.root.join("results.csv")
    }

    pub fn run_dir(&self, run_id: &str) -> RunDir {
        RunDir::new(self.root.join(run_id))
    }

    pub fn summary_csv(&self) -> PathBuf {
        self.root.join("summary.csv")
    }

    pub fn summary_md(&self) -> PathBuf {
        self.root.join("summary.md")
    }

    /// The bar chart's path without extension (.png and .svg are written).
    pub fn summary_plot(&self) -> PathBuf {
        self.root.join("summary")
    }

    pub fn results(&self) -> Result<Vec<RunResult>> {
        let path = self.results_path();
        if path.exists() {
            read_results(&path)
        } else {
            Ok(Vec::new())
        }
    }

    /// The recorded result of (label, seed), if the run finished or failed before.
    pub fn recorded(&self, label: &str, seed: u64) -> Result<Option<RunResult>> {
        Ok(self.results()?.into_iter().find(|r| r.label == label && r.seed == seed))
    }

    /// Waits for the experiment's lock (results.lock), held by whoever writes results.csv or the summary
    /// files, and holds it until dropped.
    pub fn lock(&self) -> Result<FileLock> {
        loop {
            if let Some(lock) = try_lock(&self.root.join("results.lock"))? {
                return Ok(lock);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Records `row`, replacing an earlier row of the same (label, seed); the file is rewritten whole and
    /// renamed into place, under the experiment's lock, so concurrent runners never lose a row.
    pub fn record(&self, row: &RunResult) -> Result<()> {
        let _guard = self.lock()?;
        let mut rows = self.results()?;
        rows.retain(|r| !(r.label == row.label && r.seed == row.seed));
        rows.push(row.clone());
        write_results(&self.results_path(), &rows)
    }
}
