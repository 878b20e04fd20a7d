//! The attention analysis' forward passes: a model with its weights over a data set's evaluation images at
//! every object scale, its SK units' selection weights gathered into [`AttentionStats`]. `sk-exp attention`
//! and an experiment's `analysis: {attention: ...}` section run it; `report::attention` writes the result.
use super::attention::{kernel_paths, zoom_center, AttentionStats};
use crate::data::loader::{batches, LoaderConfig};
use crate::data::spec::DataSpec;
use crate::data::synthetic::{Subset, Synthetic};
use crate::data::{self, Dataset};
use crate::models::attention::record_attention;
use crate::models::Model;
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// What to analyse and how: the `analysis.attention` section of an experiment file, and the flags of
/// `sk-exp attention`. Fields left out take their defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct AttentionSpec {
    /// Object enlargements (centre crop 1/scale, resized back), comma-separated; the paper's are 1.0, 1.5, 2.0.
    #[arg(long, value_delimiter = ',', default_value = "1.0,1.5,2.0")]
    pub scales: Vec<f64>,
    /// The unit of the per-channel curve; default SK_3_4 (the paper's) where the model has it, else the
    /// middle unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[arg(long)]
    pub unit: Option<String>,
    /// Channels averaged together in the per-channel curve.
    #[arg(long, default_value_t = default_group())]
    pub group: usize,
    /// Analyse only the first N images of the evaluation set.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = default_batch_size())]
    pub batch_size: usize,
    /// `resize` (the paper's centre crop + resize) or `render` (synthetic data: the scene drawn zoomed).
    #[arg(long, default_value = "resize", value_parser = parse_zoom)]
    pub zoom: Zoom,
}

fn default_group() -> usize {
    16
}
fn default_batch_size() -> usize {
    50
}

impl Default for AttentionSpec {
    fn default() -> Self {
        AttentionSpec {
            // The paper's object enlargements (Figures 3 and 4).
            scales: vec![1.0, 1.5, 2.0],
            unit: None,
            group: default_group(),
            limit: None,
            batch_size: default_batch_size(),
            zoom: Zoom::default(),
        }
    }
}

/// How the central object is enlarged.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Zoom {
    /// The paper's: crop the centre 1/scale of the image, resize it back (bilinear).
    #[default]
    Resize,
    /// The synthetic set only: draw the scene zoomed at full resolution (no blur from resizing).
    Render,
}

/// `--zoom`: the flag's value, with a one-line error naming the choices.
fn parse_zoom(value: &str) -> Result<Zoom, String> {
    match value {
        "resize" => Ok(Zoom::Resize),
        "render" => Ok(Zoom::Render),
        _ => Err(format!("'{value}': expected resize or render")),
    }
}

impl AttentionSpec {
    pub fn validate(&self) -> Result<()> {
        if self.scales.is_empty() {
            bail!("scales: expected at least one scale, e.g. [1.0, 1.5, 2.0]");
        }
        if let Some(bad) = self.scales.iter().find(|s| !(s.is_finite() && **s >= 1.0)) {
            bail!("scales: {bad} is not an enlargement (expected numbers >= 1.0)");
        }
        if self.group == 0 || self.batch_size == 0 || self.limit == Some(0) {
            bail!("group, batch_size and limit: expected at least 1");
        }
        Ok(())
    }
}

/// The scale as written in CSVs and legends (1.0 -> "1.0x", 1.25 -> "1.25x").
pub fn scale_key(scale: f64) -> String {
    let text = format!("{scale:.2}");
    let text = text.trim_end_matches('0');
    if text.ends_with('.') {
        format!("{text}0x")
    } else {
        format!("{text}x")
    }
}

/// The images to analyse: a data set's evaluation split, and for the built-in set its renderer.
pub struct AnalysisData {
    pub dataset: Arc<dyn Dataset>,
    synthetic: Option<Synthetic>,
}

impl AnalysisData {
    pub fn open(spec: &DataSpec, data_root: Option<&Path>) -> Result<AnalysisData> {
        AnalysisData::of(spec, data::open_eval(spec, data_root)?)
    }

    /// `spec`'s evaluation set, already open.
    pub fn of(spec: &DataSpec, dataset: Arc<dyn Dataset>) -> Result<AnalysisData> {
        let synthetic = match spec {
            DataSpec::Synthetic(s) => Some(Synthetic::new(s, Subset::Eval)?),
            _ => None,
        };
        Ok(AnalysisData { dataset, synthetic })
    }
}

/// Forward passes over the data at every scale, recording every SK unit's selection weights.
pub fn analyse(
    model: &Model,
    data: &AnalysisData,
    spec: &AttentionSpec,
    device: Device,
    progress: bool,
) -> Result<AttentionStats> {
    spec.validate()?;
    let paths = kernel_paths(&model.spec)?;
    let renderer = match (spec.zoom, &data.synthetic) {
        (Zoom::Resize, _) => None,
        (Zoom::Render, Some(s)) => Some(s),
        (Zoom::Render, None) => bail!("zoom: render draws synthetic scenes; with other data use zoom: resize"),
    };
    let total = spec.limit.unwrap_or(usize::MAX).min(data.dataset.len());
    let bar = if progress { ProgressBar::new(total as u64) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("attention {bar:30} {pos}/{len} images  {per_sec}  ETA {eta}")?);
    let mut stats = AttentionStats::default();
    let mut seen = 0usize;
    let workers = if renderer.is_some() { 0 } else { 2 };
    for batch in batches(data.dataset.clone(), LoaderConfig::eval(spec.batch_size, workers))? {
        if seen >= total {
            break;
        }
        let batch = batch?;
        let take = (total - seen).min(batch.labels.size()[0] as usize);
        let images = batch.images.narrow(0, 0, take as i64);
        let labels: Vec<i64> = Vec::try_from(batch.labels.narrow(0, 0, take as i64).to_kind(Kind::Int64))?;
        for &scale in &spec.scales {
            let zoomed = match renderer {
                // The evaluation order is the data set's, so this batch holds images seen..seen + take.
                Some(s) => render_batch(s, seen..seen + take, scale)?,
                None => zoom_center(&images, scale)?,
            };
            let zoomed = zoomed.to_device(device);
            let (forward, records) = record_attention(|| tch::no_grad(|| model.forward_t(&zoomed, false)));
            let _logits = forward?;
            stats.add(&records, &labels, &scale_key(scale), paths)?;
        }
        seen += take;
        bar.set_position(seen as u64);
    }
    bar.finish_and_clear();
    if seen == 0 {
        bail!("the data set has no images to analyse");
    }
    Ok(stats)
}

fn render_batch(synthetic: &Synthetic, indices: std::ops::Range<usize>, scale: f64) -> Result<Tensor> {
    let (h, w) = synthetic.image_size();
    let mut pixels = Vec::with_capacity(indices.len() * (3 * h * w) as usize);
    let n = indices.len() as i64;
    for index in indices {
        pixels.extend(synthetic.zoomed_sample(index, scale)?.pixels);
    }
    Ok(Tensor::from_slice(&pixels).view([n, 3, h, w]))
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

/// The last unit of each stage (the paper's Figure 4 shows SK_2_3, SK_3_4, SK_4_6 and SK_5_3 of SKNet-50).
pub fn last_unit_of_each_stage(units: &[String]) -> Vec<String> {
    let stage = |u: &str| u.split('_').nth(1).map(str::to_string);
    let mut last = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        if units.get(i + 1).is_none_or(|next| stage(next) != stage(unit)) {
            last.push(unit.clone());
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_keys_keep_needed_digits_only() {
        assert_eq!(scale_key(1.0), "1.0x");
        assert_eq!(scale_key(1.5), "1.5x");
        assert_eq!(scale_key(1.25), "1.25x");
        assert_eq!(scale_key(2.0), "2.0x");
    }

    #[test]
    fn the_last_unit_of_each_stage_is_the_papers_choice() {
        let units: Vec<String> = [(2, 3), (3, 4), (4, 6), (5, 3)]
            .iter()
            .flat_map(|&(stage, blocks)| (1..=blocks).map(move |b| format!("SK_{stage}_{b}")))
            .collect();
        assert_eq!(last_unit_of_each_stage(&units), ["SK_2_3", "SK_3_4", "SK_4_6", "SK_5_3"]);
    }

    #[test]
    fn bad_specs_name_the_field() {
        let bad = AttentionSpec { scales: vec![1.0, 0.5], ..AttentionSpec::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("scales: 0.5"));
        let spec: AttentionSpec = yaml_serde::from_str("{scales: [1.0, 2.0], unit: SK_3_1, zoom: render}").unwrap();
        assert_eq!((spec.group, spec.zoom), (16, Zoom::Render));
        assert!(yaml_serde::from_str::<AttentionSpec>("{scale: [1.0]}").is_err());
    }
}
