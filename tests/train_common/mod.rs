//! Shared pieces of the training tests: a small in-memory data set and the tiny SKNet (tests/common) sized
//! for it. A test binary that declares `mod train_common;` declares `mod common;` too.
#![allow(dead_code)]
use crate::common::{tiny_spec, tiny_yaml, TINY_BASE};
use anyhow::Result;
use sk_exp::data::{Batch, Dataset, Sample, Split};
use sk_exp::train::recipe::Recipe;
use sk_exp::train::replica::{network_builder, NetworkBuilder};
use sk_exp::train::run::ResolvedRun;
use std::path::PathBuf;
use std::sync::Arc;

/// `len` images of 3x`side`x`side` in `classes` classes: a class-dependent colour and stripe over
/// index-seeded noise; the training split flips images horizontally on a coin drawn from the sample seed.
pub struct Blobs {
    pub len: usize,
    pub classes: i64,
    pub side: i64,
    pub offset: u64,
}

fn hash(mut z: u64) -> u64 {
    z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    z ^ (z >> 33)
}

impl Dataset for Blobs {
    fn len(&self) -> usize {
        self.len
    }
    fn num_classes(&self) -> i64 {
        self.classes
    }
    fn image_size(&self) -> (i64, i64) {
        (self.side, self.side)
    }
    fn sample(&self, index: usize, split: Split, seed: u64) -> Result<Sample> {
        let id = index as u64 + self.offset;
        let label = (hash(id) % self.classes as u64) as i64;
        let s = self.side as usize;
        let flip = split == Split::Train && seed % 2 == 1;
        let mut pixels = vec![0f32; 3 * s * s];
        for c in 0..3 {
            for y in 0..s {
                for x in 0..s {
                    let noise = (hash(id * 7919 + (c * s * s + y * s + x) as u64) % 1000) as f32 / 1000.0 - 0.5;
                    let stripe = if (x + label as usize).is_multiple_of(4) { 1.0 } else { 0.0 };
                    let colour = if c as i64 == label % 3 { 0.8 } else { -0.2 };
                    let xx = if flip { s - 1 - x } else { x };
                    pixels[c * s * s + y * s + xx] = colour + stripe * 0.5 + noise;
                }
            }
        }
        Ok(Sample { pixels, label })
    }
}

pub fn blobs(len: usize, offset: u64) -> Arc<dyn Dataset> {
    Arc::new(Blobs { len, classes: 4, side: 16, offset })
}

/// The tiny SKNet's classes and input size for [`blobs`].
const FOR_BLOBS: &[(&str, &str)] = &[("num_classes", "4"), ("input_size", "16")];

/// The tiny SKNet (tests/common) for [`blobs`]: 4 classes, 16x16 inputs.
pub fn tiny_sknet() -> NetworkBuilder {
    network_builder(&tiny_spec(FOR_BLOBS))
}

/// The tiny SKNet trained with `recipe` and `seed` on `devices` into `out_dir` (one thread per replica).
pub fn tiny_run(out_dir: PathBuf, recipe: Recipe, seed: u64, devices: &[&str]) -> ResolvedRun {
    let mut tree: yaml_serde::Value = yaml_serde::from_str("{model: {}, threads: 1}").unwrap();
    tree["model"]["name"] = TINY_BASE.into();
    tree["model"]["overrides"] = tiny_yaml(FOR_BLOBS);
    let mut run = ResolvedRun::from_tree(tree).unwrap();
    run.recipe = recipe;
    run.seed = seed;
    run.devices = devices.iter().map(|d| d.to_string()).collect();
    run.out_dir = out_dir;
    run
}

/// The training-split batch of samples `indices`, each augmented with seed `seed + index`.
pub fn batch_of(dataset: &dyn Dataset, indices: std::ops::Range<usize>, seed: u64) -> Batch {
    let (h, w) = dataset.image_size();
    let samples: Vec<Sample> =
        indices.clone().map(|i| dataset.sample(i, Split::Train, seed + i as u64).unwrap()).collect();
    let pixels: Vec<f32> = samples.iter().flat_map(|s| s.pixels.iter().copied()).collect();
    let labels: Vec<i64> = samples.iter().map(|s| s.label).collect();
    Batch::float(
        tch::Tensor::from_slice(&pixels).view([indices.len() as i64, 3, h, w]),
        tch::Tensor::from_slice(&labels),
    )
}
