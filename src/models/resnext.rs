//! The bottleneck family: ResNet, ResNeXt (and the Table 3 variants), SENet and SKNet, on ImageNet
//! (7x7 stem) and CIFAR (3x3 stem, ResNeXt-29). Variable names follow torchvision/timm.
use super::layers::{
    conv_bn_numbered, conv_bn_slots, conv_bn_unit, global_avg_pool, linear, stem_max_pool, Chain, ConvBn, ConvOpts,
    Linear,
};
use super::limits;
use super::se::{se_unit, SeSpec, SeUnit};
use super::sk::{conv3x3_bn_or_sk, ConvSite, SkSpec};
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
    /// Every field within its bounds and consistent with the others: the one check of this family, run
    /// when a spec is resolved and when it is built.
    pub fn validate(&self) -> Result<()> {
        limits::stages("model.blocks", &self.blocks)?;
        let stages = self.blocks.len();
        if self.widths.len() != stages || self.outputs.len() != stages {
            bail!(
                "model: blocks, widths and outputs need one entry per stage (got {}, {}, {})",
                self.blocks.len(),
                self.widths.len(),
                self.outputs.len()
            );
        }
        limits::channels("model.stem_width", self.stem_width)?;
        limits::channels("model.groups", self.groups)?;
        limits::check_each("model.widths", &self.widths, 1, limits::MAX_CHANNELS)?;
        limits::check_each("model.outputs", &self.outputs, 1, limits::MAX_CHANNELS)?;
        if let Some((i, w)) = self.widths.iter().enumerate().find(|(_, w)| **w % self.groups != 0) {
            bail!("model.widths[{i}]: {w} is not divisible by groups {}", self.groups);
        }
        if let Some(sk) = &self.sk {
            sk.validate("model.sk", stages)?;
            for (i, w) in self.widths.iter().enumerate() {
                sk.check_groups("model.sk", *w, &format!("model.widths[{i}] ({w})"))?;
            }
        }
        if let Some(se) = &self.se {
            limits::channels("model.se.reduction", se.reduction)?;
        }
        limits::classes_and_input(self.num_classes, self.input_size, 2)
    }
}

#[derive(Debug)]
struct Bottleneck {
    /// conv1 (1x1), conv2 (the grouped 3x3 conv + BN + ReLU, or the SK unit that replaces it), conv3 (1x1).
    convs: Chain,
    se: Option<SeUnit>,
    downsample: Option<ConvBn>,
}

impl ModuleT for Bottleneck {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = self.convs.forward_t(xs, train);
        if let Some(se) = &self.se {
            ys = se.forward(&ys);
        }
        let shortcut = match &self.downsample {
            Some(downsample) => downsample.forward_t(xs, train),
            None => xs.shallow_clone(),
        };
        (ys + shortcut).relu()
    }
}

/// The `index`-th block (0-based) of stage `stage` (0-based), taking `c_in` channels.
struct BlockSite {
    stage: usize,
    index: usize,
    c_in: i64,
    stride: i64,
}

fn bottleneck(vs: nn::Path, spec: &BottleneckNetSpec, site: BlockSite) -> Result<Bottleneck> {
    let BlockSite { stage, index, c_in, stride } = site;
    let (width, c_out) = (spec.widths[stage], spec.outputs[stage]);
    let pointwise = ConvOpts::default();
    // timm's SK bottleneck nests conv+BN as `conv1.conv`/`conv1.bn`; torchvision's uses `conv1`/`bn1`.
    let conv1x1_bn = |n: usize, c_in: i64, c_out: i64| match spec.sk {
        Some(_) => conv_bn_unit(&(&vs / format!("conv{n}")), c_in, c_out, 1, pointwise),
        None => conv_bn_numbered(&vs, n, c_in, c_out, 1, pointwise),
    };
    // Units are named as in the paper: SK_{stage}_{block}, stages counted from 2 (conv2_x).
    let label = format!("SK_{}_{}", stage + 2, index + 1);
    let conv2_site = ConvSite { vs: &vs / "conv2", channels: width, stride, groups: spec.groups, stage, label };
    let make_conv2 = |site: ConvSite| conv3x3_bn_or_sk(site, &vs / "bn2", true, spec.sk.as_ref());
    // The creation order fixes what a seeded initialisation draws: an SK unit has always come first.
    let (conv1, conv2) = if spec.sk.is_some() {
        let conv2 = make_conv2(conv2_site)?;
        (conv1x1_bn(1, c_in, width), conv2)
    } else {
        let conv1 = conv1x1_bn(1, c_in, width);
        (conv1, make_conv2(conv2_site)?)
    };
    let conv3 = conv1x1_bn(3, width, c_out);
    let se = spec.se.as_ref().map(|se| se_unit(&vs / "se", c_out, se));
    let downsample = (stride != 1 || c_in != c_out)
        .then(|| conv_bn_slots(&(&vs / "downsample"), 0, c_in, c_out, 1, pointwise.stride(stride)));
    Ok(Bottleneck { convs: Chain(vec![Box::new(conv1.with_relu()), conv2, Box::new(conv3)]), se, downsample })
}

#[derive(Debug)]
pub struct BottleneckNet {
    stem: ConvBn,
    max_pool: bool,
    stages: Vec<Vec<Bottleneck>>,
    fc: Linear,
}

pub fn build(vs: &nn::Path, spec: &BottleneckNetSpec) -> Result<BottleneckNet> {
    spec.validate()?;
    let (stem_kernel, stem_stride) = match spec.stem {
        Stem::Imagenet => (7, 2),
        Stem::Cifar => (3, 1),
    };
    let stem_opts = ConvOpts::default().stride(stem_stride);
    let stem = conv_bn_numbered(vs, 1, 3, spec.stem_width, stem_kernel, stem_opts).with_relu();
    let mut c_in = spec.stem_width;
    let mut stages = Vec::new();
    for (stage, &n_blocks) in spec.blocks.iter().enumerate() {
        let layer_vs = vs / format!("layer{}", stage + 1);
        let mut blocks = Vec::new();
        for index in 0..n_blocks as usize {
            let stride = if stage > 0 && index == 0 { 2 } else { 1 };
            blocks.push(bottleneck(&layer_vs / index, spec, BlockSite { stage, index, c_in, stride })?);
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
