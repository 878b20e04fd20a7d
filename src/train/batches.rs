//! Batches for the loop: the epoch's sample order and batch assembly, loaded ahead on a background
//! thread. Every random choice is seeded from (run seed, epoch, index), so a resumed run sees the batches
//! an uninterrupted run would, whatever the number of loader threads.
use crate::data::{Batch, Dataset, Split};
use anyhow::{ensure, Context, Result};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use tch::Tensor;

/// SplitMix64's finaliser: a well-mixed 64-bit value from any 64-bit input.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One seed from an ordered list of integers.
pub fn derive_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243F_6A88_85A3_08D3, |state, &p| mix(state ^ mix(p.wrapping_add(0x9E37_79B9_7F4A_7C15))))
}

/// Tags that keep the streams of different uses of (seed, epoch) apart.
const SHUFFLE: u64 = 1;
const SAMPLE: u64 = 2;
pub const TORCH: u64 = 3;

/// The order of an epoch's samples: a Fisher-Yates shuffle seeded by (seed, epoch), or 0..len.
pub fn epoch_order(seed: u64, epoch: usize, len: usize, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        let mut state = derive_seed(&[seed, epoch as u64, SHUFFLE]);
        for i in (1..len).rev() {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let j = (mix(state) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    order
}

/// Loads and stacks the samples `indices` of `split`, decoding on `workers` threads.
pub fn load_batch(dataset: &dyn Dataset, indices: &[usize], split: Split, seed: u64, epoch: usize, workers: usize) -> Result<Batch> {
    let (h, w) = dataset.image_size();
    let per_sample = (3 * h * w) as usize;
    let mut pixels = vec![0f32; indices.len() * per_sample];
    let mut labels = vec![0i64; indices.len()];
    let chunk = indices.len().div_ceil(workers.max(1)).max(1);
    std::thread::scope(|scope| -> Result<()> {
        let jobs: Vec<_> = indices
            .chunks(chunk)
            .zip(pixels.chunks_mut(chunk * per_sample))
            .zip(labels.chunks_mut(chunk))
            .map(|((idx, px), lb)| {
                scope.spawn(move || -> Result<()> {
                    for (k, &index) in idx.iter().enumerate() {
                        let sample_seed = derive_seed(&[seed, epoch as u64, index as u64, SAMPLE]);
                        let sample = dataset.sample(index, split, sample_seed)?;
                        ensure!(
                            sample.pixels.len() == per_sample,
                            "sample {index}: {} values, expected 3x{h}x{w}",
                            sample.pixels.len()
                        );
                        px[k * per_sample..(k + 1) * per_sample].copy_from_slice(&sample.pixels);
                        lb[k] = sample.label;
                    }
                    Ok(())
                })
            })
            .collect();
        for job in jobs {
            job.join().map_err(|_| anyhow::anyhow!("a data loader thread panicked"))??;
        }
        Ok(())
    })?;
    let n = indices.len() as i64;
    Ok(Batch { images: Tensor::from_slice(&pixels).view([n, 3, h, w]), labels: Tensor::from_slice(&labels) })
}

/// An epoch's batches, loaded two ahead on a background thread.
pub struct Prefetch {
    batches: Receiver<Result<Batch>>,
    handle: Option<JoinHandle<()>>,
}

pub struct EpochPlan {
    pub split: Split,
    pub seed: u64,
    pub epoch: usize,
    pub batch_size: usize,
    /// Drop the last incomplete batch (training: a tiny last batch would upset batch norm).
    pub drop_last: bool,
    pub workers: usize,
}

impl EpochPlan {
    /// Number of batches for a data set of `len` samples.
    pub fn batches(&self, len: usize) -> usize {
        if self.drop_last {
            len / self.batch_size
        } else {
            len.div_ceil(self.batch_size)
        }
    }
}

impl Prefetch {
    pub fn start(dataset: Arc<dyn Dataset>, plan: EpochPlan) -> Prefetch {
        let (tx, rx) = sync_channel(2);
        let handle = std::thread::spawn(move || {
            let order = epoch_order(plan.seed, plan.epoch, dataset.len(), plan.split == Split::Train);
            let count = plan.batches(order.len());
            for b in 0..count {
                let end = ((b + 1) * plan.batch_size).min(order.len());
                let indices = &order[b * plan.batch_size..end];
                let batch = load_batch(dataset.as_ref(), indices, plan.split, plan.seed, plan.epoch, plan.workers)
                    .with_context(|| format!("loading batch {b} of epoch {}", plan.epoch + 1));
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    return;
                }
            }
        });
        Prefetch { batches: rx, handle: Some(handle) }
    }
}

impl Iterator for Prefetch {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Result<Batch>> {
        self.batches.recv().ok()
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Unblock a loader waiting to send, then wait for it.
        let (_, dummy) = sync_channel(0);
        drop(std::mem::replace(&mut self.batches, dummy));
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_are_permutations_that_depend_on_seed_and_epoch() {
        let a = epoch_order(1, 0, 100, true);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(1, 0, 100, true));
        assert_ne!(a, epoch_order(1, 1, 100, true));
        assert_ne!(a, epoch_order(2, 0, 100, true));
        assert_eq!(epoch_order(1, 0, 5, false), vec![0, 1, 2, 3, 4]);
    }
}
