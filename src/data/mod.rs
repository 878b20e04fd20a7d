//! Data sets and the batch loader. Every data set yields transformed samples by index; all randomness
//! (shuffling, augmentation) is derived from (seed, epoch, index), so results do not depend on worker
//! scheduling and a resumed run sees exactly the batches an uninterrupted run would.
pub mod cifar;
pub mod dataset;
pub mod folder;
pub mod image;
pub mod loader;
pub mod pickle;
pub mod resample;
pub mod seed;
pub mod spec;
pub mod synthetic;
pub mod transforms;

pub use cifar::{CifarLabel, CifarSpec};
pub use dataset::{BadSample, Batch, Dataset, ImageSample, Sample, Split};
pub use folder::FolderSpec;
pub use loader::{batches, Batches, LoaderConfig};
pub use spec::{open, open_eval, DataSpec, DataSplits};
