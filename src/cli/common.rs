//! Flag values several subcommands share: a model with `--set` changes, and a training run folder.
use anyhow::{anyhow, Result};
use sk_exp::models::{registry, ModelSpec};
use sk_exp::overrides;
use sk_exp::train::run::ResolvedRun;
use sk_exp::train::run_dir::RunDir;
use std::path::Path;

/// `spec` with `key=value` assignments (dotted keys, YAML values) applied.
pub fn with_assignments(spec: ModelSpec, assignments: &[String]) -> Result<ModelSpec> {
    if assignments.is_empty() {
        return Ok(spec);
    }
    let mut tree = yaml_serde::to_value(&spec)?;
    for assignment in assignments {
        let (key, value) = overrides::parse_assignment(assignment)?;
        overrides::set_dotted(&mut tree, &key, value)?;
    }
    yaml_serde::from_value(tree).map_err(|e| anyhow!("model spec with --set: {e}"))
}

/// A registered model's spec with `key=value` assignments applied.
pub fn resolve_spec(name: &str, assignments: &[String]) -> Result<ModelSpec> {
    with_assignments(registry::resolve(name, None)?, assignments)
}

/// The run a training run folder holds (from `sk-exp train` or `sk-exp run`), its class count bound.
pub fn read_run(run_dir: &Path) -> Result<ResolvedRun> {
    RunDir::new(run_dir).read_run()
}

/// The side of image folders' evaluation centre crop when no flag sets it.
pub const DEFAULT_CROP: usize = 224;
