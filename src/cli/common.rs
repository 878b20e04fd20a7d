//! Flag values several subcommands share: a model with `--set` changes, and a `--data` source.
use anyhow::{anyhow, bail, Context, Result};
use sk_exp::data::spec::{CifarLabel, CifarSpec, FolderSpec};
use sk_exp::data::DataSpec;
use sk_exp::models::{registry, ModelSpec};
use sk_exp::overrides;
use std::path::Path;

/// A registered model's spec with `key=value` assignments (dotted keys, YAML values) applied.
pub fn resolve_spec(name: &str, assignments: &[String]) -> Result<ModelSpec> {
    let spec = registry::resolve(name, None)?;
    if assignments.is_empty() {
        return Ok(spec);
    }
    let mut tree = yaml_serde::to_value(&spec)?;
    for assignment in assignments {
        let (key, value) = overrides::parse_assignment(assignment)?;
        overrides::set_dotted(&mut tree, &key, value)?;
    }
    yaml_serde::from_value(tree).map_err(|e| anyhow!("model '{name}' with --set: {e}"))
}

/// The data set a `--data` value names: `synthetic` (the built-in set), a YAML file holding a `data:`
/// section's fields, an ImageNet-style folder (holding `val/<class>/...`; images resized to `resize`,
/// default crop / 0.875, and centre-cropped to `crop`), or a CIFAR folder.
pub fn data_spec(source: &str, crop: usize, resize: Option<usize>) -> Result<DataSpec> {
    if source == "synthetic" {
        return Ok(DataSpec::default());
    }
    let path = Path::new(source);
    if path.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return yaml_serde::from_str(&text).map_err(|e| anyhow!("{}: not a data section: {e}", path.display()));
    }
    if !path.is_dir() {
        bail!("--data {source}: expected `synthetic`, a data folder or a .yaml file");
    }
    if path.join("val").is_dir() {
        let folder = FolderSpec { root: path.to_path_buf(), crop, eval_crop: crop, eval_resize: resize, skip_bad_images: false };
        return Ok(DataSpec::Folder(folder));
    }
    Ok(DataSpec::Cifar(CifarSpec { root: path.to_path_buf(), label: CifarLabel::Fine }))
}
