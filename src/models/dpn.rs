//! Dual Path Networks (Chen et al., 2017), the Figure 2 / Table 2 comparison models. Variable names are
//! timm's `DPN` state_dict keys (`features.conv{stage}_{block}.c1x1_a.bn`, ..., `classifier`).
use super::layers::{
    batch_norm_eps, bn_relu_conv, classifier_conv, conv2d, stem_max_pool, BnReluConv, Chain, Conv2d, ConvOpts,
};
use super::limits;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// DPN's batch norms use epsilon 1e-3 (the released MXNet weights were trained with it).
const BN_EPS: f64 = 1e-3;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DpnSpec {
    /// DPN-68's "small" layout: a 3x3 stem and residual widths 64/128/256/512 (4x those otherwise)
    /// with a 7x7 stem.
    pub small: bool,
    /// Channels of the stem conv.
    pub init_features: i64,
    /// k_r: width of the grouped 3x3 in the first stage (scaled by 2^stage after).
    pub k_r: i64,
    /// Groups of the 3x3 conv.
    pub groups: i64,
    /// Blocks per stage.
    pub blocks: Vec<i64>,
    /// Channels each block adds to the densely connected path, per stage.
    pub inc: Vec<i64>,
    pub num_classes: i64,
    pub input_size: i64,
}

impl DpnSpec {
    /// Every field within its bounds and consistent with the others: the one check of this family, run
    /// when a spec is resolved and when it is built.
    pub fn validate(&self) -> Result<()> {
        limits::stages("model.blocks", &self.blocks)?;
        if self.inc.len() != self.blocks.len() {
            bail!(
                "model.blocks and model.inc need one entry per stage (got {} and {})",
                self.blocks.len(),
                self.inc.len()
            );
        }
        for (field, value) in [("init_features", self.init_features), ("k_r", self.k_r), ("groups", self.groups)] {
            limits::channels(&format!("model.{field}"), value)?;
        }
        limits::check_each("model.inc", &self.inc, 1, limits::MAX_CHANNELS)?;
        for stage in 0..self.blocks.len() {
            let width = self.k_r << stage;
            limits::channels(&format!("model.k_r (the stage {} width {width})", stage + 2), width)?;
            if width % self.groups != 0 {
                bail!("model.k_r: the stage {} width {width} is not divisible by groups {}", stage + 2, self.groups);
            }
        }
        limits::classes_and_input(self.num_classes, self.input_size, 2)
    }
}

/// BN -> ReLU -> conv named as timm's `BnActConv2d`: `<vs>.bn`, `<vs>.conv`.
fn bn_act_conv(vs: nn::Path, c_in: i64, c_out: i64, kernel: i64, opts: ConvOpts) -> BnReluConv {
    bn_relu_conv(&vs / "bn", &vs / "conv", BN_EPS, c_in, c_out, kernel, opts)
}

/// A dual path block. Its input and output are one tensor: the residual path (first `residual` channels)
/// followed by the densely connected path.
#[derive(Debug)]
struct DualPathBlock {
    residual: i64,
    /// The first block of a stage projects its input to residual + 2 * inc channels.
    projection: Option<BnReluConv>,
    /// c1x1_a -> c3x3_b (grouped) -> c1x1_c.
    convs: Chain,
}

impl ModuleT for DualPathBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let shortcut = match &self.projection {
            Some(p) => p.forward_t(xs, train),
            None => xs.shallow_clone(),
        };
        let ys = self.convs.forward_t(xs, train);
        let r = self.residual;
        let (short_res, short_dense) = (shortcut.narrow(1, 0, r), shortcut.narrow(1, r, shortcut.size()[1] - r));
        let (res, dense) = (ys.narrow(1, 0, r), ys.narrow(1, r, ys.size()[1] - r));
        // Residual channels add up; the dense path grows by this block's new channels.
        Tensor::cat(&[short_res + res, short_dense, dense], 1)
    }
}

/// Channels and stride of one dual path block.
struct BlockShape {
    c_in: i64,
    /// Channels of the residual path, and of the grouped 3x3 conv.
    residual: i64,
    width: i64,
    /// Channels the block adds to the densely connected path.
    inc: i64,
    /// The stage's stride, for its first block (which also projects its input); None for the others.
    first_stride: Option<i64>,
}

fn dual_path_block(vs: &nn::Path, shape: BlockShape, groups: i64) -> DualPathBlock {
    let BlockShape { c_in, residual, width, inc, first_stride } = shape;
    let pointwise = ConvOpts::default();
    // timm keeps separate names for the stride-1 and stride-2 projections (pretrained weight keys).
    let projection = first_stride.map(|stride| {
        let name = if stride == 1 { "c1x1_w_s1" } else { "c1x1_w_s2" };
        bn_act_conv(vs / name, c_in, residual + 2 * inc, 1, pointwise.stride(stride))
    });
    let grouped = pointwise.stride(first_stride.unwrap_or(1)).groups(groups);
    let c1x1_a = bn_act_conv(vs / "c1x1_a", c_in, width, 1, pointwise);
    let c3x3_b = bn_act_conv(vs / "c3x3_b", width, width, 3, grouped);
    let c1x1_c = bn_act_conv(vs / "c1x1_c", width, residual + inc, 1, pointwise);
    DualPathBlock { residual, projection, convs: Chain(vec![Box::new(c1x1_a), Box::new(c3x3_b), Box::new(c1x1_c)]) }
}

#[derive(Debug)]
pub struct Dpn {
    stem_conv: Conv2d,
    stem_bn: nn::BatchNorm,
    blocks: Vec<DualPathBlock>,
    final_bn: nn::BatchNorm,
    classifier: Conv2d,
}

pub fn build(vs: &nn::Path, spec: &DpnSpec) -> Result<Dpn> {
    spec.validate()?;
    let features = vs / "features";
    let stem_kernel = if spec.small { 3 } else { 7 };
    let stem_vs = &features / "conv1_1";
    let stem_conv = conv2d(&stem_vs / "conv", 3, spec.init_features, stem_kernel, ConvOpts::default().stride(2));
    let stem_bn = batch_norm_eps(&stem_vs / "bn", spec.init_features, BN_EPS);
    let width_factor = if spec.small { 1 } else { 4 };
    let mut c_in = spec.init_features;
    let mut blocks = Vec::new();
    for (stage, (&n_blocks, &inc)) in spec.blocks.iter().zip(&spec.inc).enumerate() {
        let (residual, width) = ((64 << stage) * width_factor, spec.k_r << stage);
        let stage_stride = if stage == 0 { 1 } else { 2 };
        for index in 0..n_blocks {
            let block_vs = &features / format!("conv{}_{}", stage + 2, index + 1);
            let first_stride = (index == 0).then_some(stage_stride);
            let shape = BlockShape { c_in, residual, width, inc, first_stride };
            blocks.push(dual_path_block(&block_vs, shape, spec.groups));
            c_in = if index == 0 { residual + 3 * inc } else { c_in + inc };
        }
    }
    let final_bn = batch_norm_eps(&features / "conv5_bn_ac" / "bn", c_in, BN_EPS);
    let classifier = classifier_conv(vs / "classifier", c_in, spec.num_classes);
    Ok(Dpn { stem_conv, stem_bn, blocks, final_bn, classifier })
}

impl ModuleT for Dpn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = stem_max_pool(&xs.apply(&self.stem_conv).apply_t(&self.stem_bn, train).relu());
        for block in &self.blocks {
            ys = block.forward_t(&ys, train);
        }
        let pooled = ys.apply_t(&self.final_bn, train).relu().adaptive_avg_pool2d([1, 1]);
        pooled.apply(&self.classifier).flatten(1, -1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_specs_are_clear_errors() {
        let spec = DpnSpec {
            small: true,
            init_features: 10,
            k_r: 100,
            groups: 32,
            blocks: vec![3, 4, 12, 3],
            inc: vec![16, 32, 32, 64],
            num_classes: 1000,
            input_size: 224,
        };
        let err = spec.validate().unwrap_err().to_string();
        assert_eq!(err, "model.k_r: the stage 2 width 100 is not divisible by groups 32");
        let spec = DpnSpec { k_r: 128, inc: vec![16, 32, 32], ..spec };
        assert!(spec.validate().unwrap_err().to_string().starts_with("model.blocks and model.inc need one entry"));
    }
}
