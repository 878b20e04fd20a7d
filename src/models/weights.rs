//! Model weights as safetensors files keyed by PyTorch state_dict names, and `torch.save` state_dicts
//! ([`super::pth`]) read alike. Our VarStore names equal torchvision's/timm's, so weights move between
//! sk-exp and PyTorch without a renaming table.
use anyhow::{anyhow, bail, Result};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use tch::{nn, Device, TchError, Tensor};

/// Lists longer than this are cut in error messages, with a count of the rest.
const LISTED: usize = 8;

/// Every named tensor of a safetensors file, in the file's dtype.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    Tensor::read_safetensors(path).map_err(|e| {
        // tch's safetensors errors repeat the path; keep only the cause after ours.
        let cause = match e {
            TchError::SafeTensorError { err, .. } => err.to_string(),
            other => other.to_string(),
        };
        anyhow!("weights file {}: cannot read it as safetensors: {cause}", path.display())
    })
}

/// Every named tensor of a weights file in either format, told apart by its first bytes: a `torch.save`
/// file (`.pth`, `.pt`, `pytorch_model.bin`: [`super::pth`]) or else safetensors. Where a `torch.save` file's
/// state_dict had to be found (a checkpoint's entry, DDP's `module.` prefix), one note line each on stderr.
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut head = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        // Unreadable files fall through to the safetensors reader, whose error names the cause.
        let _ = std::io::Read::take(file, 16).read_to_end(&mut head);
    }
    if !super::pth::is_torch_save(&head) {
        return read_tensors(path);
    }
    let state_dict = super::pth::read(path)?;
    for note in &state_dict.notes {
        eprintln!("note: weights file {}: {note}", path.display());
    }
    Ok(state_dict.tensors)
}

/// [`load_tensors`] from a weights file in either format ([`read_state_dict`]).
pub fn load(vs: &nn::VarStore, path: &Path) -> Result<()> {
    load_tensors(vs, read_state_dict(path)?, path)
}

/// [`load_tensors`] from a safetensors file.
pub fn load_safetensors(vs: &nn::VarStore, path: &Path) -> Result<()> {
    load_tensors(vs, read_tensors(path)?, path)
}

/// Copies every variable of `vs` (parameters and BN running statistics) from the `tensors` of a PyTorch
/// state_dict read from the weights file `path`, converting to each variable's dtype and device. They must
/// be exactly the store's variables with the same shapes (`num_batches_tracked` counters are ignored);
/// otherwise one error lists every missing, unexpected and mis-shaped tensor, and no variable is changed.
pub fn load_tensors(vs: &nn::VarStore, tensors: Vec<(String, Tensor)>, path: &Path) -> Result<()> {
    let mut file: HashMap<String, Tensor> = tensors.into_iter().filter(|(name, _)| !is_batch_counter(name)).collect();
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();

    let missing: Vec<String> = vars.keys().filter(|name| !file.contains_key(*name)).cloned().collect();
    let mut unexpected: Vec<String> = file.keys().filter(|name| !vars.contains_key(*name)).cloned().collect();
    unexpected.sort();
    let mut mismatched = Vec::new();
    for (name, var) in &vars {
        let Some(src) = file.get(name) else { continue };
        if src.size() != var.size() {
            mismatched.push(format!("{name} (file {:?}, model {:?})", src.size(), var.size()));
        } else if !src.is_floating_point() {
            mismatched.push(format!("{name} (file dtype {:?}, expected floating point)", src.kind()));
        }
    }
    if !(missing.is_empty() && unexpected.is_empty() && mismatched.is_empty()) {
        let mut problems = Vec::new();
        for (what, list) in [("missing", &missing), ("unexpected", &unexpected), ("mismatched", &mismatched)] {
            if !list.is_empty() {
                problems.push(format!("{} {what}: {}", list.len(), abbreviate(list)));
            }
        }
        bail!("weights file {} does not match the model: {}", path.display(), problems.join("; "));
    }

    tch::no_grad(|| {
        for (name, mut var) in vars {
            let src = file.remove(&name).expect("checked above");
            var.f_copy_(&src).map_err(|e| anyhow!("weights file {}: copying {name}: {e}", path.display()))?;
        }
        Ok(())
    })
}

/// Writes every variable of `vs` under its PyTorch name. The file appears whole or not at all: it is
/// written beside the target, then renamed over it.
pub fn save_safetensors(vs: &nn::VarStore, path: &Path) -> Result<()> {
    let fail = |e: TchError| anyhow!("writing weights file {}: {e}", path.display());
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let mut tensors = Vec::with_capacity(vars.len());
    for (name, var) in vars {
        tensors.push((name, var.detach().f_to_device(Device::Cpu).and_then(|t| t.f_contiguous()).map_err(fail)?));
    }
    // A sibling of `path` (same directory, so the rename cannot cross file systems).
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("weights file {}: expected a file path", path.display()))?
        .to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = Tensor::write_safetensors(&tensors, &tmp).map_err(fail).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| anyhow!("writing weights file {}: {e}", path.display()))
    });
    if written.is_err() {
        // Best effort: the write already failed, and a stale temp file is harmless.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn is_batch_counter(name: &str) -> bool {
    name == "num_batches_tracked" || name.ends_with(".num_batches_tracked")
}

fn abbreviate(items: &[String]) -> String {
    let shown = items.iter().take(LISTED).cloned().collect::<Vec<_>>().join(", ");
    match items.len().saturating_sub(LISTED) {
        0 => shown,
        rest => format!("{shown}, ... and {rest} more"),
    }
}
