//! `sk-exp export`: a model with its weights, written for PyTorch as a safetensors state_dict and as
//! TorchScript (`torch.jit.load` runs it without sk-exp).
use super::common::{check_size, model_and_weights};
use anyhow::Result;
use clap::Args;
use sk_exp::interop::export;
use sk_exp::models::{self, LoadedModel};
use std::path::PathBuf;
use tch::Device;

#[derive(Args)]
pub struct ExportArgs {
    /// A training run's folder: its model (its run file) with its last checkpoint's weights.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "weights"], required_unless_present = "model")]
    run: Option<PathBuf>,
    /// A registered model name (see `sk-exp models`).
    #[arg(long, requires = "weights")]
    model: Option<String>,
    /// The weights: a safetensors or torch.save (.pth/.pt) file with PyTorch key names, a run or checkpoint
    /// folder holding one, or hf:OWNER/NAME (hf:default: the model's timm weights) from the Hugging Face cache.
    #[arg(long, value_name = "PATH")]
    weights: Option<PathBuf>,
    /// Change a field of the model's spec, e.g. `--set num_classes=10` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Output folder; receives model.safetensors and model.pt.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Input side the TorchScript is traced at; default the model's native size.
    #[arg(long)]
    size: Option<i64>,
}

pub fn run(args: ExportArgs) -> Result<()> {
    // Clap requires --weights with --model, so there are always weights.
    if let Some(size) = args.size {
        check_size("--size", size)?;
    }
    let (spec, weights) =
        model_and_weights(args.run.as_deref(), args.model.as_deref(), args.weights.as_deref(), &args.set)?;
    let LoadedModel { model, mut vs } = models::load(&spec, weights.as_deref(), Device::Cpu)?;
    let size = args.size.unwrap_or(spec.input_size());
    let exported = export::export(&model, &mut vs, &args.out, size)?;
    println!("weights     {}", exported.weights.display());
    println!(
        "TorchScript {} (traced at {size}x{size}; reloaded logits differ by {:.1e} relative)",
        exported.torchscript.display(),
        exported.check_difference
    );
    Ok(())
}
