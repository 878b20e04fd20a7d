//! CIFAR-10 and CIFAR-100 from the directories researchers already have: the binary version
//! (`cifar-10-batches-bin/`, `cifar-100-binary/`) or the pickled Python version torchvision downloads
//! (`cifar-10-batches-py/`, `cifar-100-python/`), detected from the files present.
use super::dataset::{Dataset, ImageSample, Sample, Split};
use super::image::Image;
use super::pickle::{self, Value};
use super::seed;
use super::transforms::{pad_crop_flip, Normalisation, CIFAR100_NORM, CIFAR10_NORM};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SIDE: usize = 32;
const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
const TRAIN_BATCHES: usize = 5;
/// The directory names of the official archives, looked for under the given root.
const KNOWN_DIRS: [&str; 4] = ["cifar-10-batches-bin", "cifar-10-batches-py", "cifar-100-binary", "cifar-100-python"];

/// The `data:` section for CIFAR (`kind: cifar`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CifarSpec {
    /// The batch directory (`cifar-10-batches-bin`, `cifar-100-python`, ...) or a directory holding one;
    /// relative paths are taken from the data root.
    pub root: PathBuf,
    /// CIFAR-100 only: `fine` (100 classes, the usual benchmark) or `coarse` (20 superclasses).
    #[serde(default)]
    pub label: CifarLabel,
    /// Training: zero padding on every side before the random 32x32 crop (0: no shift).
    #[serde(default = "default_padding", skip_serializing_if = "is_default_padding")]
    pub padding: usize,
    /// Training: flip horizontally with probability 1/2.
    #[serde(default = "default_flip", skip_serializing_if = "is_default_flip")]
    pub flip: bool,
}

/// The standard CIFAR augmentation (the ResNeXt and SKNet papers'): pad 4, random crop, flip. Fields at their
/// default stay out of run files, so that older run files read back as the same run.
const DEFAULT_PADDING: usize = 4;

fn default_padding() -> usize {
    DEFAULT_PADDING
}
fn is_default_padding(padding: &usize) -> bool {
    *padding == DEFAULT_PADDING
}
fn default_flip() -> bool {
    true
}
fn is_default_flip(flip: &bool) -> bool {
    *flip
}

impl CifarSpec {
    /// The files under `root`, fine labels and the standard augmentation.
    pub fn new(root: impl Into<PathBuf>) -> CifarSpec {
        CifarSpec { root: root.into(), label: CifarLabel::Fine, padding: DEFAULT_PADDING, flip: true }
    }

    /// `padding` is at most the image side (a crop of a larger pad may miss the image entirely).
    pub fn check_augmentation(&self) -> Result<()> {
        if self.padding > SIDE {
            bail!("data.padding: expected at most {SIDE} (the image side), got {}", self.padding);
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CifarLabel {
    #[default]
    Fine,
    Coarse,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Cifar10Binary,
    Cifar10Python,
    Cifar100Binary,
    Cifar100Python,
}

impl Layout {
    fn is_cifar100(self) -> bool {
        matches!(self, Layout::Cifar100Binary | Layout::Cifar100Python)
    }

    /// The layout of the files directly in `dir`, if any.
    fn of_dir(dir: &Path) -> Option<Layout> {
        let file = |name: &str| dir.join(name).is_file();
        if file("data_batch_1.bin") {
            Some(Layout::Cifar10Binary)
        } else if file("data_batch_1") {
            Some(Layout::Cifar10Python)
        } else if file("train.bin") {
            Some(Layout::Cifar100Binary)
        } else if file("train") && file("test") {
            Some(Layout::Cifar100Python)
        } else {
            None
        }
    }
}

/// The batch directory and its layout: `root` itself, or the one official directory inside it.
pub fn detect(root: &Path) -> Result<(PathBuf, Layout)> {
    if !root.is_dir() {
        bail!("CIFAR directory {} does not exist", root.display());
    }
    if let Some(layout) = Layout::of_dir(root) {
        return Ok((root.to_path_buf(), layout));
    }
    let found: Vec<(PathBuf, Layout)> = KNOWN_DIRS
        .iter()
        .map(|name| root.join(name))
        .filter_map(|dir| Layout::of_dir(&dir).map(|layout| (dir, layout)))
        .collect();
    match found.len() {
        1 => Ok(found.into_iter().next().unwrap()),
        0 => bail!(
            "no CIFAR files in {}: expected data_batch_1.bin (CIFAR-10 binary), data_batch_1 (CIFAR-10 Python), \
             train.bin (CIFAR-100 binary) or train + test (CIFAR-100 Python), there or in one of {}",
            root.display(),
            KNOWN_DIRS.join(", ")
        ),
        _ => bail!(
            "{} holds several CIFAR versions ({}); set data.root to the one to use",
            root.display(),
            found.iter().map(|(d, _)| d.file_name().unwrap().to_string_lossy()).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn classes(layout: Layout, label: CifarLabel) -> i64 {
    match (layout.is_cifar100(), label) {
        (false, _) => 10,
        (true, CifarLabel::Fine) => 100,
        (true, CifarLabel::Coarse) => 20,
    }
}

/// The class count of the CIFAR set at `root` without reading it: from the files when they are there,
/// else from the official directory name (`cifar-100-python` -> 100), so that a dry run on a machine
/// without the data still counts a CIFAR-100 model's classifier. None when neither tells.
pub fn classes_hint(root: &Path, label: CifarLabel) -> Option<i64> {
    let layout = match detect(root) {
        Ok((_, layout)) => layout,
        Err(_) => {
            let name = root.file_name()?.to_str()?;
            if !KNOWN_DIRS.contains(&name) {
                return None;
            }
            if name.starts_with("cifar-100") {
                Layout::Cifar100Binary
            } else {
                Layout::Cifar10Binary
            }
        }
    };
    Some(classes(layout, label))
}

/// Images (N x 3072 bytes, planar RGB as in the files) and one label per image.
#[derive(Debug)]
pub struct Cifar {
    images: Arc<Vec<u8>>,
    labels: Vec<u8>,
    classes: i64,
    norm: Normalisation,
    padding: usize,
    flip: bool,
}

/// The training set (data batches 1-5 / `train`) and the test set (`test_batch` / `test`) of `spec`, its
/// files under `root` (the spec's root resolved).
pub fn open(root: &Path, spec: &CifarSpec) -> Result<(Cifar, Cifar)> {
    spec.check_augmentation()?;
    let label = spec.label;
    let (dir, layout) = detect(root)?;
    if label == CifarLabel::Coarse && !layout.is_cifar100() {
        bail!("data.label: coarse labels exist only in CIFAR-100, but {} is CIFAR-10", dir.display());
    }
    let data_batches = |suffix: &str| (1..=TRAIN_BATCHES).map(|i| format!("data_batch_{i}{suffix}")).collect();
    let (train_files, test_file): (Vec<String>, &str) = match layout {
        Layout::Cifar10Binary => (data_batches(".bin"), "test_batch.bin"),
        Layout::Cifar10Python => (data_batches(""), "test_batch"),
        Layout::Cifar100Binary => (vec!["train.bin".into()], "test.bin"),
        Layout::Cifar100Python => (vec!["train".into()], "test"),
    };
    let read_all = |names: &[String]| -> Result<Cifar> {
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for name in names {
            let (i, l) = read_file(&dir.join(name), layout, label)?;
            images.extend(i);
            labels.extend(l);
        }
        let classes = classes(layout, label);
        let norm = if layout.is_cifar100() { CIFAR100_NORM } else { CIFAR10_NORM };
        if let Some(bad) = labels.iter().find(|&&l| l as i64 >= classes) {
            bail!("{}: label {bad} out of range for {classes} classes", dir.display());
        }
        Ok(Cifar { images: Arc::new(images), labels, classes, norm, padding: spec.padding, flip: spec.flip })
    };
    Ok((read_all(&train_files)?, read_all(&[test_file.to_string()])?))
}

fn read_file(path: &Path, layout: Layout, label: CifarLabel) -> Result<(Vec<u8>, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read CIFAR file {}", path.display()))?;
    let read = match layout {
        Layout::Cifar10Binary => split_records(&bytes, 1, 0),
        Layout::Cifar100Binary => split_records(&bytes, 2, if label == CifarLabel::Coarse { 0 } else { 1 }),
        Layout::Cifar10Python | Layout::Cifar100Python => from_pickle(&bytes, label),
    };
    read.with_context(|| format!("CIFAR file {}", path.display()))
}

/// Binary records: `label_bytes` label bytes (CIFAR-100: coarse, fine), then 3072 image bytes.
fn split_records(bytes: &[u8], label_bytes: usize, label_at: usize) -> Result<(Vec<u8>, Vec<u8>)> {
    let record = label_bytes + IMAGE_BYTES;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        bail!(
            "{} bytes is not a whole number of {record}-byte records ({} complete, {} bytes left over: truncated?)",
            bytes.len(),
            bytes.len() / record,
            bytes.len() % record
        );
    }
    let n = bytes.len() / record;
    let mut images = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for r in bytes.chunks_exact(record) {
        labels.push(r[label_at]);
        images.extend_from_slice(&r[label_bytes..]);
    }
    Ok((images, labels))
}

/// A pickled batch: {data: uint8 array (N, 3072), labels | fine_labels + coarse_labels: [int]}.
fn from_pickle(bytes: &[u8], label: CifarLabel) -> Result<(Vec<u8>, Vec<u8>)> {
    let dict = pickle::parse(bytes)?;
    if !matches!(dict, Value::Dict(_)) {
        bail!("expected a pickled dict");
    }
    let data = dict.get("data").ok_or_else(|| anyhow!("no 'data' entry"))?;
    let array = data.as_array().ok_or_else(|| anyhow!("'data' is not a numpy array"))?;
    if array.dtype != "u1" {
        bail!("'data' has numpy type {}, expected uint8 (u1)", array.dtype);
    }
    let n = match array.shape[..] {
        [n, IMAGE_BYTES] => n,
        _ => bail!("'data' has shape {:?}, expected (N, {IMAGE_BYTES})", array.shape),
    };
    if array.data.len() != n * IMAGE_BYTES {
        bail!("'data' holds {} bytes, its shape {:?} needs {}", array.data.len(), array.shape, n * IMAGE_BYTES);
    }
    let key = match (dict.get("labels").is_some(), label) {
        (true, _) => "labels",
        (false, CifarLabel::Fine) => "fine_labels",
        (false, CifarLabel::Coarse) => "coarse_labels",
    };
    let labels = dict.get(key).and_then(|v| v.as_int_list()).ok_or_else(|| anyhow!("no '{key}' list of ints"))?;
    if labels.len() != n {
        bail!("'{key}' has {} entries for {n} images", labels.len());
    }
    let labels = labels
        .iter()
        .map(|&l| u8::try_from(l).map_err(|_| anyhow!("label {l} out of range")))
        .collect::<Result<_>>()?;
    Ok((array.data.to_vec(), labels))
}

impl Cifar {
    pub fn image(&self, index: usize) -> Image {
        Image::from_planar(SIDE, SIDE, &self.images[index * IMAGE_BYTES..(index + 1) * IMAGE_BYTES])
    }

    pub fn label(&self, index: usize) -> i64 {
        self.labels[index] as i64
    }
}

impl Dataset for Cifar {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn num_classes(&self) -> i64 {
        self.classes
    }

    fn image_size(&self) -> (i64, i64) {
        (SIDE as i64, SIDE as i64)
    }

    fn sample(&self, index: usize, split: Split, seed: u64) -> Result<Sample> {
        Ok(self.image_sample(index, split, seed)?.normalised(&self.norm))
    }

    fn normalisation(&self) -> Option<Normalisation> {
        Some(self.norm)
    }

    fn image_sample(&self, index: usize, split: Split, seed: u64) -> Result<ImageSample> {
        if index >= self.len() {
            bail!("CIFAR sample {index} out of range (the set has {})", self.len());
        }
        let image = self.image(index);
        let image = match split {
            Split::Train => pad_crop_flip(&image, self.padding, self.flip, &mut seed::rng(seed)),
            Split::Eval => image,
        };
        Ok(ImageSample { image, label: self.label(index) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_counts_are_told_by_the_official_directory_names_without_the_files() {
        let hint = |dir: &str, label| classes_hint(&Path::new("/nonexistent").join(dir), label);
        assert_eq!(hint("cifar-100-python", CifarLabel::Fine), Some(100));
        assert_eq!(hint("cifar-100-binary", CifarLabel::Coarse), Some(20));
        assert_eq!(hint("cifar-10-batches-bin", CifarLabel::Fine), Some(10));
        assert_eq!(hint("my-cifar", CifarLabel::Fine), None);
    }
}
