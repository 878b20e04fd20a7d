//! `sk-exp attention`: the attention analysis of Figures 3 and 4 for a model with its weights (or a
//! training run): how much weight the SK units give the larger kernel as the central object is enlarged.
use super::common::{model_and_weights, DEFAULT_CROP};
use anyhow::{bail, Context, Result};
use clap::Args;
use sk_exp::analysis::attention::{kernel_paths, AttentionStats};
use sk_exp::analysis::attention_pass::{analyse, AnalysisData, AttentionSpec};
use sk_exp::data::DataSpec;
use sk_exp::report::attention::{run_title, write_attention};
use sk_exp::train::run_dir::RunDir;
use std::path::PathBuf;

#[derive(Args)]
pub struct AttentionArgs {
    /// A registered model name (see `sk-exp models`).
    #[arg(long, required_unless_present = "run", conflicts_with = "run")]
    model: Option<String>,
    /// Change a field of the model's spec, e.g. `--set num_classes=10` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "model")]
    set: Vec<String>,
    /// The model's weights: a safetensors or torch.save (.pth/.pt) file with PyTorch (timm/torchvision) key
    /// names, a run, checkpoint or export folder holding one, or hf:OWNER/NAME (hf:default: the model's timm
    /// weights) from the Hugging Face cache. With --run, default: the run's last checkpoint.
    #[arg(long, value_name = "PATH", required_unless_present = "run")]
    weights: Option<PathBuf>,
    /// A training run folder (from `sk-exp train` or `sk-exp run`): its model, its data and its weights.
    #[arg(long, value_name = "RUN_DIR")]
    run: Option<PathBuf>,
    /// The images (their evaluation split): `synthetic`, a CIFAR folder, an ImageNet-style folder (holding
    /// val/<class>/...), or a YAML file with a `data:` section's fields. With --run, default: the run's data.
    #[arg(long, value_name = "SOURCE", required_unless_present = "run")]
    data: Option<String>,
    /// Relative paths of the run's data are taken from here.
    #[arg(long, requires = "run")]
    data_root: Option<PathBuf>,
    /// Image folders: side of the evaluation centre crop.
    #[arg(long, default_value_t = DEFAULT_CROP)]
    crop: usize,
    /// Image folders: shorter side after resizing, before the crop; default crop / 0.875.
    #[arg(long)]
    resize: Option<usize>,
    #[command(flatten)]
    spec: AttentionSpec,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Intra-op threads (libtorch's pool); default: libtorch's own choice.
    #[arg(long)]
    threads: Option<i32>,
    /// Output folder for the CSVs and figures; with --run, default RUN_DIR/attention.
    #[arg(long, required_unless_present = "run")]
    out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: AttentionArgs) -> Result<()> {
    super::common::set_threads(args.threads)?;
    let device = sk_exp::device::parse(&args.device)?;
    args.spec.validate().context("--scales/--group/--batch-size/--limit")?;
    // Clap requires --weights, --data and --out unless --run gives them: a run's last weights, its own
    // data and its attention folder.
    let (spec, weights) =
        model_and_weights(args.run.as_deref(), args.model.as_deref(), args.weights.as_deref(), &args.set)?;
    let run = args.run.as_deref().map(|dir| RunDir::new(dir).read_run()).transpose()?;
    let data = match (&args.data, &run) {
        (Some(source), _) => AnalysisData::open(&DataSpec::from_source(source, args.crop, args.resize)?, None)?,
        (None, Some(run)) => AnalysisData::open(&run.data, args.data_root.as_deref().or(run.data_root.as_deref()))
            .context("the run's data")?,
        (None, None) => bail!("--data is required"),
    };
    let out = match (&args.out, &args.run) {
        (Some(out), _) => out.clone(),
        (None, Some(dir)) => RunDir::new(dir).attention_dir(),
        (None, None) => bail!("--out is required"),
    };
    let title = match &run {
        Some(run) => run_title(&run.model.name, run.seed),
        None => args.model.clone().unwrap_or_default(),
    };
    kernel_paths(&spec)?;
    let loaded = sk_exp::models::load(&spec, weights.as_deref(), device)?;
    let stats = analyse(&loaded.model, &data, &args.spec, device, !args.quiet)?;
    let written = write_attention(&stats, &args.spec, &out, &title)?;
    print_summary(&stats);
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The attention difference per unit (rows) and scale (columns), mean ± std over images.
fn print_summary(stats: &AttentionStats) {
    let rows = stats.unit_rows();
    print!("{:<10}", "unit");
    for scale in stats.scales() {
        print!(" {:>19}", format!("{scale} mean ± std"));
    }
    println!();
    for unit in stats.units() {
        print!("{unit:<10}");
        for scale in stats.scales() {
            let cell = match rows.iter().find(|r| r.unit == *unit && r.scale == *scale) {
                Some(r) => format!("{:+.4} ± {:.4}", r.mean, r.std.unwrap_or(0.0)),
                None => "-".into(),
            };
            print!(" {cell:>19}");
        }
        println!();
    }
    let shifts = stats.shift_rows();
    if let Some(baseline) = shifts.first().map(|r| r.baseline.clone()) {
        println!("\nchange from {baseline}, image by image: mean ± standard error (share of images that rose)");
        for unit in stats.units() {
            print!("{unit:<10}");
            for r in shifts.iter().filter(|r| r.unit == *unit) {
                print!(
                    "  {}: {:+.4} ± {:.4} ({:.0}%)",
                    r.scale,
                    r.mean_change,
                    r.stderr.unwrap_or(0.0),
                    100.0 * r.frac_increased
                );
            }
            println!();
        }
    }
}
