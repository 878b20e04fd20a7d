//! A run folder, and the only code that knows its layout:
//!
//! ```text
//! run.yaml          the resolved run (model spec with its class count, data, recipe, seed, ...)
//! metrics.csv       one row per epoch
//! checkpoint/       the last complete checkpoint (checkpoint.tmp/ and checkpoint.old/ while one is swapped in)
//! log.txt           the experiment runner's log of starts, ends and failures
//! run.lock          held by the runner training it
//! attention/        the attention analysis
//! events.out.tfevents.*.sk-exp   TensorBoard's event files, one per training session (see super::tensorboard)
//! ```
use super::checkpoint::{self, Checkpoint, Slots};
use super::metrics::{read_metrics, EpochMetrics, METRICS_HEADER};
use super::run::ResolvedRun;
use super::tensorboard;
use crate::util::csv_file::{csv_line, csv_text};
use crate::util::fs::{append_line, try_lock, write_atomic, FileLock};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

const RUN_FILE: &str = "run.yaml";
const METRICS_FILE: &str = "metrics.csv";
const CHECKPOINT_DIR: &str = "checkpoint";
const CHECKPOINT_STAGING: &str = "checkpoint.tmp";
const CHECKPOINT_PREVIOUS: &str = "checkpoint.old";
const LOG_FILE: &str = "log.txt";
const LOCK_FILE: &str = "run.lock";
const ATTENTION_DIR: &str = "attention";

#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

/// What a training session continues from: the last checkpoint and the metrics of the epochs it covers.
pub struct Resumed {
    pub checkpoint: Option<Checkpoint>,
    pub history: Vec<EpochMetrics>,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }

    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("creating the run directory {}", self.root.display()))
    }

    pub fn run_file(&self) -> PathBuf {
        self.root.join(RUN_FILE)
    }

    pub fn metrics_file(&self) -> PathBuf {
        self.root.join(METRICS_FILE)
    }

    pub fn checkpoint_dir(&self) -> PathBuf {
        self.root.join(CHECKPOINT_DIR)
    }

    /// The weights of the last checkpoint.
    pub fn weights_file(&self) -> PathBuf {
        checkpoint::weights_file(&self.checkpoint_dir())
    }

    pub fn attention_dir(&self) -> PathBuf {
        self.root.join(ATTENTION_DIR)
    }

    /// Where TensorBoard's event files go: the run folder itself, so that `tensorboard --logdir` over an
    /// experiment shows each run under its folder's name.
    pub fn events_dir(&self) -> &Path {
        &self.root
    }

    pub fn log_file(&self) -> PathBuf {
        self.root.join(LOG_FILE)
    }

    /// The run this folder holds, as written when it started training.
    pub fn read_run(&self) -> Result<ResolvedRun> {
        let path = self.run_file();
        if !path.is_file() {
            bail!("run folder {}: holds no {RUN_FILE} (not a training run folder?)", self.root.display());
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        yaml_serde::from_str(&text)
            .with_context(|| format!("{}: not a run file written by this sk-exp", path.display()))
    }

    /// The model name of the run file, read leniently (files of other versions and tools have it too);
    /// None without a run file.
    pub fn model_name(&self) -> Result<Option<String>> {
        let path = self.run_file();
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let tree: yaml_serde::Value =
            yaml_serde::from_str(&text).with_context(|| format!("{}: not valid YAML", path.display()))?;
        Ok(tree.get("model").and_then(|m| m.get("name")).and_then(|n| n.as_str()).map(str::to_owned))
    }

    pub fn write_run(&self, run: &ResolvedRun) -> Result<()> {
        write_atomic(&self.run_file(), yaml_serde::to_string(run)?.as_bytes())
    }

    pub fn read_metrics(&self) -> Result<Vec<EpochMetrics>> {
        read_metrics(&self.metrics_file())
    }

    /// Appends one epoch's row to metrics.csv and syncs it.
    pub fn append_metrics(&self, row: &EpochMetrics) -> Result<()> {
        append_line(&self.metrics_file(), &csv_line(row)?)
    }

    pub fn checkpoint_slots(&self) -> Slots {
        Slots {
            current: self.checkpoint_dir(),
            staging: self.root.join(CHECKPOINT_STAGING),
            previous: self.root.join(CHECKPOINT_PREVIOUS),
        }
    }

    pub fn load_checkpoint(&self) -> Result<Option<Checkpoint>> {
        checkpoint::load(&self.checkpoint_slots())
    }

    pub fn append_log(&self, line: &str) -> Result<()> {
        append_line(&self.log_file(), line)
    }

    /// Takes the run's lock (creating the folder), or None when another process holds it.
    pub fn lock(&self) -> Result<Option<FileLock>> {
        self.create()?;
        try_lock(&self.lock_file())
    }

    pub fn lock_file(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    /// Opens the folder for training `run`: refuses a folder holding another run (or any run, unless
    /// `resume`) or checkpoint folders that sk-exp did not write (training replaces them), writes the run file, and keeps the metrics rows that the last checkpoint covers (rows of
    /// later epochs were written by a session that died before checkpointing them), and so the TensorBoard events.
    pub fn start_training(&self, run: &ResolvedRun, resume: bool, new_world_size: bool) -> Result<Resumed> {
        self.create()?;
        checkpoint::check_slots(&self.checkpoint_slots())?;
        let checkpoint = self.load_checkpoint()?;
        if let (false, Some(c)) = (resume, &checkpoint) {
            bail!(
                "{} already holds a run (checkpoint after epoch {}); resume it with --resume or choose another output directory",
                self.root.display(),
                c.state.epoch
            );
        }
        if resume && self.run_file().exists() {
            let saved = self.read_run()?;
            run.check_resumes(&saved, new_world_size).with_context(|| self.run_file().display().to_string())?;
        }
        self.write_run(run)?;
        if let Some(c) = checkpoint.as_ref().filter(|c| c.state.seed != run.seed) {
            bail!(
                "{}: the checkpoint was trained with seed {}, this run has seed {}",
                self.root.display(),
                c.state.seed,
                run.seed
            );
        }
        let done = checkpoint.as_ref().map_or(0, |c| c.state.epoch);
        let history = self.metrics_up_to(done)?;
        write_atomic(&self.metrics_file(), &csv_text(&METRICS_HEADER, &history)?)?;
        tensorboard::trim_after(self.events_dir(), checkpoint.as_ref().map_or(0, |c| c.state.step));
        Ok(Resumed { checkpoint, history })
    }

    /// The metrics rows of epochs 1..=`epoch`; lines of later epochs (one may be cut short) are left out
    /// before parsing.
    fn metrics_up_to(&self, epoch: usize) -> Result<Vec<EpochMetrics>> {
        let path = self.metrics_file();
        if epoch == 0 || !path.exists() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut lines = text.lines();
        let mut kept = format!("{}\n", lines.next().unwrap_or_default());
        for line in lines {
            let row_epoch: usize = line.split(',').next().and_then(|e| e.parse().ok()).unwrap_or(usize::MAX);
            if row_epoch <= epoch {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        csv::Reader::from_reader(kept.as_bytes())
            .deserialize()
            .collect::<Result<Vec<EpochMetrics>, _>>()
            .with_context(|| format!("{}: unreadable rows before epoch {}", path.display(), epoch + 1))
    }
}

/// The weights file `path` names: a safetensors file itself, or the one inside a run folder (its last
/// checkpoint), a checkpoint folder or an `sk-exp export` folder.
pub fn locate_weights(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        bail!("weights {}: no such file or folder", path.display());
    }
    let candidates = [
        checkpoint::weights_file(path),
        RunDir::new(path).weights_file(),
        path.join(crate::interop::export::WEIGHTS_FILE),
    ];
    match candidates.iter().find(|p| p.is_file()) {
        Some(file) => Ok(file.clone()),
        None => {
            let names: Vec<String> =
                candidates.iter().map(|p| p.strip_prefix(path).unwrap_or(p).display().to_string()).collect();
            bail!("weights folder {}: holds none of {}", path.display(), names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_rows_after_the_checkpoint_are_dropped_even_when_cut_short() {
        let root = std::env::temp_dir().join(format!("sk-exp-run-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = RunDir::new(&root);
        dir.create().unwrap();
        let header = super::super::metrics::METRICS_HEADER.join(",");
        let text = format!("{header}\n1,0.1,2,90,2.1,88,50,10,1\n2,0.1,1.5,80,1.6,79,40,10,1\n3,0.1,1.2,7");
        std::fs::write(dir.metrics_file(), text).unwrap();
        let kept = dir.metrics_up_to(2).unwrap();
        assert_eq!(kept.iter().map(|m| m.epoch).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((kept[1].train_loss, kept[1].eval_top1_err), (1.5, Some(79.0)));
        assert!(dir.metrics_up_to(0).unwrap().is_empty());
        std::fs::remove_dir_all(root).ok();
    }
}
