//! What every data set is: the `Dataset` trait, the samples and batches it yields, and the error of a
//! sample that cannot be read. The loader and the data sets import these from here, not from `data`,
//! so that `data` (which re-exports them) imports its modules and never the other way round.
use super::image::Image;
use super::transforms::{normalise, Normalisation};
use anyhow::{bail, Result};
use std::fmt;
use std::path::PathBuf;
use tch::Tensor;

/// A batch on the CPU: images (N, 3, H, W) float32, normalised, or (8-bit batches, `norm` Some) (N, H, W, 3)
/// uint8 that `loader::upload` normalises with `norm` on the device; labels (N) int64.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
    pub norm: Option<Normalisation>,
}

impl Batch {
    /// A float batch: normalised (N, 3, H, W) images.
    pub fn float(images: Tensor, labels: Tensor) -> Batch {
        Batch { images, labels, norm: None }
    }
}

/// One decoded, transformed sample: CHW float32 pixels (normalised) and its class.
pub struct Sample {
    pub pixels: Vec<f32>,
    pub label: i64,
}

/// One transformed sample before its normalisation: 8-bit HWC pixels and its class.
pub struct ImageSample {
    pub image: Image,
    pub label: i64,
}

impl ImageSample {
    /// The float sample: CHW, normalised by `norm`.
    pub fn normalised(&self, norm: &Normalisation) -> Sample {
        Sample { pixels: normalise(&self.image, norm), label: self.label }
    }
}

/// Which transforms a sample gets: training augmentation or the deterministic evaluation transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Eval,
}

pub trait Dataset: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn num_classes(&self) -> i64;
    /// (H, W) of every transformed sample.
    fn image_size(&self) -> (i64, i64);
    /// Sample `index` transformed for `split`; `seed` is unique to (run seed, epoch, index).
    fn sample(&self, index: usize, split: Split, seed: u64) -> Result<Sample>;
    /// The normalisation `sample` applies to `image_sample`'s pixels, for data sets that give 8-bit samples;
    /// None (the default) keeps the loader on float batches.
    fn normalisation(&self) -> Option<Normalisation> {
        None
    }
    /// Sample `index` as `sample` gives it but before normalisation (8-bit HWC); needed where
    /// `normalisation` is Some.
    fn image_sample(&self, index: usize, split: Split, seed: u64) -> Result<ImageSample> {
        let _ = (index, split, seed);
        bail!("this data set has no 8-bit samples")
    }
    /// Whether the loader may leave out samples that fail with `BadSample` (and count them).
    fn skips_bad_samples(&self) -> bool {
        false
    }
}

/// The error of a sample whose file cannot be read or decoded; the loader skips such samples when the
/// data set allows it, and stops with this error otherwise.
#[derive(Debug)]
pub struct BadSample {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for BadSample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for BadSample {}
