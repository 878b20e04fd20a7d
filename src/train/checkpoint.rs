//! The checkpoint format, replaced atomically after every epoch. A checkpoint is a folder
//! (`weights.safetensors`: parameters and BN statistics under their PyTorch state_dict names;
//! `optimizer.safetensors`: momentum buffers by variable name; `state.yaml`: the epoch and the rest).
//! It is written whole into a staging folder, synced, and swapped in with renames, so a run killed at
//! any instant leaves either the previous checkpoint or the new one, never a mix. Where the three folders
//! are is the run folder's business ([`super::run_dir::RunDir::checkpoint_slots`]). Every checkpoint folder
//! holds a marker file (`sk-exp-checkpoint`), written first: sk-exp replaces and deletes only folders that
//! are provably its own ([`check_owned`]), never a folder of the same name that someone else put there.
use crate::util::fs::{sync_dir, sync_file, write_synced};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Tensors by variable name; the map keeps them sorted, which fixes the order of flat buffers and files.
pub type NamedTensors = BTreeMap<String, Tensor>;

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

impl TrainState {
    /// Notes (1-based) `epoch`'s evaluation top-1 error: the best epoch is the first to reach the lowest.
    pub fn note_eval(&mut self, epoch: usize, top1_err: Option<f64>) {
        if let Some(err) = top1_err.filter(|&e| self.best_eval_top1_err.is_none_or(|best| e < best)) {
            self.best_eval_top1_err = Some(err);
            self.best_epoch = Some(epoch);
        }
    }
}

#[derive(Debug)]
pub struct Checkpoint {
    pub weights: NamedTensors,
    pub optimizer: NamedTensors,
    pub state: TrainState,
}

/// The three folders a checkpoint lives in: the current one, the staging one a new checkpoint is
/// written into, and the previous one, kept while the new one is swapped in.
pub struct Slots {
    pub current: PathBuf,
    pub staging: PathBuf,
    pub previous: PathBuf,
}

const WEIGHTS: &str = "weights.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.yaml";
/// The marker that says sk-exp wrote the folder holding it.
const MARKER: &str = "sk-exp-checkpoint";
const MARKER_TEXT: &str =
    "This folder is a checkpoint written by sk-exp, which replaces and deletes it as training goes on.\n";

/// Fails unless sk-exp may replace or delete `dir`: it is missing, empty, holds the marker, or (written before
/// the marker existed) holds exactly a checkpoint's files with a readable state.
pub fn check_owned(dir: &Path) -> Result<()> {
    if !dir.exists() || dir.join(MARKER).is_file() {
        return Ok(());
    }
    let names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("listing {}", dir.display()))?,
        Err(_) => vec![String::new()],
    };
    let earlier_checkpoint = !names.is_empty()
        && names.iter().all(|n| [WEIGHTS, OPTIMIZER, STATE].contains(&n.as_str()))
        && fs::read_to_string(dir.join(STATE)).is_ok_and(|t| yaml_serde::from_str::<TrainState>(&t).is_ok());
    if names.is_empty() || earlier_checkpoint {
        return Ok(());
    }
    anyhow::bail!(
        "{}: not a checkpoint folder written by sk-exp (it has no {MARKER} file), and training would replace it; move it out of the run folder or choose another output directory",
        dir.display()
    )
}

/// Fails unless sk-exp may replace or delete every one of the three folders (see [`check_owned`]).
pub fn check_slots(slots: &Slots) -> Result<()> {
    [&slots.current, &slots.staging, &slots.previous].into_iter().try_for_each(|dir| check_owned(dir))
}

/// The weights file inside a checkpoint folder.
pub fn weights_file(checkpoint_dir: &Path) -> PathBuf {
    checkpoint_dir.join(WEIGHTS)
}

/// Writes `checkpoint` into `slots.current`, replacing the previous one atomically. Tensors must be on the CPU.
pub fn save(slots: &Slots, checkpoint: &Checkpoint) -> Result<()> {
    let Slots { current, staging, previous } = slots;
    check_slots(slots)?;
    if staging.exists() {
        fs::remove_dir_all(staging).with_context(|| format!("removing the stale {}", staging.display()))?;
    }
    fs::create_dir_all(staging).with_context(|| format!("creating {}", staging.display()))?;
    // The marker first: a staging folder left by a crash is empty or provably ours.
    write_synced(&staging.join(MARKER), MARKER_TEXT.as_bytes())?;
    for (file, tensors) in [(WEIGHTS, &checkpoint.weights), (OPTIMIZER, &checkpoint.optimizer)] {
        let path = staging.join(file);
        let list: Vec<(&String, &Tensor)> = tensors.iter().collect();
        Tensor::write_safetensors(&list, &path).with_context(|| format!("writing {}", path.display()))?;
        sync_file(&path)?;
    }
    write_synced(&staging.join(STATE), yaml_serde::to_string(&checkpoint.state)?.as_bytes())?;
    sync_dir(staging)?;
    if current.exists() {
        if previous.exists() {
            fs::remove_dir_all(previous).with_context(|| format!("removing {}", previous.display()))?;
        }
        fs::rename(current, previous).with_context(|| format!("moving {} aside", current.display()))?;
    }
    fs::rename(staging, current).with_context(|| format!("moving the new checkpoint to {}", current.display()))?;
    if let Some(parent) = current.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    if previous.exists() {
        fs::remove_dir_all(previous).with_context(|| format!("removing {}", previous.display()))?;
    }
    Ok(())
}

/// Writes checkpoints on a thread of their own, so that training goes on while one is written. At most
/// one write is in flight: handing over the next waits for the previous. A write's error is returned by
/// the next call ([`Writer::write`] or [`Writer::finish`]), never dropped; a run must call `finish` before
/// it reports success, so that its last checkpoint is on disk.
#[derive(Default)]
pub struct Writer {
    in_flight: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Writer {
    /// Starts writing `checkpoint` into `slots` (after the previous write has ended: its error is this call's).
    pub fn write(&mut self, slots: Slots, checkpoint: Checkpoint) -> Result<()> {
        self.finish()?;
        let thread = std::thread::Builder::new().name("checkpoint writer".into());
        let handle =
            thread.spawn(move || save(&slots, &checkpoint)).context("starting the checkpoint writer thread")?;
        self.in_flight = Some(handle);
        Ok(())
    }

    /// Waits for the write in flight, if any, and returns its outcome.
    pub fn finish(&mut self) -> Result<()> {
        match self.in_flight.take() {
            Some(handle) => handle.join().map_err(|_| anyhow::anyhow!("the checkpoint writer thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    /// A run that ends by an error still waits for its checkpoint (the error may name it as the last good
    /// one); the write's own error, with nobody left to return it to, is printed.
    fn drop(&mut self) {
        if let Err(err) = self.finish() {
            eprintln!("error: writing the checkpoint: {err:#}");
        }
    }
}

/// The last complete checkpoint, if there is one. A run killed between the two renames of [`save`] has
/// only the previous folder, which is then the last complete one.
pub fn load(slots: &Slots) -> Result<Option<Checkpoint>> {
    let dir = [&slots.current, &slots.previous].into_iter().find(|d| d.join(STATE).exists());
    let Some(dir) = dir else { return Ok(None) };
    let state_path = dir.join(STATE);
    let text = fs::read_to_string(&state_path).with_context(|| format!("reading {}", state_path.display()))?;
    let state =
        yaml_serde::from_str(&text).with_context(|| format!("{}: not a checkpoint state", state_path.display()))?;
    let read = |file: &str| -> Result<NamedTensors> {
        let path = dir.join(file);
        let tensors = Tensor::read_safetensors(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(tensors.into_iter().collect())
    };
    Ok(Some(Checkpoint { weights: read(WEIGHTS)?, optimizer: read(OPTIMIZER)?, state }))
}

/// The tensor called `name` in a checkpoint's list.
pub fn find<'a>(tensors: &'a NamedTensors, name: &str, what: &str) -> Result<&'a Tensor> {
    tensors.get(name).with_context(|| format!("{what}: no tensor named {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_epoch_is_the_first_to_reach_the_lowest_error() {
        let mut state = TrainState { epoch: 0, seed: 0, step: 0, best_eval_top1_err: None, best_epoch: None };
        for (epoch, err) in [(1, None), (2, Some(40.0)), (3, Some(30.0)), (4, None), (5, Some(30.0)), (6, Some(35.0))] {
            state.note_eval(epoch, err);
        }
        assert_eq!((state.best_eval_top1_err, state.best_epoch), (Some(30.0), Some(3)));
    }

    fn slots(root: &Path) -> Slots {
        Slots { current: root.join("c"), staging: root.join("c.tmp"), previous: root.join("c.old") }
    }

    fn checkpoint(epoch: usize) -> Checkpoint {
        let weights = NamedTensors::from([("w".to_string(), Tensor::from_slice(&[epoch as f32, 2.0]))]);
        let state = TrainState { epoch, seed: 1, step: 0, best_eval_top1_err: None, best_epoch: None };
        Checkpoint { weights, optimizer: NamedTensors::new(), state }
    }

    #[test]
    fn the_writer_puts_the_last_checkpoint_on_disk_and_returns_a_failed_write() {
        let root = std::env::temp_dir().join(format!("sk-exp-writer-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let mut writer = Writer::default();
        writer.write(slots(&root), checkpoint(1)).unwrap();
        writer.write(slots(&root), checkpoint(2)).unwrap();
        writer.finish().unwrap();
        assert_eq!(load(&slots(&root)).unwrap().unwrap().state.epoch, 2);
        // A staging path under a file cannot be created: the error comes back from the next call.
        fs::write(root.join("file"), b"").unwrap();
        let bad = Slots { staging: root.join("file").join("tmp"), ..slots(&root) };
        writer.write(bad, checkpoint(3)).unwrap();
        let err = writer.write(slots(&root), checkpoint(4)).unwrap_err().to_string();
        assert!(err.contains("creating") && err.contains("tmp"), "{err}");
        // The failed write left the last good checkpoint in place, and nothing more is in flight.
        writer.finish().unwrap();
        assert_eq!(load(&slots(&root)).unwrap().unwrap().state.epoch, 2);
        fs::remove_dir_all(&root).unwrap();
    }
}
