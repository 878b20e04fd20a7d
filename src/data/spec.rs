//! The `data:` section of a run: which data set, where it lives, and its options; `open` turns it into
//! the train and eval data sets.
use super::cifar::{self, CifarSpec};
use super::dataset::Dataset;
use super::folder::{self, FolderSpec};
use super::synthetic::{Subset, Synthetic, SyntheticSpec};
use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSpec {
    /// The built-in synthetic set (no files).
    Synthetic(SyntheticSpec),
    /// CIFAR-10 or CIFAR-100, binary or Python version, detected from the files under `root`.
    Cifar(CifarSpec),
    /// ImageNet-style folders: `root/train/<class>/*`, `root/val/<class>/*`.
    Folder(FolderSpec),
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec::Synthetic(SyntheticSpec::default())
    }
}

impl DataSpec {
    /// Loader threads when the run does not say: image folders decode JPEGs, which takes many threads to
    /// feed a GPU (all cores but the training thread's, 2 to 8); CIFAR and synthetic images need 2.
    pub fn default_workers(&self) -> usize {
        match self {
            DataSpec::Folder(_) => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                cores.saturating_sub(1).clamp(2, 8)
            }
            DataSpec::Cifar(_) | DataSpec::Synthetic(_) => 2,
        }
    }

    /// The data set a `--data` value names: `synthetic` (the built-in set), `cifar:ROOT`, `folder:ROOT`, a
    /// YAML file holding a `data:` section's fields, or a folder (image folders, told apart by a `val/`
    /// inside, else CIFAR). Image folders get `eval_crop` as both crops and `eval_resize` (default
    /// eval_crop / 0.875): with 224 and None, `folder:R` is exactly `{kind: folder, root: R}`.
    pub fn from_source(source: &str, eval_crop: usize, eval_resize: Option<usize>) -> Result<DataSpec> {
        let folder = |root: &Path| {
            DataSpec::Folder(FolderSpec { crop: eval_crop, eval_crop, eval_resize, ..FolderSpec::new(root) })
        };
        let cifar = |root: &Path| DataSpec::Cifar(CifarSpec::new(root));
        let unknown =
            || anyhow!("--data {source}: expected synthetic, cifar:ROOT, folder:ROOT, a data folder or a .yaml file");
        if source == "synthetic" {
            return Ok(DataSpec::default());
        }
        match source.split_once(':') {
            Some(("cifar", root)) if !root.is_empty() => return Ok(cifar(Path::new(root))),
            Some(("folder", root)) if !root.is_empty() => return Ok(folder(Path::new(root))),
            Some(("cifar" | "folder", _)) => return Err(unknown()),
            _ => {}
        }
        let path = Path::new(source);
        if path.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            return read_data_section(path);
        }
        if !path.is_dir() {
            return Err(unknown());
        }
        Ok(if path.join("val").is_dir() { folder(path) } else { cifar(path) })
    }

    /// The augmentation fields' bounds (see each kind's `check_augmentation`), checked without opening any
    /// file, so that an experiment's bad value stops it before anything trains. Opening checks them too.
    pub fn check(&self) -> Result<()> {
        match self {
            DataSpec::Synthetic(_) => Ok(()),
            DataSpec::Cifar(s) => s.check_augmentation(),
            DataSpec::Folder(s) => s.check_augmentation(),
        }
    }
}

/// A YAML file holding the fields of a `data:` section.
fn read_data_section(path: &Path) -> Result<DataSpec> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    yaml_serde::from_str(&text).map_err(|e| anyhow!("{}: not a data section: {e}", path.display()))
}

/// The `--data` form ([`DataSpec::from_source`] reads it back): `synthetic`, `cifar:ROOT` or `folder:ROOT`.
/// Options besides the root (the synthetic seed and sizes, CIFAR-100's coarse labels, crops) are not shown.
impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::Synthetic(_) => write!(f, "synthetic"),
            DataSpec::Cifar(c) => write!(f, "cifar:{}", c.root.display()),
            DataSpec::Folder(s) => write!(f, "folder:{}", s.root.display()),
        }
    }
}

/// The two data sets a run trains and evaluates on.
#[derive(Clone)]
pub struct DataSplits {
    pub train: Arc<dyn Dataset>,
    pub eval: Arc<dyn Dataset>,
}

/// `path` as given if absolute or if there is no data root, else under the data root.
pub fn resolve(path: &Path, data_root: Option<&Path>) -> PathBuf {
    match data_root {
        Some(root) if path.is_relative() => root.join(path),
        _ => path.to_path_buf(),
    }
}

/// The evaluation set alone, labelled as in [`open`], without preparing the training set (an image
/// folder's training images are not listed).
pub fn open_eval(spec: &DataSpec, data_root: Option<&Path>) -> Result<Arc<dyn Dataset>> {
    match spec {
        DataSpec::Folder(s) => Ok(Arc::new(folder::open_eval(&resolve(&s.root, data_root), s)?)),
        _ => Ok(open(spec, data_root)?.eval),
    }
}

pub fn open(spec: &DataSpec, data_root: Option<&Path>) -> Result<DataSplits> {
    fn splits<D: Dataset + 'static>((train, eval): (D, D)) -> DataSplits {
        DataSplits { train: Arc::new(train), eval: Arc::new(eval) }
    }
    Ok(match spec {
        DataSpec::Synthetic(s) => splits((Synthetic::new(s, Subset::Train)?, Synthetic::new(s, Subset::Eval)?)),
        DataSpec::Cifar(s) => splits(cifar::open(&resolve(&s.root, data_root), s)?),
        DataSpec::Folder(s) => splits(folder::open(&resolve(&s.root, data_root), s)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::CifarLabel;

    /// An empty scratch folder, unique to this test process.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sk-exp-data-spec-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn from_source(source: &str) -> DataSpec {
        DataSpec::from_source(source, 224, None).unwrap()
    }

    #[test]
    fn each_form_names_its_data_set() {
        assert_eq!(from_source("synthetic"), DataSpec::default());
        let cifar = CifarSpec::new("/data/cifar-10-batches-bin");
        assert_eq!(from_source("cifar:/data/cifar-10-batches-bin"), DataSpec::Cifar(cifar));
        let folder = FolderSpec { crop: 320, eval_crop: 320, eval_resize: Some(320), ..FolderSpec::new("in1k") };
        assert_eq!(DataSpec::from_source("folder:in1k", 320, Some(320)).unwrap(), DataSpec::Folder(folder));
    }

    #[test]
    fn the_forms_mean_what_the_data_section_means() {
        let section = |yaml: &str| yaml_serde::from_str::<DataSpec>(yaml).unwrap();
        assert_eq!(from_source("synthetic"), section("kind: synthetic"));
        assert_eq!(from_source("cifar:c10"), section("kind: cifar\nroot: c10"));
        assert_eq!(from_source("folder:/data/imagenet"), section("kind: folder\nroot: /data/imagenet"));
    }

    #[test]
    fn display_round_trips_through_from_source() {
        for source in ["synthetic", "cifar:/data/cifar-100-python", "folder:relative/imagenet"] {
            let spec = from_source(source);
            assert_eq!(spec.to_string(), source);
            assert_eq!(from_source(&spec.to_string()), spec);
        }
    }

    #[test]
    fn a_bare_folder_is_an_image_folder_when_it_holds_val() {
        let images = scratch("images");
        std::fs::create_dir_all(images.join("val")).unwrap();
        assert!(matches!(from_source(images.to_str().unwrap()), DataSpec::Folder(f) if f.root == images));
        let cifar = scratch("cifar");
        assert!(matches!(from_source(cifar.to_str().unwrap()), DataSpec::Cifar(c) if c.root == cifar));
        std::fs::remove_dir_all(images).unwrap();
        std::fs::remove_dir_all(cifar).unwrap();
    }

    #[test]
    fn a_yaml_file_holds_a_data_section() {
        let dir = scratch("yaml");
        let path = dir.join("data.yaml");
        std::fs::write(&path, "kind: cifar\nroot: cifar-100-python\nlabel: coarse\n").unwrap();
        let spec = from_source(path.to_str().unwrap());
        let expected = CifarSpec { label: CifarLabel::Coarse, ..CifarSpec::new("cifar-100-python") };
        assert_eq!(spec, DataSpec::Cifar(expected));

        std::fs::write(&path, "kind: cifar\nroot: x\nlabels: fine\n").unwrap();
        let err = DataSpec::from_source(path.to_str().unwrap(), 224, None).unwrap_err().to_string();
        assert!(err.contains("data.yaml: not a data section") && err.contains("labels"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_bad_value_names_itself_and_the_forms() {
        for bad in ["mnist", "cifar:", "folder:", "/no/such/folder"] {
            let err = DataSpec::from_source(bad, 224, None).unwrap_err().to_string();
            let expected = "expected synthetic, cifar:ROOT, folder:ROOT, a data folder or a .yaml file";
            assert_eq!(err, format!("--data {bad}: {expected}"));
        }
    }
}
