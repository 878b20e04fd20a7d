//! The training criterion (cross entropy with label smoothing) and top-1 / top-5 error counting.
use anyhow::{bail, Result};
use tch::{Kind, Reduction, Tensor};

/// Mean cross entropy of `logits` (N, C) against class indices `labels` (N), with the target mixed as
/// (1 - eps) one-hot + eps uniform, exactly as PyTorch's `cross_entropy(label_smoothing=eps)`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, smoothing)
}

pub fn check_smoothing(smoothing: f64) -> Result<()> {
    if !(0.0..1.0).contains(&smoothing) {
        bail!("recipe.label_smoothing: expected a value in [0, 1), got {smoothing}");
    }
    Ok(())
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
        assert!(check_smoothing(1.0).is_err() && check_smoothing(0.1).is_ok());
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
}
