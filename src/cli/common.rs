//! Flag values several subcommands share: a model with `--set` changes, and a `--data` source.
use anyhow::{anyhow, bail, Context, Result};
use sk_exp::data::{CifarLabel, CifarSpec, DataSpec, FolderSpec};
use sk_exp::models::{registry, ModelSpec};
use sk_exp::overrides;
use sk_exp::train::config::RunConfig;
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

/// A training run's config: the experiment runner's config.yaml, else the run.yaml `sk-exp train` writes.
pub fn run_config(run_dir: &Path) -> Result<RunConfig> {
    let path = ["config.yaml", "run.yaml"].iter().map(|f| run_dir.join(f)).find(|p| p.is_file());
    let Some(path) = path else {
        bail!("run folder {}: holds neither config.yaml nor run.yaml (not a training run folder?)", run_dir.display());
    };
    RunConfig::from_file(&path)
}

/// The data set a `--data` value names: `synthetic` (the built-in set), `cifar:ROOT`, `folder:ROOT`, a
/// YAML file holding a `data:` section's fields, or a folder (image folders, told apart by a `val/` inside,
/// else CIFAR). Image folders get the evaluation `crop` and `resize` (default crop / 0.875).
pub fn data_spec(source: &str, crop: usize, resize: Option<usize>) -> Result<DataSpec> {
    let folder = |root: &Path| {
        DataSpec::Folder(FolderSpec {
            root: root.to_path_buf(),
            crop,
            eval_crop: crop,
            eval_resize: resize,
            skip_bad_images: false,
        })
    };
    let cifar = |root: &Path| DataSpec::Cifar(CifarSpec { root: root.to_path_buf(), label: CifarLabel::Fine });
    if source == "synthetic" {
        return Ok(DataSpec::default());
    }
    if let Some(root) = source.strip_prefix("cifar:") {
        return Ok(cifar(Path::new(root)));
    }
    if let Some(root) = source.strip_prefix("folder:") {
        return Ok(folder(Path::new(root)));
    }
    let path = Path::new(source);
    if path.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return yaml_serde::from_str(&text).map_err(|e| anyhow!("{}: not a data section: {e}", path.display()));
    }
    if !path.is_dir() {
        bail!("--data {source}: expected synthetic, cifar:ROOT, folder:ROOT, a data folder or a .yaml file");
    }
    Ok(if path.join("val").is_dir() { folder(path) } else { cifar(path) })
}
