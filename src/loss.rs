//! The training criterion (cross entropy with label smoothing) and the classification counts that training,
//! its evaluation and `sk-exp eval` share: loss, top-1 and top-5 errors, summed over batches.
use anyhow::Result;
use tch::{Device, Kind, Reduction, Tensor};

/// Mean cross entropy of `logits` (N, C) against class indices `labels` (N), with the target mixed as
/// (1 - eps) one-hot + eps uniform, exactly as PyTorch's `cross_entropy(label_smoothing=eps)`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, smoothing)
}

/// How many of the batch's samples have their label outside the top 1 and outside the top 5 logits
/// (top k = all classes when there are fewer than k), as a (2,) int64 tensor on the logits' device.
pub fn count_errors(logits: &Tensor, labels: &Tensor) -> Tensor {
    let classes = logits.size()[1];
    let top = logits.topk(5.min(classes), 1, true, true).1;
    let hits = top.eq_tensor(&labels.unsqueeze(1));
    let n = labels.size()[0];
    let top1_hits = hits.narrow(1, 0, 1).sum(Kind::Int64);
    let top5_hits = hits.any_dim(1, false).sum(Kind::Int64);
    Tensor::stack(&[-top1_hits + n, -top5_hits + n], 0)
}

/// Sums over the samples seen: loss (each batch's mean times its size), top-1 and top-5 errors.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassificationStats {
    pub samples: usize,
    pub loss_sum: f64,
    pub top1_errors: f64,
    pub top5_errors: f64,
}

impl ClassificationStats {
    /// The counts of one batch whose mean loss is `mean_loss`, read back in one transfer (one device sync).
    pub fn of_batch(mean_loss: &Tensor, logits: &Tensor, labels: &Tensor) -> Result<ClassificationStats> {
        let samples = labels.size()[0] as usize;
        let packed = tch::no_grad(|| {
            let loss = mean_loss.detach().to_kind(Kind::Double).view(1);
            Tensor::cat(&[loss, count_errors(logits, labels).to_kind(Kind::Double)], 0)
        });
        let v: Vec<f64> = Vec::try_from(packed.to_device(Device::Cpu))?;
        Ok(ClassificationStats { samples, loss_sum: v[0] * samples as f64, top1_errors: v[1], top5_errors: v[2] })
    }

    pub fn add(&mut self, other: ClassificationStats) {
        self.samples += other.samples;
        self.loss_sum += other.loss_sum;
        self.top1_errors += other.top1_errors;
        self.top5_errors += other.top5_errors;
    }

    /// The mean loss per sample.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.samples as f64
    }

    /// Top-1 error in percent.
    pub fn top1_err(&self) -> f64 {
        100.0 * self.top1_errors / self.samples as f64
    }

    /// Top-5 error in percent.
    pub fn top5_err(&self) -> f64 {
        100.0 * self.top5_errors / self.samples as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_mixes_the_nll_with_the_mean_negative_log_probability() {
        tch::manual_seed(3);
        let logits = Tensor::randn([6, 4], (Kind::Float, tch::Device::Cpu));
        let labels = Tensor::from_slice(&[0i64, 3, 1, 1, 2, 0]);
        let logp = logits.log_softmax(1, Kind::Float);
        let nll = -logp.gather(1, &labels.unsqueeze(1), false).mean(Kind::Float);
        let uniform = -logp.mean(Kind::Float);
        for eps in [0.0, 0.1, 0.3] {
            let expected = (&nll * (1.0 - eps) + &uniform * eps).double_value(&[]);
            let got = cross_entropy(&logits, &labels, eps).double_value(&[]);
            assert!((got - expected).abs() < 1e-6, "eps {eps}: {got} vs {expected}");
        }
    }

    #[test]
    fn top1_and_top5_errors_are_counted_per_sample() {
        // Class scores 0..7 ascending, so class 7 is the top 1 and classes 3..7 are the top 5.
        let logits = Tensor::arange(8, (Kind::Float, tch::Device::Cpu)).unsqueeze(0).repeat([4, 1]);
        let labels = Tensor::from_slice(&[7i64, 3, 2, 0]);
        let errors: Vec<i64> = Vec::try_from(count_errors(&logits, &labels)).unwrap();
        assert_eq!(errors, vec![3, 2]);
        // With fewer than five classes every label is in the "top 5".
        let small = Tensor::from_slice(&[0.1f32, 0.9, 0.5, 0.2, 0.7, 0.1]).view([2, 3]);
        let errors: Vec<i64> = Vec::try_from(count_errors(&small, &Tensor::from_slice(&[1i64, 2]))).unwrap();
        assert_eq!(errors, vec![1, 0]);
    }

    #[test]
    fn batch_counts_add_up() {
        let logits = Tensor::arange(8, (Kind::Float, tch::Device::Cpu)).unsqueeze(0).repeat([4, 1]);
        let labels = Tensor::from_slice(&[7i64, 3, 2, 0]);
        let mean = cross_entropy(&logits, &labels, 0.0);
        let mut stats = ClassificationStats::of_batch(&mean, &logits, &labels).unwrap();
        assert_eq!((stats.samples, stats.top1_errors, stats.top5_errors), (4, 3.0, 2.0));
        assert_eq!((stats.top1_err(), stats.top5_err()), (75.0, 50.0));
        assert!((stats.loss() - mean.double_value(&[])).abs() < 1e-6);
        stats.add(stats);
        assert_eq!((stats.samples, stats.top1_err()), (8, 75.0));
    }
}
