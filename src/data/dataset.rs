//! What every data set is: the `Dataset` trait, the samples and batches it yields, and the error of a
//! sample that cannot be read. The loader and the data sets import these from here, not from `data`,
//! so that `data` (which re-exports them) imports its modules and never the other way round.
use anyhow::Result;
use std::fmt;
use std::path::PathBuf;
use tch::Tensor;

/// A batch on the CPU: images (N, 3, H, W) float32, normalised; labels (N) int64.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
}

/// One decoded, transformed sample: CHW float32 pixels (normalised) and its class.
pub struct Sample {
    pub pixels: Vec<f32>,
    pub label: i64,
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
