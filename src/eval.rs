//! Evaluation: one classifier interface over our models and TorchScript files, the metrics (cross-entropy
//! loss, top-1 and top-5 error) and the evaluation loop over a data set's batches.
use crate::data::loader::Skipped;
use crate::data::{self, Batch, Dataset, LoaderConfig, Split};
use crate::interop::torchscript::TorchScript;
use crate::loss::{cross_entropy, ClassificationStats};
use crate::models::{self, LoadedModel, Model, ModelSpec};
use crate::precision::Compute;
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// Something that maps an NCHW float batch to logits (N, classes), in eval mode, at a precision and layout.
pub struct Classifier {
    net: Net,
    compute: Compute,
}

enum Net {
    Ours { model: Box<Model>, vs: nn::VarStore },
    TorchScript(TorchScript),
}

impl Classifier {
    /// Our model built from `spec` on `device`, with its weights from `weights` (a safetensors file of a
    /// PyTorch state_dict, or a run/checkpoint/export folder holding one); None keeps the random init.
    pub fn ours(spec: &ModelSpec, weights: Option<&Path>, device: Device) -> Result<Classifier> {
        let LoadedModel { model, vs } = models::load(spec, weights, device)?;
        Ok(Classifier { net: Net::Ours { model: Box::new(model), vs }, compute: Compute::default() })
    }

    pub fn torchscript(path: &Path, device: Device) -> Result<Classifier> {
        crate::device::check(device)?;
        Ok(Classifier { net: Net::TorchScript(TorchScript::load(path, device)?), compute: Compute::default() })
    }

    /// The classifier computing as `compute` says (autocast for the forward pass, channels_last inputs and,
    /// for our models, weights; cuDNN's choice); the logits stay float32.
    pub fn with_compute(mut self, compute: Compute) -> Result<Classifier> {
        if let Net::Ours { vs, .. } = &self.net {
            compute.lay_out_weights(vs.variables().values());
        }
        compute.configure_cudnn(self.device())?;
        self.compute = compute;
        Ok(self)
    }

    pub fn device(&self) -> Device {
        match &self.net {
            Net::Ours { vs, .. } => vs.device(),
            Net::TorchScript(ts) => ts.device(),
        }
    }

    /// Our model's spec, which declares its class count and input size (TorchScript files do not).
    pub fn spec(&self) -> Option<&ModelSpec> {
        match &self.net {
            Net::Ours { model, .. } => Some(&model.spec),
            Net::TorchScript(_) => None,
        }
    }

    /// Eval-mode logits of `images` (moved to the classifier's device), without autograd.
    pub fn logits(&self, images: &Tensor) -> Result<Tensor> {
        let images = self.compute.input(&images.to_device(self.device()));
        let logits = tch::no_grad(|| {
            let _autocast = self.compute.autocast(self.device())?;
            match &self.net {
                Net::Ours { model, .. } => model.forward_t(&images, false),
                Net::TorchScript(ts) => ts.forward(&images),
            }
        })?;
        // Autocast's logits come back in float32, as fp32 ones do; a TorchScript file's own dtype is kept.
        Ok(if self.compute.precision.is_fp32() { logits } else { logits.to_kind(Kind::Float) })
    }
}

/// The counts of one evaluated batch; labels outside the classifier's classes are an error, not a libtorch abort.
fn batch_stats(logits: &Tensor, labels: &Tensor) -> Result<ClassificationStats> {
    let (n, classes) = match logits.size()[..] {
        [n, c] => (n, c),
        ref other => bail!("metrics: expected logits of shape (N, classes), got {other:?}"),
    };
    let labels = labels.to_device(logits.device()).to_kind(Kind::Int64);
    if labels.size() != [n] {
        bail!("metrics: {n} logit rows but labels of shape {:?}", labels.size());
    }
    if n == 0 {
        return Ok(ClassificationStats::default());
    }
    let (low, high) = (labels.min().int64_value(&[]), labels.max().int64_value(&[]));
    if low < 0 || high >= classes {
        bail!("metrics: labels range over [{low}, {high}] but the classifier has {classes} classes");
    }
    let logits = logits.to_kind(Kind::Float);
    ClassificationStats::of_batch(&cross_entropy(&logits, &labels, 0.0), &logits, &labels)
}

/// The outcome of one pass over a data set.
#[derive(Clone, Debug)]
pub struct EvalReport {
    pub metrics: ClassificationStats,
    /// Throughput of the whole pass (loading and transforming the images included).
    pub images_per_s: f64,
    /// Images left out because they could not be decoded (data sets that allow skipping).
    pub skipped: Skipped,
}

/// Evaluates `classifier` on every sample of `dataset` (in order, with the evaluation transform), with a
/// progress bar when `progress`. `observe` sees every batch with its logits (to keep them, say).
pub fn evaluate(
    classifier: &Classifier,
    dataset: Arc<dyn Dataset>,
    loader: LoaderConfig,
    progress: bool,
    mut observe: impl FnMut(&Batch, &Tensor) -> Result<()>,
) -> Result<EvalReport> {
    let classes = dataset.num_classes();
    let bar = if progress { ProgressBar::new(dataset.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  ETA {eta}  {msg}")
            .expect("a valid template"),
    );
    let start = Instant::now();
    let mut metrics = ClassificationStats::default();
    let mut batches = data::batches(dataset, LoaderConfig { split: Split::Eval, ..loader })?;
    for batch in &mut batches {
        let batch = batch?;
        let logits = classifier.logits(&batch.images)?;
        let width = logits.size()[1];
        if width != classes {
            bail!("the classifier gives {width} logits per image, the data set has {classes} classes");
        }
        metrics.add(batch_stats(&logits, &batch.labels)?);
        observe(&batch, &logits)?;
        bar.inc(batch.labels.size()[0] as u64);
        bar.set_message(format!("top-1 err {:.2}%", metrics.top1_err()));
    }
    bar.finish_and_clear();
    let images_per_s = metrics.samples as f64 / start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    Ok(EvalReport { metrics, images_per_s, skipped: batches.skipped() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_top1_and_top5_errors_and_the_mean_loss() {
        // Scores ascend with the class index: class 7 is the top 1, classes 3..=7 the top 5.
        let logits = Tensor::arange(8, (Kind::Float, Device::Cpu)).unsqueeze(0).repeat([4, 1]);
        let labels = Tensor::from_slice(&[7i64, 3, 2, 0]);
        let m = batch_stats(&logits, &labels).unwrap();
        assert_eq!((m.samples, m.top1_errors, m.top5_errors), (4, 3.0, 2.0));
        assert_eq!((m.top1_err(), m.top5_err()), (75.0, 50.0));
        let expected = logits.cross_entropy_for_logits(&labels).double_value(&[]);
        assert!((m.loss() - expected).abs() < 1e-6);
        // Fewer than five classes: every label is in the "top 5".
        let small = batch_stats(
            &Tensor::from_slice(&[0.1f32, 0.9, 0.5, 0.2, 0.7, 0.1]).view([2, 3]),
            &Tensor::from_slice(&[1i64, 2]),
        )
        .unwrap();
        assert_eq!((small.top1_errors, small.top5_errors), (1.0, 0.0));
    }

    #[test]
    fn labels_outside_the_classes_are_an_error() {
        let err = batch_stats(&Tensor::zeros([2, 3], (Kind::Float, Device::Cpu)), &Tensor::from_slice(&[0i64, 3]));
        assert!(err.unwrap_err().to_string().contains("labels range over [0, 3] but the classifier has 3 classes"));
    }
}
