//! An experiment's folder: results.csv (one row per finished run, rewritten atomically under a lock),
//! per-run locks so that two runners never train the same run, and the summary files.
use crate::report::results::{read_results, RunResult, RESULTS_HEADER};
use crate::util::fs::write_atomic;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

pub struct ExperimentDir {
    pub root: PathBuf,
}

/// Holds a run's lock until dropped.
pub struct RunLock {
    _file: File,
}

impl ExperimentDir {
    pub fn create(root: PathBuf) -> Result<ExperimentDir> {
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        Ok(ExperimentDir { root })
    }

    pub fn results_path(&self) -> PathBuf {
        self.root.join("results.csv")
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.root.join(run_id)
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

    /// Takes the run's lock, or None when another runner holds it.
    pub fn lock_run(&self, run_id: &str) -> Result<Option<RunLock>> {
        let dir = self.run_dir(run_id);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        lock_file(&dir.join("run.lock"))
    }

    /// Records `row`, replacing an earlier row of the same (label, seed); the file is rewritten whole and
    /// renamed into place, under the experiment's lock, so concurrent runners never lose a row.
    pub fn record(&self, row: &RunResult) -> Result<()> {
        let _guard = loop {
            if let Some(lock) = lock_file(&self.root.join("results.lock"))? {
                break lock;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut rows = self.results()?;
        rows.retain(|r| !(r.label == row.label && r.seed == row.seed));
        rows.push(row.clone());
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        writer.write_record(RESULTS_HEADER)?;
        for r in &rows {
            writer.serialize(r)?;
        }
        write_atomic(&self.results_path(), &writer.into_inner().context("serialising results.csv")?)
    }
}

fn lock_file(path: &Path) -> Result<Option<RunLock>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening the lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(RunLock { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}
