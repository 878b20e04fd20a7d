//! The Selective Kernel convolution (split, fuse, select), with every option the paper's ablations use.
use super::attention;
use super::layers::{add_selection_macs, batch_norm, conv2d, conv_bn_unit, Conv2d, ConvBn, ConvOpts};
use super::limits::{self, MAX_KERNEL};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// The most paths an SK unit may have.
const MAX_PATHS: usize = 16;

/// One path of the split: conv(kernel, dilation, groups) -> BN -> optional ReLU.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SkPath {
    pub kernel: i64,
    #[serde(default = "one")]
    pub dilation: i64,
    /// Groups of this path's conv; `None` takes the unit's groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<i64>,
    /// ReLU after the path's BN (Table S1 turns it off per path).
    #[serde(default = "yes")]
    pub relu: bool,
}

fn one() -> i64 {
    1
}
fn yes() -> bool {
    true
}

impl SkPath {
    pub fn new(kernel: i64, dilation: i64, relu: bool) -> Self {
        SkPath { kernel, dilation, groups: None, relu }
    }
    /// The receptive field of the path's kernel: 3x3 with dilation 2 covers 5x5.
    pub fn effective_kernel(&self) -> i64 {
        self.dilation * (self.kernel - 1) + 1
    }
}

/// SK[M, G, r] plus L, as in the paper; `select: false` is Table 7's plain sum of the paths.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SkSpec {
    pub paths: Vec<SkPath>,
    /// Groups G of every path's conv; `None` takes the host block's natural groups (its cardinality, or
    /// its channel count for a depthwise conv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<i64>,
    /// r: the fuse vector has d = max(C / r, L) channels.
    pub reduction: i64,
    /// L: the smallest d.
    pub min_dim: i64,
    /// Softmax selection between the paths; off gives V = sum of the paths.
    #[serde(default = "yes")]
    pub select: bool,
    /// A fixed d per stage instead of max(C / r, L) (the released SKNet-101 uses d = 16 in its 28x28 stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_dims: Option<Vec<i64>>,
}

impl SkSpec {
    /// The paper's default unit: 3x3 and "5x5" (3x3 with dilation 2), each path with or without ReLU.
    pub fn k3_k5(reduction: i64, min_dim: i64, relu: bool) -> Self {
        SkSpec {
            paths: vec![SkPath::new(3, 1, relu), SkPath::new(3, 2, relu)],
            groups: None,
            reduction,
            min_dim,
            select: true,
            stage_dims: None,
        }
    }

    /// d for a unit with `channels` channels in stage `stage` (0-based).
    pub fn fuse_dim(&self, channels: i64, stage: usize) -> i64 {
        if let Some(d) = self.stage_dims.as_ref().and_then(|dims| dims.get(stage)) {
            return *d;
        }
        (channels / self.reduction).max(self.min_dim)
    }

    /// Every field within its bounds, for a host network of `stages` stages (`field` names the spec,
    /// e.g. `model.sk`).
    pub fn validate(&self, field: &str, stages: usize) -> Result<()> {
        if self.paths.is_empty() || self.paths.len() > MAX_PATHS {
            bail!("{field}.paths: expected 1 to {MAX_PATHS} paths, got {}", self.paths.len());
        }
        for (i, p) in self.paths.iter().enumerate() {
            if p.kernel < 1 || p.kernel % 2 == 0 || p.kernel > MAX_KERNEL {
                bail!(
                    "{field}.paths[{i}].kernel: expected an odd kernel size from 1 to {MAX_KERNEL}, got {}",
                    p.kernel
                );
            }
            limits::check(&format!("{field}.paths[{i}].dilation"), p.dilation, 1, MAX_KERNEL)?;
            if let Some(g) = p.groups {
                limits::channels(&format!("{field}.paths[{i}].groups"), g)?;
            }
        }
        if let Some(g) = self.groups {
            limits::channels(&format!("{field}.groups"), g)?;
        }
        limits::channels(&format!("{field}.reduction"), self.reduction)?;
        limits::channels(&format!("{field}.min_dim"), self.min_dim)?;
        if let Some(dims) = &self.stage_dims {
            if dims.len() != stages {
                bail!("{field}.stage_dims: expected {stages} entries (one per stage), got {}", dims.len());
            }
            limits::check_each(&format!("{field}.stage_dims"), dims, 1, limits::MAX_CHANNELS)?;
        }
        Ok(())
    }

    /// That the groups this spec sets (a path's own, else the unit's) divide `channels`, the channels of
    /// the SK units `site` describes; the host's groups, which a path without any takes, are the host's to check.
    pub fn check_groups(&self, field: &str, channels: i64, site: &str) -> Result<()> {
        for (m, p) in self.paths.iter().enumerate() {
            let (name, groups) = match (p.groups, self.groups) {
                (Some(g), _) => (format!("{field}.paths[{m}].groups"), g),
                (None, Some(g)) => (format!("{field}.groups"), g),
                (None, None) => continue,
            };
            if channels % groups != 0 {
                bail!("{name}: {groups} does not divide the {channels} channels of {site}");
            }
        }
        Ok(())
    }
}

/// An SK unit. Variables follow timm's `SelectiveKernel`: `paths.{m}.conv`, `paths.{m}.bn`,
/// `attn.fc_reduce`, `attn.bn`, `attn.fc_select`.
#[derive(Debug)]
pub struct SkUnit {
    paths: Vec<ConvBn>,
    attn: Option<SkAttention>,
    label: String,
}

#[derive(Debug)]
struct SkAttention {
    fc_reduce: Conv2d,
    bn: nn::BatchNorm,
    fc_select: Conv2d,
}

/// Where a host block's 3x3 conv sits (grouped in a bottleneck, depthwise in ShuffleNetV2), for the conv
/// or the SK unit that replaces it. Input and output have `channels` channels.
pub struct ConvSite<'a> {
    /// The conv's variable path; an SK unit takes it over.
    pub vs: nn::Path<'a>,
    pub channels: i64,
    pub stride: i64,
    /// Groups of the conv, and of the SK unit's paths unless its spec sets them.
    pub groups: i64,
    /// The 0-based stage, which picks the SK unit's fuse dim d.
    pub stage: usize,
    /// Names the SK unit in the attention analysis, e.g. SK_3_4.
    pub label: String,
}

/// A 3x3 conv -> BN (`bn_vs`) -> optional ReLU at `site`, or, with `sk`, the SK unit that replaces all
/// three (its paths carry their own BNs and ReLUs, so `bn_vs` and `relu` then go unused).
pub fn conv3x3_bn_or_sk(site: ConvSite, bn_vs: nn::Path, relu: bool, sk: Option<&SkSpec>) -> Result<Box<dyn ModuleT>> {
    if let Some(spec) = sk {
        return Ok(Box::new(sk_unit(site, spec)?));
    }
    let opts = ConvOpts::default().stride(site.stride).groups(site.groups);
    let conv = conv2d(site.vs, site.channels, site.channels, 3, opts);
    Ok(Box::new(ConvBn { conv, bn: batch_norm(bn_vs, site.channels), relu }))
}

pub fn sk_unit(site: ConvSite, spec: &SkSpec) -> Result<SkUnit> {
    let ConvSite { vs, channels, stride, groups: host_groups, stage, label } = site;
    let unit_groups = spec.groups.unwrap_or(host_groups);
    let mut paths = Vec::with_capacity(spec.paths.len());
    for (m, p) in spec.paths.iter().enumerate() {
        let groups = p.groups.unwrap_or(unit_groups);
        if channels % groups != 0 {
            bail!(
                "SK unit {label}: path {m} groups {groups} do not divide its channels ({channels} in, {channels} out)"
            );
        }
        let opts = ConvOpts::default().stride(stride).dilation(p.dilation).groups(groups);
        let path = conv_bn_unit(&(&vs / "paths" / m), channels, channels, p.kernel, opts);
        paths.push(if p.relu { path.with_relu() } else { path });
    }
    let attn = spec.select.then(|| {
        let d = spec.fuse_dim(channels, stage);
        let m = spec.paths.len() as i64;
        let attn_vs = &vs / "attn";
        SkAttention {
            fc_reduce: conv2d(&attn_vs / "fc_reduce", channels, d, 1, ConvOpts::default()),
            bn: batch_norm(&attn_vs / "bn", d),
            fc_select: conv2d(&attn_vs / "fc_select", d, m * channels, 1, ConvOpts::default()),
        }
    });
    Ok(SkUnit { paths, attn, label })
}

impl ModuleT for SkUnit {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let feats: Vec<Tensor> = self.paths.iter().map(|p| p.forward_t(xs, train)).collect();
        let fused = feats.iter().skip(1).fold(feats[0].shallow_clone(), |acc, f| acc + f);
        let Some(attn) = &self.attn else {
            return fused;
        };
        let c = fused.size()[1];
        let m = feats.len() as i64;
        // Fuse: global average pool, then the fc -> BN -> ReLU bottleneck to d channels.
        let s = fused.mean_dim(&[2i64, 3][..], true, None);
        let z = s.apply(&attn.fc_reduce).apply_t(&attn.bn, train).relu();
        // Select: one fc to M*C logits in path-major order (index m*C + c), softmax over the paths.
        // -1, not the batch size: a traced graph (TorchScript export) then accepts any batch size.
        let weights = z.apply(&attn.fc_select).view([-1, m, c, 1, 1]).softmax(1, None);
        attention::record(&self.label, &weights);
        // a_1 * U_1 + ... + a_M * U_M: M multiply-adds per output element (the paper counts them).
        add_selection_macs(fused.numel() as u64 * m as u64);
        (Tensor::stack(&feats, 1) * weights).sum_dim_intlist(1, false, None)
    }
}
