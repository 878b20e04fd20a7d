//! Helpers shared by the test binaries: the tiny SKNet they build and train, scratch folders, child
//! processes (sk-exp, and the venv's Python running the PyTorch references) that cannot hang a test.
#![allow(dead_code)]
use sk_exp::experiment::load::ExperimentOptions;
use sk_exp::models::{registry, ModelSpec};
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The registry model the tiny SKNet shrinks.
pub const TINY_BASE: &str = "sknet29";

/// The tiny SKNet, as dotted overrides of [`TINY_BASE`]: SKNet-29's structure (SK units with a 3x3 and a 1x1
/// path) shrunk to one narrow block per stage, fast to build, train, export and run. Classes and input size
/// stay SKNet-29's (10, 32x32) unless a test adds overrides of its own; the helpers below render it.
pub const TINY_SKNET: &[(&str, &str)] = &[
    ("stem_width", "8"),
    ("blocks", "[1, 1, 1]"),
    ("widths", "[8, 16, 32]"),
    ("outputs", "[16, 32, 32]"),
    ("groups", "4"),
    ("sk.groups", "4"),
    ("sk.reduction", "4"),
    ("sk.min_dim", "4"),
];

/// [`TINY_SKNET`] then `extra` (later keys win), as the mapping `model.overrides` holds.
pub fn tiny_yaml(extra: &[(&str, &str)]) -> yaml_serde::Value {
    let mut tree = yaml_serde::Value::Null;
    for (key, value) in TINY_SKNET.iter().chain(extra) {
        let value = yaml_serde::from_str(value).unwrap_or_else(|e| panic!("{key}={value}: {e}"));
        sk_exp::overrides::set_dotted(&mut tree, key, value).unwrap();
    }
    tree
}

/// [`tiny_yaml`] as flow-style YAML text (`{stem_width: 8, blocks: [1, 1, 1], ...}`), for YAML files the
/// tests write.
pub fn tiny_flow(extra: &[(&str, &str)]) -> String {
    flow(&tiny_yaml(extra))
}

/// Held by every test that seeds torch's process-wide generator and draws from it (building weights,
/// training in this process): a test binary's tests run in parallel threads, and a draw between another
/// test's seed and its draws would change both tests' numbers.
pub fn torch_rng() -> MutexGuard<'static, ()> {
    static TORCH_RNG: Mutex<()> = Mutex::new(());
    TORCH_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What `sk-exp run --results RESULTS` passes the runner with no other flags (quiet: no progress bars).
pub fn experiment_options(results: &Path) -> ExperimentOptions {
    ExperimentOptions {
        results_root: results.to_path_buf(),
        overrides: vec![],
        data_root: None,
        only: None,
        retry_failed: false,
        reuse: true,
        progress: false,
    }
}

/// An experiment file of the tiny SKNet on 16x16 synthetic images (4 classes, batch 16, no loader workers,
/// one thread), the one template every experiment test edits: `train_size` images (half as many to
/// evaluate) for `epochs`; `base_extra` goes into its `base:` section, `rest` (seeds, sweep, other
/// top-level keys) after it.
pub struct TinyExperiment<'a> {
    pub name: &'a str,
    pub train_size: usize,
    pub epochs: usize,
    pub base_extra: &'a str,
    pub rest: &'a str,
}

impl Default for TinyExperiment<'_> {
    fn default() -> Self {
        TinyExperiment { name: "tiny", train_size: 32, epochs: 1, base_extra: "", rest: "seeds: [0]\n" }
    }
}

impl TinyExperiment<'_> {
    pub fn yaml(&self) -> String {
        let TinyExperiment { name, train_size, epochs, base_extra, rest } = self;
        let overrides = tiny_flow(&[("input_size", "16")]);
        let eval_size = train_size / 2;
        format!(
            r#"
name: {name}
base:
  model:
    name: {TINY_BASE}
    overrides: {overrides}
  data: {{kind: synthetic, train_size: {train_size}, eval_size: {eval_size}, image_size: 16, classes: 4}}
  recipe: {{preset: cifar10, epochs: {epochs}, batch_size: 16}}
  workers: 0
  threads: 1
{base_extra}{rest}"#
        )
    }
}

/// [`TINY_SKNET`] then `extra` as `--set KEY=VALUE` arguments, each key after `prefix` (`""` for the
/// commands that take `--model`, `"model.overrides."` for `sk-exp train`).
pub fn tiny_set_args(prefix: &str, extra: &[(&str, &str)]) -> Vec<String> {
    TINY_SKNET.iter().chain(extra).flat_map(|(k, v)| ["--set".to_string(), format!("{prefix}{k}={v}")]).collect()
}

/// The model spec of [`TINY_SKNET`] then `extra`.
pub fn tiny_spec(extra: &[(&str, &str)]) -> ModelSpec {
    registry::resolve(TINY_BASE, Some(&tiny_yaml(extra))).unwrap()
}

/// A YAML value on one line, in flow style.
fn flow(value: &yaml_serde::Value) -> String {
    use yaml_serde::Value;
    match value {
        Value::Mapping(map) => {
            let entries: Vec<String> = map.iter().map(|(k, v)| format!("{}: {}", flow(k), flow(v))).collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Sequence(items) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
        scalar => yaml_serde::to_string(scalar).unwrap().trim_end().to_string(),
    }
}

pub fn python() -> String {
    std::env::var("SK_EXP_PYTHON").unwrap_or_else(|_| {
        panic!("SK_EXP_PYTHON is not set: run the tests through scripts/test.sh, which sets up the PyTorch venv")
    })
}

/// Runs a script of this repository (path relative to its root) with the venv's Python; fails the test with
/// the script's stderr if it fails, and returns what it printed.
pub fn run_python<S: AsRef<OsStr>>(script: &str, args: impl IntoIterator<Item = S>) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let out = output(Command::new(python()).arg(&script).args(args));
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

/// The longest a test waits for a child process (sk-exp or the venv's Python) before it kills it and fails:
/// far above what any of them takes on a slow, busy machine, so reaching it means the child hangs.
pub const CHILD_DEADLINE: Duration = Duration::from_secs(900);

/// A child process that is killed (SIGKILL) and reaped when dropped, so that a failing test leaves none behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `command` (stdin empty, stdout and stderr captured) and returns its output, as `Command::output`
/// does, but fails the test, killing the child, if it has not finished within [`CHILD_DEADLINE`].
pub fn output(command: &mut Command) -> Output {
    output_within(command, CHILD_DEADLINE)
}

/// Waits for `child` to end, failing the test (which kills it, see [`KillOnDrop`]) once `deadline` has passed.
pub fn wait_within(child: &mut KillOnDrop, deadline: Duration, what: &str) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < deadline, "{what} did not finish within {} s: killed", deadline.as_secs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// As [`output`], with another deadline.
pub fn output_within(command: &mut Command, deadline: Duration) -> Output {
    let what = format!("{command:?}");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut child = KillOnDrop(child);
    let stdout = drain(child.0.stdout.take().unwrap());
    let stderr = drain(child.0.stderr.take().unwrap());
    let status = wait_within(&mut child, deadline, &what);
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// The output of the `sk-exp` binary run with `args` (see [`output`]).
pub fn sk_exp<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Output {
    output(Command::new(env!("CARGO_BIN_EXE_sk-exp")).args(args))
}

/// Reads `pipe` to its end on a thread of its own, so that a child filling one pipe cannot block.
fn drain<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}
