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
        DeviceStats::of_batch(mean_loss, logits, labels).read()
    }

    /// The counts of a row of [`DeviceStats::WIDTH`] values laid out as [`DeviceStats`] keeps them.
    pub fn from_row(row: &[f64]) -> ClassificationStats {
        ClassificationStats { samples: row[0] as usize, loss_sum: row[1], top1_errors: row[2], top5_errors: row[3] }
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

/// [`ClassificationStats`] kept on the device as float64 `[samples, loss_sum, top1_errors, top5_errors]`:
/// counting a batch and adding counts queue device work and wait for nothing, so a GPU step need not
/// stop for the host; [`DeviceStats::read`] is the one transfer. The arithmetic (float64, the loss as
/// mean times samples, sums in the order added) is the host's, so the figures are the same to the bit.
#[derive(Debug)]
pub struct DeviceStats(Tensor);

impl DeviceStats {
    /// Values per count row.
    pub const WIDTH: i64 = 4;

    pub fn zeros(device: Device) -> DeviceStats {
        DeviceStats(Tensor::zeros([Self::WIDTH], (Kind::Double, device)))
    }

    /// The counts of one batch whose mean loss is `mean_loss`.
    pub fn of_batch(mean_loss: &Tensor, logits: &Tensor, labels: &Tensor) -> DeviceStats {
        let samples = labels.size()[0];
        tch::no_grad(|| {
            let device = logits.device();
            // Filled on the device: a host-to-device copy of a pageable value would wait for the device.
            let n = Tensor::full([1], samples as f64, (Kind::Double, device));
            let loss_sum = mean_loss.detach().to_kind(Kind::Double).view(1) * samples as f64;
            DeviceStats(Tensor::cat(&[n, loss_sum, count_errors(logits, labels).to_kind(Kind::Double)], 0))
        })
    }

    /// Counts already packed as a float64 `[samples, loss_sum, top1_errors, top5_errors]` tensor.
    pub fn from_packed(packed: Tensor) -> DeviceStats {
        debug_assert_eq!(packed.size(), [Self::WIDTH]);
        DeviceStats(packed)
    }

    pub fn add(&mut self, other: &DeviceStats) {
        tch::no_grad(|| {
            let _ = self.0.g_add_(&other.0);
        });
    }

    /// The packed counts (on the device).
    pub fn packed(&self) -> &Tensor {
        &self.0
    }

    /// The counts on the host (one transfer; waits for the device's queued work).
    pub fn read(&self) -> Result<ClassificationStats> {
        let v: Vec<f64> = Vec::try_from(self.0.to_device(Device::Cpu))?;
        Ok(ClassificationStats::from_row(&v))
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
    fn device_sums_are_the_host_sums_of_before_to_the_bit() {
        tch::manual_seed(5);
        let mut device = DeviceStats::zeros(tch::Device::Cpu);
        let (mut loss_sum, mut samples) = (0.0f64, 0usize);
        for n in [3i64, 7, 5] {
            let logits = Tensor::randn([n, 6], (Kind::Float, tch::Device::Cpu));
            let labels = Tensor::randint(6, [n], (Kind::Int64, tch::Device::Cpu));
            let mean = cross_entropy(&logits, &labels, 0.1);
            device.add(&DeviceStats::of_batch(&mean, &logits, &labels));
            // What the host did per batch: the float32 mean read back, times the batch size, summed in float64.
            loss_sum += f64::from(f32::try_from(&mean).unwrap()) * n as f64;
            samples += n as usize;
        }
        let read = device.read().unwrap();
        assert_eq!(read.loss_sum.to_bits(), loss_sum.to_bits());
        assert_eq!(read.samples, samples);
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
