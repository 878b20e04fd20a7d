//! The bottleneck family: ResNet, ResNeXt (and the Table 3 variants), SENet and SKNet, on ImageNet
//! (7x7 stem) and CIFAR (3x3 stem, ResNeXt-29). Variable names follow torchvision/timm.
use super::attention::AttentionProbe;
use super::layers::{batch_norm, conv2d, conv_bn, global_avg_pool, linear, stem_max_pool, ConvBn, ConvOpts, Linear};
use super::se::{se_unit, SeSpec, SeUnit};
use super::sk::{sk_unit, SkSite, SkSpec, SkUnit};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Stem {
    /// 7x7/2 conv 64, BN, ReLU, 3x3/2 max pool (224x224 inputs).
    Imagenet,
    /// 3x3 conv 64, BN, ReLU (32x32 inputs).
    Cifar,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BottleneckNetSpec {
    pub stem: Stem,
    pub stem_width: i64,
    /// Blocks per stage.
    pub blocks: Vec<i64>,
    /// Width of the grouped 3x3 conv (the "inner" width) per stage.
    pub widths: Vec<i64>,
    /// Output channels of every block per stage.
    pub outputs: Vec<i64>,
    /// Cardinality: groups of the 3x3 conv (1 for ResNet).
    pub groups: i64,
    /// SE on the residual branch, before the add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se: Option<SeSpec>,
    /// Replace every grouped 3x3 conv by this SK unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sk: Option<SkSpec>,
    pub num_classes: i64,
    pub input_size: i64,
}

impl BottleneckNetSpec {
    pub fn validate(&self) -> Result<()> {
        let stages = self.blocks.len();
        if stages == 0 || self.widths.len() != stages || self.outputs.len() != stages {
            bail!(
                "model: blocks, widths and outputs need one entry per stage (got {}, {}, {})",
                self.blocks.len(),
                self.widths.len(),
                self.outputs.len()
            );
        }
        if let Some((i, w)) = self.widths.iter().enumerate().find(|(_, w)| **w % self.groups != 0) {
            bail!("model.widths[{i}]: {w} is not divisible by groups {}", self.groups);
        }
        if self.blocks.iter().any(|b| *b < 1) {
            bail!("model.blocks: every stage needs at least one block");
        }
        if let Some(sk) = &self.sk {
            sk.validate("model.sk")?;
        }
        if let Some(se) = &self.se {
            if se.reduction < 1 {
                bail!("model.se.reduction: expected >= 1");
            }
        }
        if self.num_classes < 1 {
            bail!("model.num_classes: expected >= 1");
        }
        Ok(())
    }
}

/// The middle of a bottleneck block: a grouped 3x3 conv + BN + ReLU, or an SK unit.
#[derive(Debug)]
enum Middle {
    Conv(ConvBn),
    Sk(SkUnit),
}

#[derive(Debug)]
struct Bottleneck {
    conv1: ConvBn,
    middle: Middle,
    conv3: ConvBn,
    se: Option<SeUnit>,
    downsample: Option<(super::layers::Conv2d, nn::BatchNorm)>,
}

impl ModuleT for Bottleneck {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = self.conv1.forward_t(xs, train);
        ys = match &self.middle {
            Middle::Conv(c) => c.forward_t(&ys, train),
            Middle::Sk(sk) => sk.forward_t(&ys, train),
        };
        ys = self.conv3.forward_t(&ys, train);
        if let Some(se) = &self.se {
            ys = se.forward(&ys);
        }
        let shortcut = match &self.downsample {
            Some((conv, bn)) => xs.apply(conv).apply_t(bn, train),
            None => xs.shallow_clone(),
        };
        (ys + shortcut).relu()
    }
}

struct BlockSite {
    stage: usize,
    index: usize,
    c_in: i64,
    stride: i64,
}

fn bottleneck(vs: nn::Path, spec: &BottleneckNetSpec, site: BlockSite, probe: &AttentionProbe) -> Result<Bottleneck> {
    let (width, c_out) = (spec.widths[site.stage], spec.outputs[site.stage]);
    let pw = ConvOpts::default();
    // timm's SK bottleneck nests conv+BN as `conv1.conv`/`conv1.bn`; torchvision's uses `conv1`/`bn1`.
    let (conv1, middle, conv3) = match &spec.sk {
        Some(sk) => {
            let label = format!("SK_{}_{}", site.stage + 2, site.index + 1);
            let sk_site = SkSite { stage: site.stage, label, default_groups: spec.groups, probe };
            let unit = sk_unit(&vs / "conv2", width, width, site.stride, sk, sk_site)?;
            (
                conv_bn(&(&vs / "conv1"), "conv", "bn", site.c_in, width, 1, pw, true),
                Middle::Sk(unit),
                conv_bn(&(&vs / "conv3"), "conv", "bn", width, c_out, 1, pw, false),
            )
        }
        None => {
            let opts = ConvOpts::default().stride(site.stride).groups(spec.groups);
            (
                conv_bn(&vs, "conv1", "bn1", site.c_in, width, 1, pw, true),
                Middle::Conv(conv_bn(&vs, "conv2", "bn2", width, width, 3, opts, true)),
                conv_bn(&vs, "conv3", "bn3", width, c_out, 1, pw, false),
            )
        }
    };
    let se = spec.se.as_ref().map(|se| se_unit(&vs / "se", c_out, se));
    let downsample = (site.stride != 1 || site.c_in != c_out).then(|| {
        let ds = &vs / "downsample";
        (conv2d(&ds / "0", site.c_in, c_out, 1, pw.stride(site.stride)), batch_norm(&ds / "1", c_out))
    });
    Ok(Bottleneck { conv1, middle, conv3, se, downsample })
}

#[derive(Debug)]
pub struct BottleneckNet {
    stem: ConvBn,
    max_pool: bool,
    stages: Vec<Vec<Bottleneck>>,
    fc: Linear,
}

pub fn build(vs: &nn::Path, spec: &BottleneckNetSpec, probe: &AttentionProbe) -> Result<BottleneckNet> {
    spec.validate()?;
    let (stem_kernel, stem_stride) = match spec.stem {
        Stem::Imagenet => (7, 2),
        Stem::Cifar => (3, 1),
    };
    let stem =
        conv_bn(vs, "conv1", "bn1", 3, spec.stem_width, stem_kernel, ConvOpts::default().stride(stem_stride), true);
    let mut c_in = spec.stem_width;
    let mut stages = Vec::new();
    for (stage, &n_blocks) in spec.blocks.iter().enumerate() {
        let layer_vs = vs / format!("layer{}", stage + 1);
        let mut blocks = Vec::new();
        for index in 0..n_blocks as usize {
            let stride = if stage > 0 && index == 0 { 2 } else { 1 };
            blocks.push(bottleneck(&layer_vs / index, spec, BlockSite { stage, index, c_in, stride }, probe)?);
            c_in = spec.outputs[stage];
        }
        stages.push(blocks);
    }
    let fc = linear(vs / "fc", c_in, spec.num_classes);
    Ok(BottleneckNet { stem, max_pool: spec.stem == Stem::Imagenet, stages, fc })
}

impl ModuleT for BottleneckNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = self.stem.forward_t(xs, train);
        if self.max_pool {
            ys = stem_max_pool(&ys);
        }
        for block in self.stages.iter().flatten() {
            ys = block.forward_t(&ys, train);
        }
        global_avg_pool(&ys).apply(&self.fc)
    }
}
