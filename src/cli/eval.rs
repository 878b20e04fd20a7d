//! `sk-exp eval`: top-1/top-5 error, loss and images/s of a TorchScript file or of one of our models
//! with its weights; or, with `--input`, the logits of a raw NCHW tensor for scripted comparisons.
use super::common::{model_and_weights, ComputeArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use sk_exp::data::{self, DataSpec, LoaderConfig};
use sk_exp::eval::{evaluate, Classifier};
use sk_exp::interop::npy;
use sk_exp::train::run_dir::RunDir;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Which classifier to run: a TorchScript file, a training run's model, or a registered model with weights.
#[derive(Args)]
pub struct SourceArgs {
    /// A TorchScript file (as `torch.jit.save` or `sk-exp export` writes it).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["model", "weights", "set", "run"], required_unless_present_any = ["model", "run"])]
    torchscript: Option<PathBuf>,
    /// A training run's folder: its model (its run file) with its last checkpoint's weights.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "weights"])]
    run: Option<PathBuf>,
    /// A registered model name (see `sk-exp models`).
    #[arg(long)]
    model: Option<String>,
    /// The model's weights: a safetensors or torch.save (.pth/.pt) file with PyTorch (timm/torchvision) key
    /// names, a run, checkpoint or export folder holding one, or hf:OWNER/NAME (hf:default: the model's timm
    /// weights) from the Hugging Face cache, offline.
    #[arg(long, value_name = "PATH")]
    weights: Option<PathBuf>,
    /// Change a field of the model's spec, e.g. `--set num_classes=10` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[command(flatten)]
    compute: ComputeArgs,
}

impl SourceArgs {
    /// The TorchScript file's path, the run folder or the model's name, for reports.
    pub fn describe(&self) -> String {
        let path = self.torchscript.as_ref().or(self.run.as_ref()).map(|p| p.display().to_string());
        path.or_else(|| self.model.clone()).unwrap_or_default()
    }

    /// The precision and layout, as ` key=value` pairs for result lines.
    pub fn describe_compute(&self) -> String {
        self.compute.describe()
    }

    /// The classifier, computing at the flags' precision and layout.
    pub fn load(&self) -> Result<Classifier> {
        self.load_model()?.with_compute(self.compute.compute())
    }

    fn load_model(&self) -> Result<Classifier> {
        let device = sk_exp::device::parse(&self.device)?;
        if let Some(path) = &self.torchscript {
            return Classifier::torchscript(path, device);
        }
        let (spec, weights) =
            model_and_weights(self.run.as_deref(), self.model.as_deref(), self.weights.as_deref(), &self.set)?;
        if weights.is_none() {
            eprintln!("note: no --weights given: the model keeps its random initialisation");
        }
        Classifier::ours(&spec, weights.as_deref(), device)
    }
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// The data to evaluate on (its evaluation split): `synthetic`, `cifar:ROOT`, `folder:ROOT` (holding
    /// train/ and val/<class>/...), a folder (CIFAR or image folders, told apart by a val/ inside), or a
    /// YAML file holding a `data:` section's fields. Default with --run: the run's data.
    #[arg(long, value_name = "SOURCE", conflicts_with = "input")]
    data: Option<String>,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Image folders: side of the evaluation centre crop (the paper reports 224 and 320).
    #[arg(long, default_value_t = 224)]
    crop: usize,
    /// Image folders: shorter side after resizing, before the crop; default crop / 0.875 (256 for 224).
    #[arg(long)]
    resize: Option<usize>,
    /// Threads decoding and transforming images.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// With --data: also write the evaluated images, labels and logits as .npy files into this folder.
    #[arg(long, value_name = "DIR", requires = "data")]
    dump: Option<PathBuf>,
    /// A raw input: a float32 .npy array of shape (N, C, H, W), run through the classifier as it is.
    #[arg(long, value_name = "FILE.npy", requires = "dump_logits")]
    input: Option<PathBuf>,
    /// Where to write the logits of --input, as a float32 .npy array (N, classes).
    #[arg(long, value_name = "FILE.npy", requires = "input")]
    dump_logits: Option<PathBuf>,
    /// Intra-op threads (libtorch's pool); default: libtorch's own choice.
    #[arg(long)]
    threads: Option<i32>,
}

pub fn run(args: EvalArgs) -> Result<()> {
    super::common::set_threads(args.threads)?;
    let classifier = args.source.load()?;
    if let (Some(input), Some(output)) = (&args.input, &args.dump_logits) {
        return dump_logits(&classifier, input, output);
    }
    let run = args.source.run.as_deref().map(|dir| RunDir::new(dir).read_run()).transpose()?;
    let (spec, data_root) = match (&args.data, run) {
        (Some(source), _) => (DataSpec::from_source(source, args.crop, args.resize)?, None),
        (None, Some(run)) => (run.data, run.data_root),
        (None, None) => bail!("give --data SOURCE, or --input FILE.npy --dump-logits FILE.npy"),
    };
    evaluate_data(&classifier, &spec, data_root.as_deref(), &args)
}

fn evaluate_data(classifier: &Classifier, spec: &DataSpec, data_root: Option<&Path>, args: &EvalArgs) -> Result<()> {
    let dataset = data::open_eval(spec, data_root)?;
    let classes = dataset.num_classes();
    if let Some(model_classes) = classifier.spec().map(|s| s.num_classes()).filter(|&c| c != classes) {
        bail!("the model has {model_classes} classes, the data set {classes}: set the model's with --set num_classes={classes}");
    }
    // With --dump, keep what was evaluated for scripted comparisons.
    let mut kept: [Vec<Tensor>; 3] = Default::default();
    let keep = args.dump.is_some();
    let report =
        evaluate(classifier, dataset, LoaderConfig::eval(args.batch_size, args.workers), true, |batch, logits| {
            if keep {
                kept[0].push(batch.images.shallow_clone());
                kept[1].push(batch.labels.shallow_clone());
                kept[2].push(logits.to_device(tch::Device::Cpu));
            }
            Ok(())
        })?;
    if let Some(dir) = &args.dump {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, parts) in ["images", "labels", "logits"].iter().zip(&kept) {
            npy::write(&dir.join(format!("{name}.npy")), &Tensor::cat(parts, 0))?;
        }
    }
    let skipped = &report.skipped;
    if skipped.count > 0 {
        eprintln!("skipped {} unreadable images, e.g. {}", skipped.count, skipped.examples.join("; "));
    }
    let m = report.metrics;
    if m.samples == 0 {
        bail!("the data set has no images to evaluate");
    }
    println!(
        "images={} top1_err={:.2} top5_err={:.2} loss={:.4} images_per_s={:.1}",
        m.samples,
        m.top1_err(),
        m.top5_err(),
        m.loss(),
        report.images_per_s
    );
    Ok(())
}

fn dump_logits(classifier: &Classifier, input: &Path, output: &Path) -> Result<()> {
    let images = npy::read_f32(input)?;
    let start = std::time::Instant::now();
    let logits = classifier.logits(&images)?;
    let seconds = start.elapsed().as_secs_f64();
    npy::write(output, &logits)?;
    println!(
        "logits {:?} written to {} ({:.1} images/s)",
        logits.size(),
        output.display(),
        images.size()[0] as f64 / seconds.max(f64::MIN_POSITIVE)
    );
    Ok(())
}
