//! Checkpoints, one per run directory, replaced atomically after every epoch. A checkpoint is a folder
//! (`weights.safetensors`: parameters and BN statistics under their PyTorch state_dict names;
//! `optimizer.safetensors`: momentum buffers by variable name; `state.yaml`: the epoch and the rest).
//! It is written whole into `checkpoint.tmp`, synced, and swapped in with renames, so a run killed at
//! any instant leaves either the previous checkpoint or the new one, never a mix.
use crate::util::fs::{sync_dir, sync_file, write_synced};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use tch::Tensor;

pub type NamedTensors = Vec<(String, Tensor)>;

/// Everything about a run's progress that is not a tensor. The random state needs no bytes of its own:
/// every draw (shuffling, augmentation, torch's generator) is seeded from (seed, epoch, index).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// Epochs completed; training resumes at this (0-based) epoch.
    pub epoch: usize,
    pub seed: u64,
    /// Optimizer steps taken so far.
    pub step: u64,
    /// The lowest evaluation top-1 error (%) seen so far and the (1-based) epoch that reached it.
    pub best_eval_top1_err: Option<f64>,
    pub best_epoch: Option<usize>,
}

#[derive(Debug)]
pub struct Checkpoint {
    pub weights: NamedTensors,
    pub optimizer: NamedTensors,
    pub state: TrainState,
}

const DIR: &str = "checkpoint";
const TMP: &str = "checkpoint.tmp";
const OLD: &str = "checkpoint.old";
const WEIGHTS: &str = "weights.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.yaml";

/// The folder of the run's current checkpoint (after [`save`], `run_dir/checkpoint`).
pub fn dir(run_dir: &Path) -> PathBuf {
    run_dir.join(DIR)
}

/// Writes `checkpoint` into `run_dir`, replacing the previous one atomically. Tensors must be on the CPU.
pub fn save(run_dir: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let tmp = run_dir.join(TMP);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing the stale {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    for (file, tensors) in [(WEIGHTS, &checkpoint.weights), (OPTIMIZER, &checkpoint.optimizer)] {
        let path = tmp.join(file);
        Tensor::write_safetensors(tensors, &path).with_context(|| format!("writing {}", path.display()))?;
        sync_file(&path)?;
    }
    write_synced(&tmp.join(STATE), yaml_serde::to_string(&checkpoint.state)?.as_bytes())?;
    sync_dir(&tmp)?;
    let (current, old) = (run_dir.join(DIR), run_dir.join(OLD));
    if current.exists() {
        if old.exists() {
            fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        }
        fs::rename(&current, &old).with_context(|| format!("moving {} aside", current.display()))?;
    }
    fs::rename(&tmp, &current).with_context(|| format!("moving the new checkpoint to {}", current.display()))?;
    sync_dir(run_dir)?;
    if old.exists() {
        fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

/// The run's last complete checkpoint (tensors sorted by name), if it has one. A run killed between the two renames of [`save`]
/// has only `checkpoint.old`, which is then the last complete one.
pub fn load(run_dir: &Path) -> Result<Option<Checkpoint>> {
    let dir = [DIR, OLD].iter().map(|d| run_dir.join(d)).find(|d| d.join(STATE).exists());
    let Some(dir) = dir else { return Ok(None) };
    let state_path = dir.join(STATE);
    let text = fs::read_to_string(&state_path).with_context(|| format!("reading {}", state_path.display()))?;
    let state =
        yaml_serde::from_str(&text).with_context(|| format!("{}: not a checkpoint state", state_path.display()))?;
    let read = |file: &str| -> Result<NamedTensors> {
        let path = dir.join(file);
        let mut tensors = Tensor::read_safetensors(&path).with_context(|| format!("reading {}", path.display()))?;
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(tensors)
    };
    Ok(Some(Checkpoint { weights: read(WEIGHTS)?, optimizer: read(OPTIMIZER)?, state }))
}

/// The tensor called `name` in a checkpoint's list.
pub fn find<'a>(tensors: &'a NamedTensors, name: &str, what: &str) -> Result<&'a Tensor> {
    match tensors.iter().find(|(n, _)| n == name) {
        Some((_, t)) => Ok(t),
        None => bail!("{what}: no tensor named {name}"),
    }
}
