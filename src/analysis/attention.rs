//! The attention analysis: how the SK units' selection weights move when the central object is enlarged.
//! Per unit, the attention difference is the mean over channels of (larger-kernel weight - smaller-kernel
//! weight), for each image; the paper's finding is that it grows with the object's size in early stages.
use crate::models::attention::UnitAttention;
use crate::models::sk::SkSpec;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// Enlarges the central object: crop the centre 1/scale of each side, resize back (bilinear).
pub fn zoom_center(images: &Tensor, scale: f64) -> Result<Tensor> {
    if scale < 1.0 {
        bail!("scale {scale}: expected >= 1.0 (the object is enlarged, never shrunk)");
    }
    let (_, _, h, w) = images.size4()?;
    if scale == 1.0 {
        return Ok(images.shallow_clone());
    }
    let (ch, cw) = (((h as f64) / scale).round() as i64, ((w as f64) / scale).round() as i64);
    let crop = images.narrow(2, (h - ch) / 2, ch).narrow(3, (w - cw) / 2, cw);
    Ok(crop.upsample_bilinear2d([h, w], false, None, None))
}

/// Indices of the paths with the smallest and the largest effective kernel (3x3 and "5x5" by default).
pub fn small_and_large_paths(sk: &SkSpec) -> Result<(usize, usize)> {
    let kernels: Vec<i64> = sk.paths.iter().map(|p| p.effective_kernel()).collect();
    let small = (0..kernels.len()).min_by_key(|&i| kernels[i]).unwrap_or(0);
    let large = (0..kernels.len()).max_by_key(|&i| kernels[i]).unwrap_or(0);
    if kernels[small] == kernels[large] {
        bail!("model.sk.paths: the attention analysis needs paths of different kernel sizes, got {kernels:?}");
    }
    Ok((small, large))
}

/// Per-image attention differences, per class, and per-channel larger-kernel weights, gathered over batches.
#[derive(Default)]
pub struct AttentionStats {
    /// (unit, scale key) -> per-image differences.
    diffs: BTreeMap<(usize, String), Vec<f64>>,
    /// (unit, scale key, class) -> per-image differences.
    class_diffs: BTreeMap<(usize, String, i64), Vec<f64>>,
    /// (unit, scale key) -> summed per-channel larger-kernel weights and image count.
    channel_sums: BTreeMap<(usize, String), (Vec<f64>, usize)>,
    /// Unit labels in forward order.
    units: Vec<String>,
}

/// Statistics of one unit at one scale.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitRow {
    pub unit: String,
    pub scale: String,
    pub n: usize,
    pub mean: f64,
    pub std: f64,
}

pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n;
    // Sample standard deviation (n - 1), 0 for a single value.
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

impl AttentionStats {
    /// Adds one batch's records (as the probe returned them) for images with `labels` seen at `scale`.
    pub fn add(&mut self, records: &[UnitAttention], labels: &[i64], scale: &str, paths: (usize, usize)) -> Result<()> {
        let (small, large) = paths;
        for record in records {
            let unit = match self.units.iter().position(|u| *u == record.label) {
                Some(i) => i,
                None => {
                    self.units.push(record.label.clone());
                    self.units.len() - 1
                }
            };
            let w = record.weights.to_kind(Kind::Double);
            let (n, _, c) = w.size3()?;
            if n as usize != labels.len() {
                bail!("attention record {}: {n} images but {} labels", record.label, labels.len());
            }
            let large_w = w.select(1, large as i64);
            let diff: Vec<f64> = Vec::try_from((&large_w - w.select(1, small as i64)).mean_dim(1, false, None))?;
            let channel_sum: Vec<f64> = Vec::try_from(large_w.sum_dim_intlist(0, false, None))?;
            let key = (unit, scale.to_string());
            self.diffs.entry(key.clone()).or_default().extend(&diff);
            for (d, &label) in diff.iter().zip(labels) {
                self.class_diffs.entry((unit, scale.to_string(), label)).or_default().push(*d);
            }
            let entry = self.channel_sums.entry(key).or_insert_with(|| (vec![0.0; c as usize], 0));
            entry.0.iter_mut().zip(&channel_sum).for_each(|(acc, v)| *acc += v);
            entry.1 += n as usize;
        }
        Ok(())
    }

    pub fn units(&self) -> &[String] {
        &self.units
    }

    /// Mean and std over images of the attention difference, per unit and scale.
    pub fn unit_rows(&self) -> Vec<UnitRow> {
        self.diffs
            .iter()
            .map(|((unit, scale), values)| {
                let (mean, std) = mean_std(values);
                UnitRow { unit: self.units[*unit].clone(), scale: scale.clone(), n: values.len(), mean, std }
            })
            .collect()
    }

    /// Mean attention difference per unit, scale and class: (unit, scale, class, n, mean).
    pub fn class_rows(&self) -> Vec<(String, String, i64, usize, f64)> {
        self.class_diffs
            .iter()
            .map(|((unit, scale, class), v)| (self.units[*unit].clone(), scale.clone(), *class, v.len(), mean_std(v).0))
            .collect()
    }

    /// The larger-kernel weight of `unit` per channel, averaged over images and over groups of `group`
    /// channels (Figure 3's per-channel curve): (scale, group index, mean weight).
    pub fn channel_rows(&self, unit: &str, group: usize) -> Result<Vec<(String, usize, f64)>> {
        let Some(index) = self.units.iter().position(|u| u == unit) else {
            bail!("unit '{unit}' was not seen; units: {}", self.units.join(", "));
        };
        let mut rows = Vec::new();
        for ((u, scale), (sums, n)) in &self.channel_sums {
            if *u != index {
                continue;
            }
            for (g, chunk) in sums.chunks(group.max(1)).enumerate() {
                rows.push((scale.clone(), g, chunk.iter().sum::<f64>() / (chunk.len() * n) as f64));
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn zoom_two_x_doubles_a_centred_square() {
        // A 4x4 bright square in the middle of an 16x16 image becomes 8x8 after a 2x zoom.
        let img = Tensor::zeros([1, 1, 16, 16], (Kind::Float, Device::Cpu));
        let _ = img.narrow(2, 6, 4).narrow(3, 6, 4).fill_(1.0);
        let zoomed = zoom_center(&img, 2.0).unwrap();
        let bright = zoomed.gt(0.5).sum(Kind::Int64).int64_value(&[]);
        assert_eq!(bright, 64);
        assert!(zoom_center(&img, 0.5).is_err());
    }

    #[test]
    fn differences_are_large_minus_small_averaged_over_channels() {
        // Two images, two paths, two channels: weights of path 1 (large) are 0.75 and 0.25.
        let w = Tensor::from_slice(&[0.25f32, 0.5, 0.75, 0.5, 0.75, 0.5, 0.25, 0.5]).view([2, 2, 2]);
        let rec = UnitAttention { label: "SK_2_1".into(), weights: w };
        let mut stats = AttentionStats::default();
        stats.add(&[rec], &[3, 4], "1.0", (0, 1)).unwrap();
        let rows = stats.unit_rows();
        assert_eq!(rows.len(), 1);
        // image 0: ((0.75-0.25) + (0.5-0.5)) / 2 = 0.25; image 1: ((0.25-0.75) + 0) / 2 = -0.25
        assert!((rows[0].mean - 0.0).abs() < 1e-12);
        assert!((rows[0].std - (0.125f64).sqrt()).abs() < 1e-12);
        let classes = stats.class_rows();
        assert_eq!(classes[0].2, 3);
        assert!((classes[0].4 - 0.25).abs() < 1e-12);
        let channels = stats.channel_rows("SK_2_1", 1).unwrap();
        assert!((channels[0].2 - 0.5).abs() < 1e-12 && (channels[1].2 - 0.5).abs() < 1e-12);
    }
}
