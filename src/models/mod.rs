//! The paper's models: building blocks, one file per family, and a registry of named specs.
pub mod attention;
pub mod complexity;
pub mod densenet;
pub mod dpn;
pub mod layers;
pub mod limits;
pub mod pth;
pub mod registry;
pub mod resnext;
pub mod se;
pub mod shufflenet;
pub mod sk;
pub mod weights;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// A model as plain data: the family and its fields. YAML files override it field by field.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum ModelSpec {
    /// ResNet / ResNeXt / SENet / SKNet, ImageNet or CIFAR stem.
    Bottleneck(resnext::BottleneckNetSpec),
    /// ShuffleNetV2 and its +SE / +SK variants (Table 4).
    #[serde(rename = "shufflenet_v2")]
    ShuffleNetV2(shufflenet::ShuffleNetV2Spec),
    /// DenseNet-BC (Figure 2).
    #[serde(rename = "densenet")]
    DenseNet(densenet::DenseNetSpec),
    /// Dual Path Networks (Figure 2, Table 2).
    Dpn(dpn::DpnSpec),
}

impl ModelSpec {
    pub fn num_classes(&self) -> i64 {
        match self {
            ModelSpec::Bottleneck(s) => s.num_classes,
            ModelSpec::ShuffleNetV2(s) => s.num_classes,
            ModelSpec::DenseNet(s) => s.num_classes,
            ModelSpec::Dpn(s) => s.num_classes,
        }
    }

    /// The native input side (224 for ImageNet models, 32 for CIFAR).
    pub fn input_size(&self) -> i64 {
        match self {
            ModelSpec::Bottleneck(s) => s.input_size,
            ModelSpec::ShuffleNetV2(s) => s.input_size,
            ModelSpec::DenseNet(s) => s.input_size,
            ModelSpec::Dpn(s) => s.input_size,
        }
    }

    /// The smallest input side the network can take: 2, or more where its pooling would leave nothing.
    pub fn min_input_size(&self) -> i64 {
        match self {
            ModelSpec::DenseNet(s) => s.min_input_size(),
            ModelSpec::Bottleneck(_) | ModelSpec::ShuffleNetV2(_) | ModelSpec::Dpn(_) => 2,
        }
    }

    /// Every field within its bounds and consistent with the others, each error naming its field
    /// (`model.groups: expected at least 1, got 0`): run by `registry::resolve` and `Model::build`.
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelSpec::Bottleneck(s) => s.validate(),
            ModelSpec::ShuffleNetV2(s) => s.validate(),
            ModelSpec::DenseNet(s) => s.validate(),
            ModelSpec::Dpn(s) => s.validate(),
        }
    }

    /// The SK unit spec, for models built with SK units.
    pub fn sk(&self) -> Option<&sk::SkSpec> {
        match self {
            ModelSpec::Bottleneck(s) => s.sk.as_ref(),
            ModelSpec::ShuffleNetV2(s) => s.sk.as_ref(),
            ModelSpec::DenseNet(_) | ModelSpec::Dpn(_) => None,
        }
    }

    /// Whether some unit pools to a 1x1 vector and batch-normalises it, which needs > 1 sample in training.
    pub fn has_pooled_batch_norm(&self) -> bool {
        self.sk().is_some_and(|sk| sk.select)
    }
}

/// A built model: its spec and its network over a VarStore path. (`attention::record_attention` reads its
/// SK units' selection weights during a forward pass.)
#[derive(Debug)]
pub struct Model {
    pub spec: ModelSpec,
    net: Box<dyn ModuleT>,
}

impl Model {
    pub fn build(vs: &nn::Path, spec: &ModelSpec) -> Result<Model> {
        let net: Box<dyn ModuleT> = match spec {
            ModelSpec::Bottleneck(s) => Box::new(resnext::build(vs, s)?),
            ModelSpec::ShuffleNetV2(s) => Box::new(shufflenet::build(vs, s)?),
            ModelSpec::DenseNet(s) => Box::new(densenet::build(vs, s)?),
            ModelSpec::Dpn(s) => Box::new(dpn::build(vs, s)?),
        };
        Ok(Model { spec: spec.clone(), net })
    }

    /// Logits (N, classes) for an NCHW float batch; shape problems are errors, not libtorch aborts.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let size = xs.size();
        if size.len() != 4 || size[1] != 3 {
            bail!("model input: expected a float tensor of shape (N, 3, H, W), got {size:?}");
        }
        let min_side = 32.min(self.spec.input_size()).max(self.spec.min_input_size());
        if size[2] < min_side || size[3] < min_side {
            bail!(
                "model input: images of {}x{} are too small, expected at least {min_side}x{min_side}",
                size[2],
                size[3]
            );
        }
        if train && size[0] < 2 && self.spec.has_pooled_batch_norm() {
            bail!(
                "batch size {} in training mode: the SK units batch-normalise a pooled 1x1 vector, which needs \
                 at least 2 samples per device; use a larger batch (per device) or eval mode",
                size[0]
            );
        }
        Ok(self.net.forward_t(xs, train))
    }
}

/// A model built on a device with its weights; the store owns the variables.
pub struct LoadedModel {
    pub model: Model,
    pub vs: nn::VarStore,
}

/// Builds `spec` on `device` (checked first: libtorch aborts on a missing GPU) and loads `weights`, a
/// safetensors or `torch.save` file of PyTorch state_dict names ([`weights::load`]); None keeps the random
/// initialisation.
pub fn load(spec: &ModelSpec, weights: Option<&std::path::Path>, device: tch::Device) -> Result<LoadedModel> {
    crate::device::check(device)?;
    let vs = nn::VarStore::new(device);
    let model = Model::build(&vs.root(), spec)?;
    if let Some(path) = weights {
        weights::load(&vs, path)?;
    }
    Ok(LoadedModel { model, vs })
}

#[cfg(test)]
mod tests {
    use super::attention::record_attention;
    use super::*;

    /// SKNet-29 cut down to one block per stage of 16, 32 and 64 channels, at 32x32.
    fn tiny_sknet() -> ModelSpec {
        let overrides = "{stem_width: 8, blocks: [1, 1, 1], widths: [16, 32, 64], outputs: [16, 32, 64], groups: 4, \
                         sk: {groups: 4, reduction: 4, min_dim: 4}}";
        registry::resolve("sknet29", Some(&yaml_serde::from_str(overrides).unwrap())).unwrap()
    }

    #[test]
    fn recording_returns_each_sk_unit_in_forward_order_and_nothing_outside_a_scope() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = Model::build(&vs.root(), &tiny_sknet()).unwrap();
        let xs = Tensor::randn([3, 3, 32, 32], tch::kind::FLOAT_CPU);
        let (logits, records) = record_attention(|| tch::no_grad(|| model.forward_t(&xs, false)));
        assert_eq!(logits.unwrap().size(), [3, 10]);
        let labels: Vec<&str> = records.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["SK_2_1", "SK_3_1", "SK_4_1"]);
        for (record, channels) in records.iter().zip([16, 32, 64]) {
            assert_eq!(record.weights.size(), [3, 2, channels], "{}", record.label);
        }
        // A forward pass outside any scope leaves nothing for the next scope.
        let _logits = tch::no_grad(|| model.forward_t(&xs, false)).unwrap();
        let ((), records) = record_attention(|| ());
        assert!(records.is_empty());
    }
}
