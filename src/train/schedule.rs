//! Learning-rate schedules, evaluated per iteration: the paper's step schedules (divide by 10 at fractions
//! of training, or every N epochs), cosine, and an optional linear warm-up in front of any of them.
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Multiply by `gamma` at each fraction of training (CIFAR: 0.5 and 0.75 of 300 epochs = 150, 225).
    Multistep {
        fractions: Vec<f64>,
        #[serde(default = "tenth")]
        gamma: f64,
    },
    /// Multiply by `gamma` every `every` epochs (ImageNet: 30).
    Step {
        every: usize,
        #[serde(default = "tenth")]
        gamma: f64,
    },
    /// Half a cosine from the base rate to zero over the epochs after the warm-up. (Braced, as `Constant`:
    /// serde rejects unknown keys only in a tagged enum's struct variants, and ignores them in unit variants.)
    Cosine {},
    Constant {},
}

fn tenth() -> f64 {
    0.1
}

impl Schedule {
    pub fn validate(&self) -> Result<()> {
        match self {
            Schedule::Multistep { fractions, gamma } => {
                if fractions.iter().any(|f| !(*f > 0.0 && *f < 1.0)) {
                    bail!("recipe.schedule.fractions: expected fractions of training strictly between 0 and 1, got {fractions:?}");
                }
                if fractions.windows(2).any(|w| w[0] >= w[1]) {
                    bail!("recipe.schedule.fractions: expected increasing fractions, got {fractions:?}");
                }
                positive_gamma(*gamma)
            }
            Schedule::Step { every, gamma } => {
                if *every == 0 {
                    bail!("recipe.schedule.every: expected at least 1 epoch");
                }
                positive_gamma(*gamma)
            }
            Schedule::Cosine {} | Schedule::Constant {} => Ok(()),
        }
    }
}

fn positive_gamma(gamma: f64) -> Result<()> {
    if gamma.is_nan() || gamma <= 0.0 {
        bail!("recipe.schedule.gamma: expected > 0, got {gamma}");
    }
    Ok(())
}

/// A schedule bound to a run's length: the learning rate of every iteration.
#[derive(Clone, Debug)]
pub struct LrSchedule {
    pub base_lr: f64,
    pub schedule: Schedule,
    pub epochs: usize,
    pub warmup_epochs: usize,
    pub iters_per_epoch: usize,
}

impl LrSchedule {
    /// The rate of iteration `iter` (0-based) of epoch `epoch` (0-based).
    pub fn lr(&self, epoch: usize, iter: usize) -> f64 {
        let step = (epoch * self.iters_per_epoch + iter) as f64;
        let warmup_steps = (self.warmup_epochs * self.iters_per_epoch) as f64;
        // Linear warm-up: (step + 1) / warmup_steps of the rate, so the first step is not at zero.
        let warmup = if step < warmup_steps { (step + 1.0) / warmup_steps } else { 1.0 };
        warmup * self.base_lr * self.factor(epoch, step)
    }

    fn factor(&self, epoch: usize, step: f64) -> f64 {
        match &self.schedule {
            Schedule::Multistep { fractions, gamma } => {
                // Milestones fall on epoch boundaries, as with PyTorch's MultiStepLR stepped per epoch.
                let passed = fractions.iter().filter(|f| epoch >= (*f * self.epochs as f64).round() as usize).count();
                gamma.powi(passed as i32)
            }
            Schedule::Step { every, gamma } => gamma.powi((epoch / every) as i32),
            Schedule::Cosine {} => {
                let start = (self.warmup_epochs * self.iters_per_epoch) as f64;
                let total = (self.epochs * self.iters_per_epoch) as f64 - start;
                let t = ((step - start) / total.max(1.0)).clamp(0.0, 1.0);
                0.5 * (1.0 + (PI * t).cos())
            }
            Schedule::Constant {} => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(schedule: Schedule, epochs: usize, warmup_epochs: usize, iters: usize) -> LrSchedule {
        LrSchedule { base_lr: 0.1, schedule, epochs, warmup_epochs, iters_per_epoch: iters }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-12)
    }

    #[test]
    fn cifar_recipe_divides_by_ten_at_150_and_225_of_300() {
        let s = schedule(Schedule::Multistep { fractions: vec![0.5, 0.75], gamma: 0.1 }, 300, 0, 391);
        for (epoch, lr) in [(0, 0.1), (149, 0.1), (150, 0.01), (224, 0.01), (225, 0.001), (299, 0.001)] {
            assert!(close(s.lr(epoch, 0), lr) && close(s.lr(epoch, 390), lr), "epoch {epoch}: {}", s.lr(epoch, 0));
        }
    }

    #[test]
    fn imagenet_recipe_divides_by_ten_every_30_epochs() {
        let s = schedule(Schedule::Step { every: 30, gamma: 0.1 }, 100, 0, 5005);
        for (epoch, lr) in [(0, 0.1), (29, 0.1), (30, 0.01), (59, 0.01), (60, 0.001), (90, 0.0001), (99, 0.0001)] {
            assert!(close(s.lr(epoch, 17), lr), "epoch {epoch}: {}", s.lr(epoch, 17));
        }
    }

    #[test]
    fn cosine_starts_at_base_halves_midway_and_ends_near_zero() {
        let s = schedule(Schedule::Cosine {}, 10, 0, 100);
        assert!(close(s.lr(0, 0), 0.1));
        assert!(close(s.lr(5, 0), 0.05));
        assert!(close(s.lr(2, 50), 0.1 * 0.5 * (1.0 + (PI * 0.25).cos())));
        assert!(s.lr(9, 99) < 1e-5 && s.lr(9, 99) > 0.0);
    }

    #[test]
    fn warmup_ramps_linearly_per_iteration_then_hands_over() {
        let s = schedule(Schedule::Cosine {}, 12, 2, 10);
        assert!(close(s.lr(0, 0), 0.1 / 20.0));
        assert!(close(s.lr(1, 4), 0.1 * 15.0 / 20.0));
        assert!(close(s.lr(1, 9), 0.1));
        // Cosine runs over the 10 epochs after the warm-up: half way at epoch 2 + 5.
        assert!(close(s.lr(2, 0), 0.1));
        assert!(close(s.lr(7, 0), 0.05));
        let step = schedule(Schedule::Step { every: 30, gamma: 0.1 }, 100, 5, 4);
        assert!(close(step.lr(0, 0), 0.1 / 20.0) && close(step.lr(5, 0), 0.1) && close(step.lr(30, 0), 0.01));
    }

    #[test]
    fn bad_schedules_are_rejected_with_the_field_named() {
        let err = Schedule::Multistep { fractions: vec![0.75, 0.5], gamma: 0.1 }.validate().unwrap_err();
        assert!(err.to_string().contains("recipe.schedule.fractions"), "{err}");
        assert!(Schedule::Multistep { fractions: vec![1.5], gamma: 0.1 }.validate().is_err());
        assert!(Schedule::Step { every: 0, gamma: 0.1 }.validate().is_err());
        let parsed: Result<Schedule, _> = yaml_serde::from_str("kind: step\nevery: 30\nfactor: 0.1");
        assert!(parsed.is_err(), "unknown field accepted");
        for text in ["kind: cosine\nevery: 3", "kind: constant\ngamma: 0.5"] {
            assert!(yaml_serde::from_str::<Schedule>(text).is_err(), "{text}: unknown field accepted");
        }
        let cosine: Schedule = yaml_serde::from_str("kind: cosine").unwrap();
        assert_eq!(
            (cosine, yaml_serde::to_string(&Schedule::Constant {}).unwrap().trim()),
            (Schedule::Cosine {}, "kind: constant")
        );
    }
}
