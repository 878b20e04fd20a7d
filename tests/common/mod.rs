//! Helpers shared by the tests that compare with PyTorch references (scripts/reference_models.py).
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn python() -> String {
    std::env::var("SK_EXP_PYTHON").unwrap_or_else(|_| {
        panic!("SK_EXP_PYTHON is not set: run the tests through scripts/test.sh, which sets up the PyTorch venv")
    })
}

/// Runs the reference script for `reference` into a fresh directory and returns it.
pub fn reference_run(reference: &str, seed: u64) -> PathBuf {
    reference_run_with(reference, seed, "oracle", &[])
}

/// As [`reference_run`], into `<target tmp>/<folder>/<reference>`, with more arguments for the script.
pub fn reference_run_with(reference: &str, seed: u64, folder: &str, extra: &[&str]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(folder).join(reference);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference_models.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(reference)
        .arg(&dir)
        .args(["--seed", &seed.to_string(), "--size", "64", "--batch", "2"])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()));
    assert!(out.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
    dir
}

/// The reference's state_dict keys and shapes (num_batches_tracked left out).
pub fn reference_shapes(reference: &str) -> std::collections::BTreeMap<String, Vec<i64>> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shapes").join(reference);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference_models.py");
    let out = Command::new(python()).arg(&script).arg(reference).arg(&dir).arg("--shapes-only").output().unwrap();
    assert!(out.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(dir.join("shapes.txt")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    text.lines()
        .map(|line| {
            let (key, dims) = line.split_once(' ').unwrap();
            (key.to_string(), dims.split(',').filter(|d| !d.is_empty()).map(|d| d.parse().unwrap()).collect())
        })
        .collect()
}
