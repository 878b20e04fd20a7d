//! ShuffleNetV2 (Ma et al., 2018) as the paper re-implements it for Table 4, with the "+SE" and "+SK"
//! variants. Variable names are torchvision's `ShuffleNetV2` state_dict keys, so its weights load unchanged.
use super::layers::{conv_bn_slots, linear, stem_max_pool, Chain, ConvBn, ConvOpts, Linear};
use super::limits;
use super::se::{se_unit, SeSpec, SeUnit};
use super::sk::{conv3x3_bn_or_sk, ConvSite, SkSpec};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShuffleNetV2Spec {
    /// Blocks per stage (stages 2, 3, 4, ...): the paper's re-implementation uses [4, 6, 6], the original [4, 8, 4].
    pub blocks: Vec<i64>,
    /// Channels of the stem, of every stage, and of conv5: 0.5x is [24, 48, 96, 192, 1024].
    pub widths: Vec<i64>,
    /// "+SE": an SE unit on each block's output, after its channel shuffle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se: Option<SeSpec>,
    /// "+SK": every 3x3 depthwise conv (with its BN) becomes this SK unit; groups default to the channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sk: Option<SkSpec>,
    pub num_classes: i64,
    pub input_size: i64,
}

impl ShuffleNetV2Spec {
    /// Every field within its bounds and consistent with the others: the one check of this family, run
    /// when a spec is resolved and when it is built.
    pub fn validate(&self) -> Result<()> {
        limits::stages("model.blocks", &self.blocks)?;
        let stages = self.blocks.len();
        if self.widths.len() != stages + 2 {
            bail!(
                "model.widths: expected {} entries (stem, one per stage, conv5) for {stages} stages, got {}",
                stages + 2,
                self.widths.len()
            );
        }
        limits::check_each("model.widths", &self.widths, 1, limits::MAX_CHANNELS)?;
        let stage_widths = &self.widths[1..=stages];
        if let Some((i, w)) = stage_widths.iter().enumerate().find(|(_, w)| **w % 2 != 0) {
            bail!("model.widths[{}]: a stage width must be even (blocks split it in two halves), got {w}", i + 1);
        }
        if let Some(sk) = &self.sk {
            sk.validate("model.sk", stages)?;
            // Each stage's SK units take its input (branch1 of the first block) and half its width (branch2).
            for stage in 0..stages {
                let (c_in, half) = (self.widths[stage], self.widths[stage + 1] / 2);
                let site = format!("the stage {} SK units", stage + 2);
                sk.check_groups("model.sk", c_in, &site)?;
                sk.check_groups("model.sk", half, &site)?;
            }
        }
        if let Some(se) = &self.se {
            limits::channels("model.se.reduction", se.reduction)?;
        }
        limits::classes_and_input(self.num_classes, self.input_size, 2)
    }
}

#[derive(Debug)]
struct Block {
    /// The downsampling block's shortcut branch: depthwise 3x3/2 -> BN, then 1x1 -> BN -> ReLU.
    branch1: Option<Chain>,
    /// The main branch: 1x1 -> BN -> ReLU, depthwise 3x3 -> BN, 1x1 -> BN -> ReLU.
    branch2: Chain,
    se: Option<SeUnit>,
}

impl ModuleT for Block {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let (left, right) = match &self.branch1 {
            Some(branch1) => (branch1.forward_t(xs, train), self.branch2.forward_t(xs, train)),
            None => {
                let halves = xs.chunk(2, 1);
                (halves[0].shallow_clone(), self.branch2.forward_t(&halves[1], train))
            }
        };
        let ys = channel_shuffle(&Tensor::cat(&[left, right], 1), 2);
        match &self.se {
            Some(se) => se.forward(&ys),
            None => ys,
        }
    }
}

/// Interleaves the channels of `groups` equal groups: (g, c/g) -> (c/g, g). The batch dimension is -1,
/// not its size, so that a traced graph (TorchScript export) accepts any batch size.
fn channel_shuffle(xs: &Tensor, groups: i64) -> Tensor {
    let (_, c, h, w) = xs.size4().expect("channel shuffle input must be NCHW");
    xs.view([-1, groups, c / groups, h, w]).transpose(1, 2).contiguous().view([-1, c, h, w])
}

/// The `index`-th block (0-based) of stage `stage` (0-based, stage2 in torchvision's names).
struct BlockSite {
    stage: usize,
    index: usize,
    c_in: i64,
    c_out: i64,
}

fn block(vs: nn::Path, spec: &ShuffleNetV2Spec, site: BlockSite) -> Result<Block> {
    let BlockSite { stage, index, c_in, c_out } = site;
    let downsample = index == 0;
    let stride = if downsample { 2 } else { 1 };
    let half = c_out / 2;
    // Units are named as the paper names SKNet's: SK_{stage}_{block}, stages counted from 2.
    let label = format!("SK_{}_{}", stage + 2, index + 1);
    let pointwise = ConvOpts::default();
    // A 3x3 depthwise conv + BN (no ReLU, as in ShuffleNetV2) in slots `slot` and `slot + 1` of a branch, or
    // the SK unit that replaces both: it takes the conv's name, and its paths carry their own BNs.
    let depthwise = |branch: &nn::Path, slot: usize, channels: i64, label: String| {
        let site = ConvSite { vs: branch / slot, channels, stride, groups: channels, stage, label };
        conv3x3_bn_or_sk(site, branch / (slot + 1), false, spec.sk.as_ref())
    };
    let branch1 = if downsample {
        let b1 = &vs / "branch1";
        let dw = depthwise(&b1, 0, c_in, format!("{label}_branch1"))?;
        Some(Chain(vec![dw, Box::new(conv_bn_slots(&b1, 2, c_in, half, 1, pointwise).with_relu())]))
    } else {
        None
    };
    let b2 = &vs / "branch2";
    let pw_in_channels = if downsample { c_in } else { half };
    let pw_in = conv_bn_slots(&b2, 0, pw_in_channels, half, 1, pointwise).with_relu();
    let dw = depthwise(&b2, 3, half, label)?;
    let pw_out = conv_bn_slots(&b2, 5, half, half, 1, pointwise).with_relu();
    let branch2 = Chain(vec![Box::new(pw_in), dw, Box::new(pw_out)]);
    let se = spec.se.as_ref().map(|se| se_unit(&vs / "se", c_out, se));
    Ok(Block { branch1, branch2, se })
}

#[derive(Debug)]
pub struct ShuffleNetV2 {
    stem: ConvBn,
    blocks: Vec<Block>,
    conv5: ConvBn,
    fc: Linear,
}

pub fn build(vs: &nn::Path, spec: &ShuffleNetV2Spec) -> Result<ShuffleNetV2> {
    spec.validate()?;
    let stem_width = spec.widths[0];
    let stem = conv_bn_slots(&(vs / "conv1"), 0, 3, stem_width, 3, ConvOpts::default().stride(2)).with_relu();
    let mut c_in = stem_width;
    let mut blocks = Vec::new();
    for (stage, &n_blocks) in spec.blocks.iter().enumerate() {
        let stage_vs = vs / format!("stage{}", stage + 2);
        let c_out = spec.widths[stage + 1];
        for index in 0..n_blocks as usize {
            blocks.push(block(&stage_vs / index, spec, BlockSite { stage, index, c_in, c_out })?);
            c_in = c_out;
        }
    }
    let head_width = spec.widths[spec.widths.len() - 1];
    let conv5 = conv_bn_slots(&(vs / "conv5"), 0, c_in, head_width, 1, ConvOpts::default()).with_relu();
    let fc = linear(vs / "fc", head_width, spec.num_classes);
    Ok(ShuffleNetV2 { stem, blocks, conv5, fc })
}

impl ModuleT for ShuffleNetV2 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = stem_max_pool(&self.stem.forward_t(xs, train));
        for block in &self.blocks {
            ys = block.forward_t(&ys, train);
        }
        ys = self.conv5.forward_t(&ys, train);
        ys.mean_dim(&[2i64, 3][..], false, None).apply(&self.fc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::attention::record_attention;
    use crate::models::registry;

    fn spec_0_5x() -> ShuffleNetV2Spec {
        match registry::resolve("shufflenetv2_0.5x", None).unwrap() {
            crate::models::ModelSpec::ShuffleNetV2(s) => s,
            other => panic!("unexpected family {other:?}"),
        }
    }

    #[test]
    fn bad_specs_are_clear_errors() {
        let mut spec = spec_0_5x();
        spec.widths.pop();
        assert!(spec.validate().unwrap_err().to_string().starts_with("model.widths: expected 5 entries"));
        let mut spec = spec_0_5x();
        spec.widths[2] = 95;
        assert!(spec.validate().unwrap_err().to_string().contains("model.widths[2]: a stage width must be even"));
        let yaml = "{blocks: [4, 6, 6], widths: [24, 48, 96, 192, 1024], num_classes: 10, input_size: 224, se_r: 4}";
        assert!(yaml_serde::from_str::<ShuffleNetV2Spec>(yaml).unwrap_err().to_string().contains("se_r"));
    }

    #[test]
    fn sk_units_are_labelled_by_stage_and_block() {
        let mut spec = spec_0_5x();
        spec.blocks = vec![2, 1, 1];
        spec.sk = Some(SkSpec::k3_k5(4, 16, false));
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = build(&vs.root(), &spec).unwrap();
        let xs = Tensor::zeros([2, 3, 64, 64], tch::kind::FLOAT_CPU);
        let (_, records) = record_attention(|| tch::no_grad(|| net.forward_t(&xs, false)));
        let labels: Vec<String> = records.into_iter().map(|u| u.label).collect();
        let expected = ["SK_2_1_branch1", "SK_2_1", "SK_2_2", "SK_3_1_branch1", "SK_3_1", "SK_4_1_branch1", "SK_4_1"];
        assert_eq!(labels, expected);
        // The SK unit takes the depthwise conv's name; its BN (branch2.4) is gone.
        let names = vs.variables();
        assert!(names.contains_key("stage2.0.branch2.3.paths.1.conv.weight"));
        assert!(names.contains_key("stage2.0.branch1.0.attn.fc_select.weight"));
        assert!(!names.keys().any(|k| k.contains("branch2.4.")));
    }
}
