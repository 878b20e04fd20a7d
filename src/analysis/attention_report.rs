//! Runs the attention analysis over a data set and writes its CSV files.
use super::attention::{small_and_large_paths, zoom_center, AttentionStats};
use crate::data::loader::{batches, LoaderConfig};
use crate::data::Dataset;
use crate::models::{Model, ModelSpec};
use crate::train::checkpoint::write_atomic;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Kind};

pub struct AttentionOptions {
    /// Object enlargements, e.g. [1.0, 1.5, 2.0].
    pub scales: Vec<f64>,
    pub batch_size: usize,
    /// Analyse only the first N images of the data set.
    pub limit: Option<usize>,
    pub workers: usize,
    pub device: Device,
}

/// The scale as written in file names and CSVs (1.0 -> "1.0x").
pub fn scale_key(scale: f64) -> String {
    format!("{scale:.1}x")
}

/// The SK spec of a model; the analysis needs one.
fn sk_spec(spec: &ModelSpec) -> Result<&crate::models::sk::SkSpec> {
    spec.sk().context("the attention analysis needs a model with SK units (model.sk is not set)")
}

/// Forward passes over the data set at every scale, recording every SK unit's selection weights.
pub fn analyse(model: &Model, dataset: Arc<dyn Dataset>, options: &AttentionOptions) -> Result<AttentionStats> {
    let paths = small_and_large_paths(sk_spec(&model.spec)?)?;
    if options.scales.is_empty() {
        bail!("--scales: expected at least one scale");
    }
    let total = options.limit.unwrap_or(usize::MAX).min(dataset.len());
    let mut stats = AttentionStats::default();
    let progress = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("attention {bar:30} {pos}/{len} images  {per_sec}  ETA {eta}").unwrap(),
    );
    let mut seen = 0usize;
    for batch in batches(dataset, LoaderConfig::eval(options.batch_size, options.workers))? {
        if seen >= total {
            break;
        }
        let batch = batch?;
        let take = (total - seen).min(batch.labels.size()[0] as usize) as i64;
        let images = batch.images.narrow(0, 0, take).to_device(options.device);
        let labels: Vec<i64> = Vec::try_from(batch.labels.narrow(0, 0, take).to_kind(Kind::Int64))?;
        for &scale in &options.scales {
            let zoomed = zoom_center(&images, scale)?;
            model.probe.start();
            let forward = tch::no_grad(|| model.forward_t(&zoomed, false));
            let records = model.probe.finish();
            let _logits = forward?;
            stats.add(&records, &labels, &scale_key(scale), paths)?;
        }
        seen += take as usize;
        progress.set_position(seen as u64);
    }
    progress.finish_and_clear();
    if seen == 0 {
        bail!("the data set has no images to analyse");
    }
    Ok(stats)
}

/// Writes attention_units.csv, attention_classes.csv and attention_channels.csv (for `unit`, channels
/// averaged in groups of `group`) into `out_dir`; returns their paths.
pub fn write_csvs(stats: &AttentionStats, out_dir: &Path, unit: &str, group: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut units = String::from("unit,scale,n,mean_diff,std_diff\n");
    for r in stats.unit_rows() {
        writeln!(units, "{},{},{},{:.6},{:.6}", r.unit, r.scale, r.n, r.mean, r.std)?;
    }
    let mut classes = String::from("unit,scale,class,n,mean_diff\n");
    for (u, scale, class, n, mean) in stats.class_rows() {
        writeln!(classes, "{u},{scale},{class},{n},{mean:.6}")?;
    }
    let mut channels = String::from("unit,scale,channel_group,mean_large_weight\n");
    for (scale, g, w) in stats.channel_rows(unit, group)? {
        writeln!(channels, "{unit},{scale},{g},{w:.6}")?;
    }
    let files = [
        ("attention_units.csv", units),
        ("attention_classes.csv", classes),
        ("attention_channels.csv", channels),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = out_dir.join(name);
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// The unit for the per-channel curve: the paper's SK_3_4 when the model has it, else the middle unit.
pub fn default_unit(stats: &AttentionStats) -> String {
    let units = stats.units();
    if units.iter().any(|u| u == "SK_3_4") {
        "SK_3_4".into()
    } else {
        units.get(units.len() / 2).cloned().unwrap_or_default()
    }
}
