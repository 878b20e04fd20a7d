//! Helpers shared by the tests that compare with PyTorch (the venv's Python runs the reference scripts).
#![allow(dead_code)]
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn python() -> String {
    std::env::var("SK_EXP_PYTHON").unwrap_or_else(|_| {
        panic!("SK_EXP_PYTHON is not set: run the tests through scripts/test.sh, which sets up the PyTorch venv")
    })
}

/// Runs a script of this repository (path relative to its root) with the venv's Python; fails the test with
/// the script's stderr if it fails, and returns what it printed.
pub fn run_python<S: AsRef<OsStr>>(script: &str, args: impl IntoIterator<Item = S>) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let out = Command::new(python())
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()));
    assert!(out.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh, empty folder `<cargo's test tmp>/<relative>`.
pub fn fresh_dir(relative: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(relative);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the reference script for `reference` into a fresh directory and returns it.
pub fn reference_run(reference: &str, seed: u64) -> PathBuf {
    reference_run_with(reference, seed, "oracle", &[])
}

/// As [`reference_run`], into `<target tmp>/<folder>/<reference>`, with more arguments for the script.
pub fn reference_run_with(reference: &str, seed: u64, folder: &str, extra: &[&str]) -> PathBuf {
    let dir = fresh_dir(&format!("{folder}/{reference}"));
    let seed = seed.to_string();
    let mut args = vec![reference, dir.to_str().unwrap(), "--seed", &seed, "--size", "64", "--batch", "2"];
    args.extend_from_slice(extra);
    run_python("scripts/reference_models.py", args);
    dir
}

/// The reference's state_dict keys and shapes (num_batches_tracked left out).
pub fn reference_shapes(reference: &str) -> std::collections::BTreeMap<String, Vec<i64>> {
    let dir = fresh_dir(&format!("shapes/{reference}"));
    run_python("scripts/reference_models.py", [reference, dir.to_str().unwrap(), "--shapes-only"]);
    let text = std::fs::read_to_string(dir.join("shapes.txt")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    text.lines()
        .map(|line| {
            let (key, dims) = line.split_once(' ').unwrap();
            (key.to_string(), dims.split(',').filter(|d| !d.is_empty()).map(|d| d.parse().unwrap()).collect())
        })
        .collect()
}
