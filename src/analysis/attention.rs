//! The attention analysis: how the SK units' selection weights move when the central object is enlarged.
//! Per unit, the attention difference is the mean over channels of (larger-kernel weight - smaller-kernel
//! weight), for each image; the paper's finding is that it grows with the object's size in early stages.
use crate::models::attention::UnitAttention;
use crate::models::ModelSpec;
use crate::util::csv_file::{four_decimals, six_decimals};
use crate::util::stats::{index_or_push, mean_std};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// Enlarges the central object: crop the centre 1/scale of each side, resize back (bilinear).
pub fn zoom_center(images: &Tensor, scale: f64) -> Result<Tensor> {
    if !(scale.is_finite() && scale >= 1.0) {
        bail!("scale {scale}: expected a number >= 1.0 (the object is enlarged, never shrunk)");
    }
    let (_, _, h, w) = images.size4()?;
    if scale == 1.0 {
        return Ok(images.shallow_clone());
    }
    let (ch, cw) = (((h as f64) / scale).round() as i64, ((w as f64) / scale).round() as i64);
    if ch < 2 || cw < 2 {
        bail!("scale {scale}: the centre crop of a {h}x{w} image would be under 2 pixels wide");
    }
    let crop = images.narrow(2, (h - ch) / 2, ch).narrow(3, (w - cw) / 2, cw);
    Ok(crop.upsample_bilinear2d([h, w], false, None, None))
}

/// The (smaller, larger) kernel's path indices of a model's SK units: the paths with the smallest and the
/// largest effective kernel (3x3 and "5x5" by default); an error for a model without them.
pub fn kernel_paths(spec: &ModelSpec) -> Result<(usize, usize)> {
    let sk = spec.sk().context("the attention analysis needs a model with SK units (its spec has no `sk`)")?;
    let kernels: Vec<i64> = sk.paths.iter().map(|p| p.effective_kernel()).collect();
    let small = (0..kernels.len()).min_by_key(|&i| kernels[i]).unwrap_or(0);
    let large = (0..kernels.len()).max_by_key(|&i| kernels[i]).unwrap_or(0);
    if kernels.is_empty() || kernels[small] == kernels[large] {
        bail!("model.sk.paths: the attention analysis needs paths of different kernel sizes, got {kernels:?}");
    }
    if !sk.select {
        bail!("model.sk.select is off: the units have no selection weights to analyse");
    }
    Ok((small, large))
}

/// Per-image attention differences, per class, and per-channel larger-kernel weights, gathered over batches.
/// Units and scales keep the order they were first seen in (forward order; the order of the scales given).
#[derive(Default)]
pub struct AttentionStats {
    units: Vec<String>,
    scales: Vec<String>,
    /// (unit, scale) -> per-image differences.
    diffs: BTreeMap<(usize, usize), Vec<f64>>,
    /// (unit, scale, class) -> per-image differences.
    class_diffs: BTreeMap<(usize, usize, i64), Vec<f64>>,
    /// (unit, scale) -> summed per-channel larger-kernel weights and image count.
    channel_sums: BTreeMap<(usize, usize), (Vec<f64>, usize)>,
}

/// One unit at one scale: mean and sample std over images of the attention difference (attention_units.csv).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitRow {
    pub unit: String,
    pub scale: String,
    pub n: usize,
    #[serde(rename = "mean_diff", serialize_with = "six_decimals")]
    pub mean: f64,
    /// None for a single image.
    #[serde(rename = "std_diff", serialize_with = "six_decimals")]
    pub std: Option<f64>,
}

pub const UNIT_HEADER: [&str; 5] = ["unit", "scale", "n", "mean_diff", "std_diff"];

/// The mean attention difference over one class's images, for one unit at one scale (attention_classes.csv).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassRow {
    pub unit: String,
    pub scale: String,
    pub class: i64,
    pub n: usize,
    #[serde(rename = "mean_diff", serialize_with = "six_decimals")]
    pub mean: f64,
}

pub const CLASS_HEADER: [&str; 5] = ["unit", "scale", "class", "n", "mean_diff"];

/// How one unit's attention difference moves from the first scale to another, image by image (the same
/// images are seen at every scale, so the change is paired).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShiftRow {
    pub unit: String,
    pub scale: String,
    /// The scale compared against (the first one).
    pub baseline: String,
    pub n: usize,
    /// Mean over images of (difference at `scale` - difference at `baseline`).
    #[serde(serialize_with = "six_decimals")]
    pub mean_change: f64,
    /// Standard error of that mean (sample std / sqrt(n)); None for a single image.
    #[serde(rename = "stderr_change", serialize_with = "six_decimals")]
    pub stderr: Option<f64>,
    /// Share of the images whose difference grew.
    #[serde(serialize_with = "four_decimals")]
    pub frac_increased: f64,
}

pub const SHIFT_HEADER: [&str; 7] =
    ["unit", "scale", "baseline", "n", "mean_change", "stderr_change", "frac_increased"];

/// The larger-kernel weight of one unit, averaged over images and over one group of channels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelRow {
    pub unit: String,
    pub scale: String,
    /// Channels [group * size, (group + 1) * size).
    #[serde(rename = "channel_group")]
    pub group: usize,
    #[serde(rename = "mean_large_weight", serialize_with = "six_decimals")]
    pub mean_weight: f64,
}

pub const CHANNEL_HEADER: [&str; 4] = ["unit", "scale", "channel_group", "mean_large_weight"];

impl AttentionStats {
    /// Adds one batch's records (as record_attention returned them) for images with `labels` seen at `scale`;
    /// `paths` are the (smaller, larger) kernel's path indices.
    pub fn add(&mut self, records: &[UnitAttention], labels: &[i64], scale: &str, paths: (usize, usize)) -> Result<()> {
        let (small, large) = paths;
        let s = index_or_push(&mut self.scales, scale);
        for record in records {
            let unit = index_or_push(&mut self.units, &record.label);
            let w = record.weights.to_device(Device::Cpu).to_kind(Kind::Double);
            let (n, _, c) = w.size3()?;
            if n as usize != labels.len() {
                bail!("attention record {}: {n} images but {} labels", record.label, labels.len());
            }
            let large_w = w.select(1, large as i64);
            let diff: Vec<f64> = Vec::try_from((&large_w - w.select(1, small as i64)).mean_dim(1, false, None))?;
            let channel_sum: Vec<f64> = Vec::try_from(large_w.sum_dim_intlist(0, false, None))?;
            self.diffs.entry((unit, s)).or_default().extend(&diff);
            for (d, &label) in diff.iter().zip(labels) {
                self.class_diffs.entry((unit, s, label)).or_default().push(*d);
            }
            let entry = self.channel_sums.entry((unit, s)).or_insert_with(|| (vec![0.0; c as usize], 0));
            if entry.0.len() != c as usize {
                bail!("attention record {}: {c} channels, earlier batches had {}", record.label, entry.0.len());
            }
            entry.0.iter_mut().zip(&channel_sum).for_each(|(acc, v)| *acc += v);
            entry.1 += n as usize;
        }
        Ok(())
    }

    /// Unit labels in forward order.
    pub fn units(&self) -> &[String] {
        &self.units
    }

    /// Scale keys in the order they were added.
    pub fn scales(&self) -> &[String] {
        &self.scales
    }

    /// Mean and std over images of the attention difference, per unit (forward order) and scale.
    pub fn unit_rows(&self) -> Vec<UnitRow> {
        self.diffs
            .iter()
            .map(|(&(unit, scale), values)| {
                let (mean, std) = mean_std(values);
                UnitRow {
                    unit: self.units[unit].clone(),
                    scale: self.scales[scale].clone(),
                    n: values.len(),
                    mean,
                    std,
                }
            })
            .collect()
    }

    /// The paired change of every unit's attention difference from the first scale to each later one.
    pub fn shift_rows(&self) -> Vec<ShiftRow> {
        let mut rows = Vec::new();
        for (u, unit) in self.units.iter().enumerate() {
            let Some(base) = self.diffs.get(&(u, 0)) else { continue };
            for (s, scale) in self.scales.iter().enumerate().skip(1) {
                let Some(values) = self.diffs.get(&(u, s)) else { continue };
                let changes: Vec<f64> = values.iter().zip(base).map(|(v, b)| v - b).collect();
                let (mean_change, std) = mean_std(&changes);
                let n = changes.len();
                rows.push(ShiftRow {
                    unit: unit.clone(),
                    scale: scale.clone(),
                    baseline: self.scales[0].clone(),
                    n,
                    mean_change,
                    stderr: std.map(|sd| sd / (n as f64).sqrt()),
                    frac_increased: changes.iter().filter(|c| **c > 0.0).count() as f64 / n.max(1) as f64,
                });
            }
        }
        rows
    }

    /// Mean attention difference per unit, scale and class.
    pub fn class_rows(&self) -> Vec<ClassRow> {
        self.class_diffs
            .iter()
            .map(|(&(unit, scale, class), values)| ClassRow {
                unit: self.units[unit].clone(),
                scale: self.scales[scale].clone(),
                class,
                n: values.len(),
                mean: mean_std(values).0,
            })
            .collect()
    }

    /// The larger-kernel weight of `unit` per channel, averaged over images and over groups of `group`
    /// channels (Figure 3's per-channel curve); the last group may be smaller.
    pub fn channel_rows(&self, unit: &str, group: usize) -> Result<Vec<ChannelRow>> {
        if group == 0 {
            bail!("group: expected at least 1 channel per group");
        }
        let Some(index) = self.units.iter().position(|u| u == unit) else {
            bail!("unit '{unit}' is not in this model; its SK units are {}", self.units.join(", "));
        };
        let mut rows = Vec::new();
        for (&(u, scale), (sums, n)) in &self.channel_sums {
            if u != index {
                continue;
            }
            for (g, chunk) in sums.chunks(group).enumerate() {
                rows.push(ChannelRow {
                    unit: unit.to_string(),
                    scale: self.scales[scale].clone(),
                    group: g,
                    mean_weight: chunk.iter().sum::<f64>() / (chunk.len() * n) as f64,
                });
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_two_x_doubles_a_centred_square() {
        // A 4x4 bright square in the middle of an 16x16 image becomes 8x8 after a 2x zoom.
        let img = Tensor::zeros([1, 1, 16, 16], (Kind::Float, Device::Cpu));
        let _ = img.narrow(2, 6, 4).narrow(3, 6, 4).fill_(1.0);
        let zoomed = zoom_center(&img, 2.0).unwrap();
        let bright = zoomed.gt(0.5).sum(Kind::Int64).int64_value(&[]);
        assert_eq!(bright, 64);
        assert!(zoom_center(&img, 0.5).is_err());
        assert!(zoom_center(&img, f64::NAN).is_err());
        assert!(zoom_center(&img, 20.0).is_err());
    }

    #[test]
    fn differences_are_large_minus_small_averaged_over_channels() {
        // Two images, two paths, two channels: weights of path 1 (large) are (0.75, 0.5) and (0.25, 0.5).
        let w = Tensor::from_slice(&[0.25f32, 0.5, 0.75, 0.5, 0.75, 0.5, 0.25, 0.5]).view([2, 2, 2]);
        let rec = UnitAttention { label: "SK_2_1".into(), weights: w };
        let mut stats = AttentionStats::default();
        stats.add(&[rec], &[3, 4], "1.0x", (0, 1)).unwrap();
        let rows = stats.unit_rows();
        assert_eq!(rows.len(), 1);
        // image 0: ((0.75-0.25) + (0.5-0.5)) / 2 = 0.25; image 1: ((0.25-0.75) + 0) / 2 = -0.25
        assert!((rows[0].mean - 0.0).abs() < 1e-12);
        assert!((rows[0].std.unwrap() - (0.125f64).sqrt()).abs() < 1e-12);
        let classes = stats.class_rows();
        assert_eq!((classes[0].class, classes[1].class), (3, 4));
        assert!((classes[0].mean - 0.25).abs() < 1e-12 && (classes[1].mean + 0.25).abs() < 1e-12);
        let channels = stats.channel_rows("SK_2_1", 1).unwrap();
        assert!((channels[0].mean_weight - 0.5).abs() < 1e-12 && (channels[1].mean_weight - 0.5).abs() < 1e-12);
        let grouped = stats.channel_rows("SK_2_1", 2).unwrap();
        assert_eq!(grouped.len(), 1);
        assert!(stats.channel_rows("SK_9_9", 2).unwrap_err().to_string().contains("SK_2_1"));
    }

    #[test]
    fn scales_keep_the_order_they_were_given() {
        let mut stats = AttentionStats::default();
        for scale in ["2.0x", "1.0x", "10.0x"] {
            let rec = UnitAttention {
                label: "SK_2_1".into(),
                weights: Tensor::full([1, 2, 4], 0.5, (Kind::Float, Device::Cpu)),
            };
            stats.add(&[rec], &[0], scale, (0, 1)).unwrap();
        }
        let order: Vec<String> = stats.unit_rows().into_iter().map(|r| r.scale).collect();
        assert_eq!(order, ["2.0x", "1.0x", "10.0x"]);
    }

    #[test]
    fn shifts_pair_each_image_with_itself_at_the_first_scale() {
        // Image differences at 1.0x: (0.1, -0.2, 0.0); at 2.0x: (0.2, -0.1, -0.1) -> changes (0.1, 0.1, -0.1).
        let record = |diffs: &[f32]| {
            let w: Vec<f32> = diffs.iter().flat_map(|d| [0.5 - d / 2.0, 0.5 + d / 2.0]).collect();
            UnitAttention { label: "SK_2_1".into(), weights: Tensor::from_slice(&w).view([diffs.len() as i64, 2, 1]) }
        };
        let mut stats = AttentionStats::default();
        stats.add(&[record(&[0.1, -0.2, 0.0])], &[0, 1, 2], "1.0x", (0, 1)).unwrap();
        stats.add(&[record(&[0.2, -0.1, -0.1])], &[0, 1, 2], "2.0x", (0, 1)).unwrap();
        let rows = stats.shift_rows();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.scale.as_str(), r.baseline.as_str(), r.n), ("2.0x", "1.0x", 3));
        assert!((r.mean_change - 0.1 / 3.0).abs() < 1e-6);
        // Sample std of (0.1, 0.1, -0.1) is sqrt(0.04 / 3); over sqrt(3).
        assert!((r.stderr.unwrap() - (0.04f64 / 3.0).sqrt() / 3f64.sqrt()).abs() < 1e-6);
        assert!((r.frac_increased - 2.0 / 3.0).abs() < 1e-12);
    }
}
