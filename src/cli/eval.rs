//! `sk-exp eval`: top-1/top-5 error, loss and images/s of a TorchScript file or of one of our models
//! with its weights; or, with `--input`, the logits of a raw NCHW tensor for scripted comparisons.
use anyhow::{bail, Result};
use clap::Args;
use sk_exp::eval::Classifier;
use sk_exp::interop::npy;
use sk_exp::models::{registry, ModelSpec};
use sk_exp::overrides;
use std::path::PathBuf;

/// Which classifier to run: a TorchScript file, or a registered model with its weights.
#[derive(Args)]
pub struct SourceArgs {
    /// A TorchScript file (as `torch.jit.save` or `sk-exp export` writes it).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["model", "weights", "set"], required_unless_present = "model")]
    torchscript: Option<PathBuf>,
    /// A registered model name (see `sk-exp models`).
    #[arg(long)]
    model: Option<String>,
    /// The model's weights: a safetensors file with PyTorch (timm/torchvision) key names, or a run,
    /// checkpoint or export folder holding one.
    #[arg(long, value_name = "PATH")]
    weights: Option<PathBuf>,
    /// Change a field of the model's spec, e.g. `--set num_classes=10` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl SourceArgs {
    /// The model's spec with the `--set` assignments applied; None for a TorchScript file.
    pub fn spec(&self) -> Result<Option<ModelSpec>> {
        self.model.as_deref().map(|name| resolve_spec(name, &self.set)).transpose()
    }

    pub fn load(&self) -> Result<Classifier> {
        let device = sk_exp::parse_device(&self.device)?;
        match (&self.torchscript, self.spec()?) {
            (Some(path), _) => Classifier::torchscript(path, device),
            (None, Some(spec)) => {
                if self.weights.is_none() {
                    eprintln!("note: no --weights given: the model keeps its random initialisation");
                }
                Classifier::ours(&spec, self.weights.as_deref(), device)
            }
            (None, None) => bail!("give --torchscript FILE or --model NAME"),
        }
    }
}

/// A registered model's spec with `key=value` assignments (dotted keys, YAML values) applied.
pub fn resolve_spec(name: &str, assignments: &[String]) -> Result<ModelSpec> {
    let spec = registry::resolve(name, None)?;
    if assignments.is_empty() {
        return Ok(spec);
    }
    let mut tree = yaml_serde::to_value(&spec)?;
    for assignment in assignments {
        let (key, value) = overrides::parse_assignment(assignment)?;
        overrides::set_dotted(&mut tree, &key, value)?;
    }
    yaml_serde::from_value(tree).map_err(|e| anyhow::anyhow!("model '{name}' with --set: {e}"))
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    source: SourceArgs,
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
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    let classifier = args.source.load()?;
    match (&args.input, &args.dump_logits) {
        (Some(input), Some(output)) => dump_logits(&classifier, input, output),
        _ => bail!("give --input FILE.npy --dump-logits FILE.npy"),
    }
}

fn dump_logits(classifier: &Classifier, input: &std::path::Path, output: &std::path::Path) -> Result<()> {
    let images = npy::read_f32(input)?;
    let start = std::time::Instant::now();
    let logits = classifier.logits(&images)?;
    let seconds = start.elapsed().as_secs_f64();
    npy::write_f32(output, &logits)?;
    println!(
        "logits {:?} written to {} ({:.1} images/s)",
        logits.size(),
        output.display(),
        images.size()[0] as f64 / seconds.max(f64::MIN_POSITIVE)
    );
    Ok(())
}
