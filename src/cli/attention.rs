//! `sk-exp attention`: the attention analysis of Figures 3 and 4 for a model with its weights (or a
//! training run): how much weight the SK units give the larger kernel as the central object is enlarged.
use super::common::{data_spec, resolve_spec, run_config};
use anyhow::{Context, Result};
use clap::Args;
use sk_exp::analysis::attention::AttentionStats;
use sk_exp::analysis::attention_report::{kernel_paths, report, AnalysisData, AttentionSpec, Zoom};
use std::path::PathBuf;

#[derive(Args)]
pub struct AttentionArgs {
    /// A registered model name (see `sk-exp models`).
    #[arg(long, required_unless_present = "run", conflicts_with = "run")]
    model: Option<String>,
    /// Change a field of the model's spec, e.g. `--set num_classes=10` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "model")]
    set: Vec<String>,
    /// The model's weights: a safetensors file with PyTorch (timm/torchvision) key names, or a run,
    /// checkpoint or export folder holding one. With --run, default: the run's last checkpoint.
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
    #[arg(long, default_value_t = 224)]
    crop: usize,
    /// Image folders: shorter side after resizing, before the crop; default crop / 0.875.
    #[arg(long)]
    resize: Option<usize>,
    /// Object enlargements (centre crop 1/scale, resized back), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1.0,1.5,2.0")]
    scales: Vec<f64>,
    /// `resize` (the paper's centre crop + resize) or `render` (synthetic data: the scene drawn zoomed).
    #[arg(long, default_value = "resize", value_parser = parse_zoom)]
    zoom: Zoom,
    /// The unit of the per-channel curve; default SK_3_4 where the model has it, else its middle unit.
    #[arg(long)]
    unit: Option<String>,
    /// Channels averaged together in the per-channel curve.
    #[arg(long, default_value_t = 16)]
    group: usize,
    /// Analyse only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
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

fn parse_zoom(value: &str) -> Result<Zoom, String> {
    match value {
        "resize" => Ok(Zoom::Resize),
        "render" => Ok(Zoom::Render),
        _ => Err(format!("'{value}': expected resize or render")),
    }
}

pub fn run(args: AttentionArgs) -> Result<()> {
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    let device = sk_exp::device::parse(&args.device)?;
    let spec = AttentionSpec {
        scales: args.scales.clone(),
        unit: args.unit.clone(),
        group: args.group,
        limit: args.limit,
        batch_size: args.batch_size,
        zoom: args.zoom,
    };
    spec.validate().context("--scales/--group/--batch-size/--limit")?;
    let given_data = args.data.as_deref().map(|d| data_spec(d, args.crop, args.resize)).transpose()?;
    let (model_spec, weights, data, out, title) = match &args.run {
        Some(run_dir) => {
            let config = run_config(run_dir)?;
            let data_root = args.data_root.as_deref().or(config.data_root.as_deref());
            // The run's data gives its model's class count; the analysis may use other images.
            let run_data =
                AnalysisData::open(&config.data, data_root).context("the run's data (for its class count)")?;
            let model_spec = config.model_spec(run_data.dataset.num_classes())?;
            let data = match &given_data {
                Some(d) => AnalysisData::open(d, None)?,
                None => run_data,
            };
            let weights = args.weights.clone().unwrap_or_else(|| run_dir.clone());
            let out = args.out.clone().unwrap_or_else(|| run_dir.join("attention"));
            let title = format!("{} (seed {})", config.model.name, config.seed);
            (model_spec, weights, data, out, title)
        }
        None => {
            let name = args.model.as_deref().context("--model or --run is required")?;
            let model_spec = resolve_spec(name, &args.set)?;
            let data = AnalysisData::open(given_data.as_ref().context("--data is required")?, None)?;
            let weights = args.weights.clone().context("--weights is required")?;
            (model_spec, weights, data, args.out.clone().context("--out is required")?, name.to_string())
        }
    };
    kernel_paths(&model_spec)?;
    let loaded = sk_exp::models::load(&model_spec, Some(&weights), device)?;
    let (stats, written) = report(&loaded.model, &data, &spec, device, &out, &title, !args.quiet)?;
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
