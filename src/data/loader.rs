//! The batch loader: a seeded shuffle, worker threads that decode and transform whole batches in
//! parallel, delivery in order with a bounded number of batches prepared ahead. Every sample's randomness
//! comes from (run seed, epoch, data set index), so the batches do not depend on the number of workers.
use super::dataset::{BadSample, Batch, Dataset, Split};
use super::seed::{self, sample_seed};
use super::transforms::Normalisation;
use anyhow::{anyhow, bail, Result};
use rand::seq::SliceRandom;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use tch::{Device, Kind, Tensor};

/// Tag that keeps the shuffle's seed apart from the per-sample seeds.
const SHUFFLE_STREAM: u64 = u64::MAX;

#[derive(Clone, Debug)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub shuffle: bool,
    /// Drop a last batch smaller than `batch_size` (training), or keep it (evaluation).
    pub drop_last: bool,
    pub seed: u64,
    pub epoch: u64,
    /// Decoding threads; 0 prepares batches on the calling thread.
    pub workers: usize,
    /// Batches prepared ahead of the consumer (in flight or ready); at least `workers` keeps all busy.
    pub prefetch: usize,
    pub split: Split,
    /// This process's part of every batch when several processes train together (data parallel).
    pub shard: Shard,
    /// A CUDA device the batches go to: the workers then put them in page-locked (pinned) host memory,
    /// from which [`upload`] copies without blocking the host. None (the default) leaves them pageable.
    pub pin_for: Option<Device>,
    /// Ship 8-bit (N, H, W, 3) images that [`upload`] normalises on the device (a quarter of the float
    /// batch's bytes to copy), for data sets that have 8-bit samples (all built-in ones); others stay float.
    pub uint8: bool,
}

/// Rank `rank` of `world` takes the `rank`-th of `world` contiguous parts of each batch (the first parts
/// one larger when the batch does not divide evenly), so the ranks' parts of one batch are the batch a
/// single process would load: every sample once per epoch, no two ranks sharing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world: usize,
}

impl Shard {
    pub const WHOLE: Shard = Shard { rank: 0, world: 1 };

    /// This shard's part of `batch`, possibly empty.
    pub fn part<'a, T>(&self, batch: &'a [T]) -> &'a [T] {
        let (n, w) = (batch.len(), self.world);
        let start = self.rank * (n / w) + self.rank.min(n % w);
        let len = n / w + usize::from(self.rank < n % w);
        &batch[start..start + len]
    }
}

impl LoaderConfig {
    /// Training defaults: shuffled, last partial batch dropped, two batches ahead per worker.
    pub fn train(batch_size: usize, seed: u64, epoch: u64, workers: usize) -> LoaderConfig {
        LoaderConfig {
            batch_size,
            shuffle: true,
            drop_last: true,
            seed,
            epoch,
            workers,
            prefetch: 2 * workers.max(1),
            split: Split::Train,
            shard: Shard::WHOLE,
            pin_for: None,
            uint8: false,
        }
    }

    /// Evaluation defaults: data set order, every sample kept.
    pub fn eval(batch_size: usize, workers: usize) -> LoaderConfig {
        LoaderConfig {
            shuffle: false,
            drop_last: false,
            split: Split::Eval,
            ..LoaderConfig::train(batch_size, 0, 0, workers)
        }
    }
}

/// The data set order of one epoch: a permutation seeded by (seed, epoch), or the identity.
pub fn epoch_order(len: usize, config: &LoaderConfig) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if config.shuffle {
        order.shuffle(&mut seed::rng(seed::derive(&[config.seed, config.epoch, SHUFFLE_STREAM])));
    }
    order
}

/// The batches of one epoch, in order. Dropping it stops the workers.
pub fn batches(dataset: Arc<dyn Dataset>, config: LoaderConfig) -> Result<Batches> {
    if config.batch_size == 0 {
        bail!("loader: batch_size must be at least 1");
    }
    let order = epoch_order(dataset.len(), &config);
    let mut chunks: Vec<Vec<usize>> = order.chunks(config.batch_size).map(<[usize]>::to_vec).collect();
    if config.drop_last && chunks.last().is_some_and(|c| c.len() < config.batch_size) {
        chunks.pop();
    }
    if config.shard != Shard::WHOLE {
        chunks = chunks.iter().map(|c| config.shard.part(c).to_vec()).filter(|c| !c.is_empty()).collect();
    }
    let shared = Arc::new(Shared {
        dataset,
        config: config.clone(),
        chunks,
        next_chunk: AtomicUsize::new(0),
        consumed: Mutex::new(0),
        window_moved: Condvar::new(),
        stop: AtomicBool::new(false),
    });
    let (sender, receiver) = mpsc::channel();
    let workers = (0..config.workers)
        .map(|_| {
            let (shared, sender) = (shared.clone(), sender.clone());
            std::thread::spawn(move || shared.work(sender))
        })
        .collect();
    Ok(Batches {
        shared,
        receiver,
        workers,
        ready: BTreeMap::new(),
        next: 0,
        skipped: Vec::new(),
        failed: false,
        buffer: PixelBuffers::default(),
    })
}

/// Samples left out of the epoch so far because their files could not be decoded (data sets that allow it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Skipped {
    pub count: usize,
    /// The first few, as "path: reason".
    pub examples: Vec<String>,
}

const SKIPPED_EXAMPLES: usize = 10;

pub struct Batches {
    shared: Arc<Shared>,
    receiver: Receiver<Prepared>,
    workers: Vec<JoinHandle<()>>,
    /// Chunks prepared ahead of their turn, with the samples skipped in them.
    ready: BTreeMap<usize, (Result<Option<Batch>>, Vec<String>)>,
    next: usize,
    skipped: Vec<String>,
    failed: bool,
    /// Pixel buffers for batches prepared on the calling thread (workers keep their own).
    buffer: PixelBuffers,
}

impl Batches {
    /// Batches this epoch has in all (before any is emptied by skipping).
    pub fn num_batches(&self) -> usize {
        self.shared.chunks.len()
    }

    /// Bad samples skipped in the batches delivered so far.
    pub fn skipped(&self) -> Skipped {
        Skipped { count: self.skipped.len(), examples: self.skipped.iter().take(SKIPPED_EXAMPLES).cloned().collect() }
    }

    fn take(&mut self, chunk: usize) -> Result<Option<Batch>> {
        if self.workers.is_empty() {
            let (batch, skipped) = self.shared.prepare_caught(chunk, &mut self.buffer);
            self.skipped.extend(skipped);
            return batch;
        }
        loop {
            // Skipped samples are counted as their chunk is delivered: in chunk order, whichever worker
            // finished first, so the count and the examples are the same for any number of workers.
            if let Some((batch, skipped)) = self.ready.remove(&chunk) {
                self.skipped.extend(skipped);
                return batch;
            }
            let (index, batch, skipped) =
                self.receiver.recv().map_err(|_| anyhow!("loader: a worker thread stopped unexpectedly"))?;
            self.ready.insert(index, (batch, skipped));
        }
    }
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        while !self.failed && self.next < self.shared.chunks.len() {
            let chunk = self.next;
            let batch = self.take(chunk);
            self.next += 1;
            *self.shared.consumed.lock().unwrap() = self.next;
            self.shared.window_moved.notify_all();
            match batch {
                Ok(Some(batch)) => return Some(Ok(batch)),
                Ok(None) => continue, // every sample of it was skipped
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.window_moved.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// (chunk index, its batch or None if every sample was skipped, "path: reason" of skipped samples)
type Prepared = (usize, Result<Option<Batch>>, Vec<String>);

struct Shared {
    dataset: Arc<dyn Dataset>,
    config: LoaderConfig,
    chunks: Vec<Vec<usize>>,
    next_chunk: AtomicUsize,
    /// Chunks the consumer has taken; workers stay within `prefetch` chunks of it.
    consumed: Mutex<usize>,
    window_moved: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn work(&self, sender: Sender<Prepared>) {
        let window = self.config.prefetch.max(1);
        let mut buffer = PixelBuffers::default();
        loop {
            let chunk = self.next_chunk.fetch_add(1, Ordering::SeqCst);
            if chunk >= self.chunks.len() {
                return;
            }
            let mut consumed = self.consumed.lock().unwrap();
            while chunk >= *consumed + window && !self.stop.load(Ordering::SeqCst) {
                consumed = self.window_moved.wait(consumed).unwrap();
            }
            drop(consumed);
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let (batch, skipped) = self.prepare_caught(chunk, &mut buffer);
            if sender.send((chunk, batch, skipped)).is_err() {
                return;
            }
        }
    }

    /// [`Shared::prepare`], with a panic (in a data set's `sample`) turned into the chunk's error: a worker
    /// that died instead would leave the consumer waiting for its chunk forever.
    fn prepare_caught(&self, chunk: usize, pixels: &mut PixelBuffers) -> (Result<Option<Batch>>, Vec<String>) {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.prepare(chunk, pixels))).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            (Err(anyhow!("loader: preparing batch {chunk} panicked: {message}")), Vec::new())
        })
    }

    /// The batch of `chunk`, its pixels gathered in `pixels`: 8-bit where the config asks for it and the
    /// data set has them, else float.
    fn prepare(&self, chunk: usize, pixels: &mut PixelBuffers) -> (Result<Option<Batch>>, Vec<String>) {
        let norm = if self.config.uint8 { self.dataset.normalisation() } else { None };
        pixels.clear();
        let indices = &self.chunks[chunk];
        let mut labels = Vec::with_capacity(indices.len());
        let mut skipped = Vec::new();
        for &index in indices {
            let seed = sample_seed(self.config.seed, self.config.epoch, index as u64);
            match self.gather(index, seed, norm.is_some(), pixels) {
                Ok(label) => labels.push(label),
                Err(e) if self.dataset.skips_bad_samples() && e.downcast_ref::<BadSample>().is_some() => {
                    skipped.push(e.to_string());
                }
                Err(e) => return (Err(e), skipped),
            }
        }
        if labels.is_empty() {
            return (Ok(None), skipped);
        }
        let (n, (height, width)) = (labels.len() as i64, self.dataset.image_size());
        let images = match norm {
            Some(_) => Tensor::from_slice(&pixels.bytes).view([n, height, width, 3]),
            None => Tensor::from_slice(&pixels.floats).view([n, 3, height, width]),
        };
        let batch = Batch { images, labels: Tensor::from_slice(&labels), norm };
        match self.config.pin_for {
            // Pinned here, on a worker thread, so the consumer's copy to the device need not wait for it.
            Some(device) => (pinned(batch, device).map(Some), skipped),
            None => (Ok(Some(batch)), skipped),
        }
    }

    /// Sample `index`'s pixels appended to `pixels` (8-bit HWC if `uint8`, else normalised float CHW); its
    /// label.
    fn gather(&self, index: usize, seed: u64, uint8: bool, pixels: &mut PixelBuffers) -> Result<i64> {
        let ((height, width), split) = (self.dataset.image_size(), self.config.split);
        if uint8 {
            let sample = self.dataset.image_sample(index, split, seed)?;
            let image = &sample.image;
            if (image.height as i64, image.width as i64) != (height, width) {
                bail!("loader: sample {index} is {}x{}, expected {width}x{height}", image.width, image.height);
            }
            pixels.bytes.extend_from_slice(&image.pixels);
            return Ok(sample.label);
        }
        let sample = self.dataset.sample(index, split, seed)?;
        let expected = (3 * height * width) as usize;
        if sample.pixels.len() != expected {
            bail!(
                "loader: sample {index} has {} values, expected 3x{height}x{width} = {expected}",
                sample.pixels.len()
            );
        }
        pixels.floats.extend_from_slice(&sample.pixels);
        Ok(sample.label)
    }
}

/// A batch's pixels, gathered in buffers that are reused (a batch is tens of megabytes, and fresh memory of
/// that size costs a page fault per 4 KiB): floats for float batches, bytes for 8-bit ones.
#[derive(Default)]
struct PixelBuffers {
    floats: Vec<f32>,
    bytes: Vec<u8>,
}

impl PixelBuffers {
    fn clear(&mut self) {
        self.floats.clear();
        self.bytes.clear();
    }
}

/// The batch in page-locked memory. libtorch's caching host allocator hands out the pinned blocks and reuses
/// one only after the copies that read it have completed (it records a CUDA event per copy): the ring of
/// reused pinned buffers, kept safe, without bookkeeping of ours.
fn pinned(batch: Batch, device: Device) -> Result<Batch> {
    Ok(Batch { images: batch.images.f_pin_memory(device)?, labels: batch.labels.f_pin_memory(device)?, ..batch })
}

/// The batch's float images and labels on `device`; 8-bit batches are normalised there. From pinned memory
/// (the loader's `pin_for`) to a GPU the copies are queued without blocking the host; on the CPU the batch
/// is used as it is.
pub fn upload(batch: &Batch, device: Device) -> (Tensor, Tensor) {
    let (images, labels) = match device {
        Device::Cpu => (batch.images.shallow_clone(), batch.labels.shallow_clone()),
        _ => {
            let non_blocking = batch.images.is_pinned(device);
            (
                batch.images.to_device_(device, batch.images.kind(), non_blocking, false),
                batch.labels.to_device_(device, batch.labels.kind(), non_blocking, false),
            )
        }
    };
    match &batch.norm {
        Some(norm) => (normalise_on_device(&images, norm), labels),
        None => (images, labels),
    }
}

/// 8-bit (N, H, W, 3) images as normalised float32 (N, 3, H, W), on their device. The result is laid out
/// channels_last (NHWC in memory, as the bytes came): the conversion is elementwise, reading and writing in
/// order with no transpose, and `Compute::input` makes it contiguous for a contiguous-format model. The
/// arithmetic is the host's [`super::transforms::normalise`]: `value * scale - shift`, two float32
/// roundings with the same float32 constants, so the values are bitwise the float batch's.
pub fn normalise_on_device(images: &Tensor, norm: &Normalisation) -> Tensor {
    let device = images.device();
    // Filled on the device from scalars (exact: each is a float32), so no host-to-device copy waits here.
    let per_channel = |values: [f32; 3]| {
        let parts: Vec<Tensor> =
            values.iter().map(|&v| Tensor::full([1], f64::from(v), (Kind::Float, device))).collect();
        Tensor::cat(&parts, 0).view([1, 3, 1, 1])
    };
    let (scale, shift) = norm.scale_shift();
    images.permute([0, 3, 1, 2]).to_kind(Kind::Float) * per_channel(scale) - per_channel(shift)
}

/// The environment variable that chooses the batches' pixel type: `uint8` or `float`. Unset: 8-bit batches
/// for CUDA devices, float ones for the CPU (whose training arithmetic stays exactly that of float batches,
/// though the values are the same either way). A debugging switch: scripts/cuda_check.sh compares the two.
pub const INPUT_ENV: &str = "SK_EXP_INPUT";

impl LoaderConfig {
    /// These settings for batches that go to `device`: pinned and 8-bit on CUDA (see [`INPUT_ENV`]).
    pub fn for_device(self, device: Device) -> Result<LoaderConfig> {
        let uint8 = match std::env::var(INPUT_ENV).ok().as_deref() {
            None | Some("") => matches!(device, Device::Cuda(_)),
            Some("uint8") => true,
            Some("float") => false,
            Some(other) => bail!("{INPUT_ENV}: expected uint8 or float, got {other:?}"),
        };
        let pin_for = matches!(device, Device::Cuda(_)).then_some(device);
        Ok(LoaderConfig { pin_for, uint8, ..self })
    }
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn shards_split_a_batch_into_contiguous_disjoint_parts() {
        let batch: Vec<usize> = (0..10).collect();
        for world in 1..=4 {
            let parts: Vec<&[usize]> = (0..world).map(|rank| Shard { rank, world }.part(&batch)).collect();
            assert_eq!(parts.concat(), batch, "world {world}");
            let (min, max) = (parts.iter().map(|p| p.len()).min(), parts.iter().map(|p| p.len()).max());
            assert!(max.unwrap() - min.unwrap() <= 1, "world {world}: uneven parts {parts:?}");
        }
        assert_eq!(Shard { rank: 2, world: 3 }.part(&[7, 8]), &[] as &[i32]);
    }
}
