//! A training recipe: optimizer, schedule, length and batch size, with the paper's recipes as presets.
use super::schedule::Schedule;
use super::sgd::SgdConfig;
use crate::precision::Precision;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub epochs: usize,
    /// The global batch, split over the devices.
    pub batch_size: usize,
    pub lr: f64,
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    #[serde(default)]
    pub nesterov: bool,
    pub weight_decay: f64,
    /// Decay BN gamma/beta and biases too (the paper's recipes decay every parameter).
    #[serde(default = "yes")]
    pub wd_on_bn_bias: bool,
    pub schedule: Schedule,
    #[serde(default)]
    pub warmup_epochs: usize,
    #[serde(default)]
    pub label_smoothing: f64,
    /// fp32, or bf16/fp16 autocast (fp32 master weights and SGD state; fp16 with loss scaling). Part of
    /// the run: a run resumes only at the precision it was trained in.
    #[serde(default, skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
}

fn default_momentum() -> f64 {
    0.9
}
fn yes() -> bool {
    true
}

/// The longest run [`Recipe::validate`] accepts.
pub const MAX_EPOCHS: usize = 100_000;

/// The names [`Recipe::preset`] knows.
pub const PRESETS: [&str; 4] = ["cifar10", "cifar100", "imagenet", "imagenet_light"];

impl Recipe {
    /// The paper's recipes. CIFAR (supplementary): batch 128 on 2 GPUs, 300 epochs, lr 0.1 (CIFAR-10) or
    /// 0.05 (CIFAR-100) divided by 10 at 50% and 75%, weight decay 5e-4, momentum 0.9. ImageNet: batch 256,
    /// 100 epochs, lr 0.1 divided by 10 every 30 epochs, weight decay 1e-4 (4e-5 for lightweight models),
    /// label smoothing (epsilon not stated; 0.1 is the usual value).
    pub fn preset(name: &str) -> Result<Recipe> {
        let cifar = |lr| Recipe {
            epochs: 300,
            batch_size: 128,
            lr,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 5e-4,
            wd_on_bn_bias: true,
            schedule: Schedule::Multistep { fractions: vec![0.5, 0.75], gamma: 0.1 },
            warmup_epochs: 0,
            label_smoothing: 0.0,
            precision: Precision::Fp32,
        };
        let imagenet = |weight_decay| Recipe {
            epochs: 100,
            batch_size: 256,
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
            weight_decay,
            wd_on_bn_bias: true,
            schedule: Schedule::Step { every: 30, gamma: 0.1 },
            warmup_epochs: 0,
            label_smoothing: 0.1,
            precision: Precision::Fp32,
        };
        Ok(match name {
            "cifar10" => cifar(0.1),
            "cifar100" => cifar(0.05),
            "imagenet" => imagenet(1e-4),
            "imagenet_light" => imagenet(4e-5),
            other => bail!("recipe preset '{other}': expected one of {}", PRESETS.join(", ")),
        })
    }

    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_EPOCHS).contains(&self.epochs) {
            bail!("recipe.epochs: expected 1 to {MAX_EPOCHS}, got {}", self.epochs);
        }
        if self.batch_size == 0 {
            bail!("recipe.batch_size: expected at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("recipe.lr: expected a positive number, got {}", self.lr);
        }
        if !(0.0..1.0).contains(&self.momentum) {
            bail!("recipe.momentum: expected a value in [0, 1), got {}", self.momentum);
        }
        if self.nesterov && self.momentum == 0.0 {
            bail!("recipe.nesterov: Nesterov momentum needs recipe.momentum > 0");
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            bail!("recipe.weight_decay: expected >= 0, got {}", self.weight_decay);
        }
        if self.warmup_epochs >= self.epochs && self.warmup_epochs > 0 {
            bail!(
                "recipe.warmup_epochs: {} is not shorter than the {} epochs of training",
                self.warmup_epochs,
                self.epochs
            );
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            bail!("recipe.label_smoothing: expected a value in [0, 1), got {}", self.label_smoothing);
        }
        self.schedule.validate()
    }

    pub fn sgd(&self) -> SgdConfig {
        SgdConfig {
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            wd_on_bn_bias: self.wd_on_bn_bias,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_follow_the_paper() {
        for name in PRESETS {
            Recipe::preset(name).unwrap().validate().unwrap();
        }
        let c100 = Recipe::preset("cifar100").unwrap();
        assert_eq!((c100.lr, c100.batch_size, c100.epochs, c100.weight_decay), (0.05, 128, 300, 5e-4));
        assert!(Recipe::preset("mnist").unwrap_err().to_string().contains("cifar10"));
        let smoothed = |label_smoothing| Recipe { label_smoothing, ..c100.clone() }.validate();
        assert!(smoothed(1.0).is_err() && smoothed(0.1).is_ok());
    }
}
