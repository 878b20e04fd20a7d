//! The `data:` section of a run: which data set, where it lives, and its options; `open` turns it into
//! the train and eval data sets.
use super::synthetic::{Part, Synthetic, SyntheticSpec};
use super::Dataset;
use super::{cifar, folder};
use anyhow::Result;
use serde::{Deserialize, Serialize};
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

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CifarSpec {
    /// The batch directory (`cifar-10-batches-bin`, `cifar-100-python`, ...) or a directory holding one;
    /// relative paths are taken from the data root.
    pub root: PathBuf,
    /// CIFAR-100 only: `fine` (100 classes, the usual benchmark) or `coarse` (20 superclasses).
    #[serde(default)]
    pub label: CifarLabel,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CifarLabel {
    #[default]
    Fine,
    Coarse,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FolderSpec {
    /// Holds `train/` and `val/`; relative paths are taken from the data root.
    pub root: PathBuf,
    /// Side of the random-resized training crop.
    #[serde(default = "default_crop")]
    pub crop: usize,
    /// Side of the evaluation centre crop (224, or 320 for the paper's large-crop results).
    #[serde(default = "default_crop")]
    pub eval_crop: usize,
    /// Shorter side after the evaluation resize; default eval_crop / 0.875 (256 for 224, 366 for 320).
    #[serde(default)]
    pub eval_resize: Option<usize>,
    /// Skip (and count) images that fail to decode instead of stopping with an error.
    #[serde(default)]
    pub skip_bad_images: bool,
}

fn default_crop() -> usize {
    224
}

impl FolderSpec {
    pub fn eval_resize(&self) -> usize {
        self.eval_resize.unwrap_or_else(|| (self.eval_crop as f64 / 0.875).round() as usize)
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
    match spec {
        DataSpec::Synthetic(s) => Ok(DataSplits {
            train: Arc::new(Synthetic::new(s, Part::Train)?),
            eval: Arc::new(Synthetic::new(s, Part::Eval)?),
        }),
        DataSpec::Cifar(s) => {
            let (train, eval) = cifar::open(&resolve(&s.root, data_root), s.label)?;
            Ok(DataSplits { train: Arc::new(train), eval: Arc::new(eval) })
        }
        DataSpec::Folder(s) => {
            let (train, eval) = folder::open(&resolve(&s.root, data_root), s)?;
            Ok(DataSplits { train: Arc::new(train), eval: Arc::new(eval) })
        }
    }
}
