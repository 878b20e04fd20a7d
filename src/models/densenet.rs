//! DenseNet-BC (Huang et al., 2017), the Figure 2 comparison models. Variable names are torchvision's
//! `DenseNet` state_dict keys (everything under `features.`, then `classifier`).
use super::layers::{
    batch_norm, bn_relu_conv, conv_bn, global_avg_pool, linear, stem_max_pool, BnReluConv, Chain, ConvBn, ConvOpts,
    Linear, BN_EPS,
};
use super::limits;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DenseNetSpec {
    /// k: channels each dense layer adds.
    pub growth_rate: i64,
    /// Channels of the 7x7 stem conv.
    pub init_features: i64,
    /// Dense layers per block, e.g. [6, 12, 32, 32] for DenseNet-169.
    pub blocks: Vec<i64>,
    /// The bottleneck 1x1 conv has bn_size * k channels.
    pub bn_size: i64,
    pub num_classes: i64,
    pub input_size: i64,
}

impl DenseNetSpec {
    /// Every field within its bounds: the one check of this family, run when a spec is resolved and when
    /// it is built.
    pub fn validate(&self) -> Result<()> {
        limits::stages("model.blocks", &self.blocks)?;
        for (field, value) in
            [("growth_rate", self.growth_rate), ("init_features", self.init_features), ("bn_size", self.bn_size)]
        {
            limits::channels(&format!("model.{field}"), value)?;
        }
        limits::channels("model.bn_size * model.growth_rate", self.bn_size * self.growth_rate)?;
        // The channels each block ends with (each transition halves them), as `build` counts them.
        let mut channels = self.init_features;
        for (i, n_layers) in self.blocks.iter().enumerate() {
            channels += n_layers * self.growth_rate;
            if channels > limits::MAX_CHANNELS {
                bail!(
                    "model.blocks[{i}]: dense block {} grows to {channels} channels, expected at most {}",
                    i + 1,
                    limits::MAX_CHANNELS
                );
            }
            channels /= 2;
        }
        limits::classes_and_input(self.num_classes, self.input_size, self.min_input_size())
    }

    /// The smallest input side whose feature map survives the stem (conv /2, max pool /2, each rounding up)
    /// and every transition's 2x2 average pool (rounding down) with at least one pixel.
    pub fn min_input_size(&self) -> i64 {
        let transitions = self.blocks.len().clamp(1, limits::MAX_STAGES) as u32 - 1;
        // ceil(ceil(n / 2) / 2) >= 2^t  <=>  n >= 4 * (2^t - 1) + 1
        (4 * ((1i64 << transitions) - 1) + 1).max(2)
    }
}

/// BN -> ReLU -> conv named `norm<suffix>` and `conv<suffix>` under `vs`, as torchvision's dense layers and
/// transitions name theirs (suffix "1", "2", or "" in a transition).
fn norm_relu_conv(vs: &nn::Path, suffix: &str, c_in: i64, c_out: i64, kernel: i64) -> BnReluConv {
    let (norm, conv) = (vs / format!("norm{suffix}"), vs / format!("conv{suffix}"));
    bn_relu_conv(norm, conv, BN_EPS, c_in, c_out, kernel, ConvOpts::default())
}

/// A dense block (each layer's k new channels are concatenated to its input), then, between blocks, a
/// transition: BN -> ReLU -> 1x1 conv halving the channels -> 2x2 average pool.
#[derive(Debug)]
struct DenseBlock {
    /// Dense layers: a 1x1 bottleneck to bn_size * k channels, then a 3x3 conv to k new channels.
    layers: Vec<Chain>,
    transition: Option<BnReluConv>,
}

impl ModuleT for DenseBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let ys = self.layers.iter().fold(xs.shallow_clone(), |acc, layer| {
            let new = layer.forward_t(&acc, train);
            Tensor::cat(&[acc, new], 1)
        });
        match &self.transition {
            Some(t) => t.forward_t(&ys, train).avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None),
            None => ys,
        }
    }
}

#[derive(Debug)]
pub struct DenseNet {
    /// conv0 -> norm0 -> ReLU.
    stem: ConvBn,
    blocks: Vec<DenseBlock>,
    norm5: nn::BatchNorm,
    classifier: Linear,
}

pub fn build(vs: &nn::Path, spec: &DenseNetSpec) -> Result<DenseNet> {
    spec.validate()?;
    let features = vs / "features";
    let mut channels = spec.init_features;
    let stem = conv_bn(&features, "conv0", "norm0", 3, channels, 7, ConvOpts::default().stride(2), true);
    let mut blocks = Vec::new();
    let inner = spec.bn_size * spec.growth_rate;
    for (i, &n_layers) in spec.blocks.iter().enumerate() {
        let block_vs = &features / format!("denseblock{}", i + 1);
        let layers = (0..n_layers)
            .map(|j| {
                let layer_vs = &block_vs / format!("denselayer{}", j + 1);
                let c_in = channels + j * spec.growth_rate;
                let bottleneck = norm_relu_conv(&layer_vs, "1", c_in, inner, 1);
                let conv = norm_relu_conv(&layer_vs, "2", inner, spec.growth_rate, 3);
                Chain(vec![Box::new(bottleneck), Box::new(conv)])
            })
            .collect();
        channels += n_layers * spec.growth_rate;
        let transition = (i + 1 < spec.blocks.len()).then(|| {
            let transition_vs = &features / format!("transition{}", i + 1);
            // DenseNet-BC compression 0.5.
            norm_relu_conv(&transition_vs, "", channels, channels / 2, 1)
        });
        if transition.is_some() {
            channels /= 2;
        }
        blocks.push(DenseBlock { layers, transition });
    }
    let norm5 = batch_norm(&features / "norm5", channels);
    let classifier = linear(vs / "classifier", channels, spec.num_classes);
    Ok(DenseNet { stem, blocks, norm5, classifier })
}

impl ModuleT for DenseNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = stem_max_pool(&self.stem.forward_t(xs, train));
        for block in &self.blocks {
            ys = block.forward_t(&ys, train);
        }
        global_avg_pool(&ys.apply_t(&self.norm5, train).relu()).apply(&self.classifier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_specs_are_clear_errors() {
        let spec = DenseNetSpec {
            growth_rate: 0,
            init_features: 64,
            blocks: vec![6, 12, 32, 32],
            bn_size: 4,
            num_classes: 1000,
            input_size: 224,
        };
        assert_eq!(spec.validate().unwrap_err().to_string(), "model.growth_rate: expected at least 1, got 0");
        let yaml = "{growth_rate: 32, init_features: 64, blocks: [6], bn_size: 4, num_classes: 1000, input_size: 224, \
                    drop_rate: 0.1}";
        assert!(yaml_serde::from_str::<DenseNetSpec>(yaml).unwrap_err().to_string().contains("drop_rate"));
    }
}
