//! The `data:` section of a run: which data set, where it lives, and its options; `open` turns it into
//! the train and eval data sets.
use super::cifar::{self, CifarSpec};
use super::folder::{self, FolderSpec};
use super::synthetic::{Subset, Synthetic, SyntheticSpec};
use super::Dataset;
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
            train: Arc::new(Synthetic::new(s, Subset::Train)?),
            eval: Arc::new(Synthetic::new(s, Subset::Eval)?),
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
