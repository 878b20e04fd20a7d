//! Every model of the paper by name: a spec builder, the paper rows it reproduces, and the exact
//! reference count it must match where a public definition shares its architecture.
use super::densenet::DenseNetSpec;
use super::dpn::DpnSpec;
use super::resnext::{BottleneckNetSpec, Stem};
use super::se::SeSpec;
use super::shufflenet::ShuffleNetV2Spec;
use super::sk::{SkPath, SkSpec};
use super::ModelSpec;
use crate::overrides;
use crate::paper::{self, PaperRow};
use anyhow::{anyhow, Result};

pub struct Entry {
    pub name: &'static str,
    pub spec: fn() -> ModelSpec,
    /// (table, model, dataset) rows of published.csv, most precise first: #params come from the first row
    /// that has them, GFLOPs likewise.
    pub paper: &'static [(&'static str, &'static str, &'static str)],
    /// The model name in exact-counts.csv whose count this model must match exactly.
    pub exact: Option<&'static str>,
}

impl Entry {
    pub fn paper_params_m(&self) -> Option<f64> {
        self.paper_rows().find_map(|r| r.params_m)
    }
    pub fn paper_gflops(&self) -> Option<f64> {
        self.paper_rows().find_map(|r| r.gflops)
    }
    pub fn paper_top1_err(&self) -> Option<f64> {
        self.paper_rows().find_map(|r| r.top1_err)
    }
    pub fn exact_params(&self) -> Option<i64> {
        self.exact.and_then(paper::exact_count).map(|r| r.params)
    }
    fn paper_rows(&self) -> impl Iterator<Item = &'static PaperRow> + '_ {
        self.paper.iter().filter_map(|(t, m, d)| paper::find(t, m, d))
    }
}

const IMAGENET_OUTPUTS: [i64; 4] = [256, 512, 1024, 2048];

fn imagenet(blocks: &[i64], widths: [i64; 4], outputs: [i64; 4], groups: i64) -> BottleneckNetSpec {
    BottleneckNetSpec {
        stem: Stem::Imagenet,
        stem_width: 64,
        blocks: blocks.to_vec(),
        widths: widths.to_vec(),
        outputs: outputs.to_vec(),
        groups,
        se: None,
        sk: None,
        num_classes: 1000,
        input_size: 224,
    }
}

fn resnet(blocks: &[i64]) -> BottleneckNetSpec {
    imagenet(blocks, [64, 128, 256, 512], IMAGENET_OUTPUTS, 1)
}

fn resnext_32x4d(blocks: &[i64]) -> BottleneckNetSpec {
    imagenet(blocks, [128, 256, 512, 1024], IMAGENET_OUTPUTS, 32)
}

fn with_se(mut spec: BottleneckNetSpec) -> BottleneckNetSpec {
    spec.se = Some(SeSpec { reduction: 16 });
    spec
}

/// SK[M=2, G, r] with L=32: 3x3 and "5x5" (3x3, dilation 2), as in the authors' prototxt.
fn with_sk(mut spec: BottleneckNetSpec, reduction: i64) -> BottleneckNetSpec {
    spec.sk = Some(SkSpec::k3_k5(reduction, 32, true));
    spec
}

/// ResNeXt-29 for CIFAR: inner width = cardinality x width x 2^stage, outputs 256/512/1024.
fn resnext29(cardinality: i64, width: i64) -> BottleneckNetSpec {
    let inner = cardinality * width;
    BottleneckNetSpec {
        stem: Stem::Cifar,
        stem_width: 64,
        blocks: vec![3, 3, 3],
        widths: vec![inner, inner * 2, inner * 4],
        outputs: vec![256, 512, 1024],
        groups: cardinality,
        se: None,
        sk: None,
        num_classes: 10,
        input_size: 32,
    }
}

fn b(spec: BottleneckNetSpec) -> ModelSpec {
    ModelSpec::Bottleneck(spec)
}

const SHUFFLENET_0_5X: [i64; 5] = [24, 48, 96, 192, 1024];
const SHUFFLENET_1_0X: [i64; 5] = [24, 116, 232, 464, 1024];
/// The paper's re-implementation (supplementary B); the original ShuffleNetV2 has [4, 8, 4].
const SHUFFLENET_PAPER_BLOCKS: [i64; 3] = [4, 6, 6];

fn shufflenet(blocks: [i64; 3], widths: [i64; 5]) -> ShuffleNetV2Spec {
    ShuffleNetV2Spec {
        blocks: blocks.to_vec(),
        widths: widths.to_vec(),
        se: None,
        sk: None,
        num_classes: 1000,
        input_size: 224,
    }
}

/// "+SE": SE after each channel shuffle. The paper gives no r for it; SENet's r = 16 is used (see the entries).
fn shufflenet_se(widths: [i64; 5]) -> ModelSpec {
    let mut spec = shufflenet(SHUFFLENET_PAPER_BLOCKS, widths);
    spec.se = Some(SeSpec { reduction: 16 });
    ModelSpec::ShuffleNetV2(spec)
}

/// "+SK": every 3x3 depthwise conv (branch1's included) becomes SK[M=2 (K3, K5), G=channels, r=4], no ReLU
/// in either path (Table S1). L is not stated for ShuffleNet; with L = 16 (d = max(C/4, 16)) the 0.5x model
/// has 1.479M params (paper 1.48M; L = 32 gives 1.518M) and 0.04258 GMACs once the selection's a*U1 + b*U2
/// is counted as 2 MACs per output element, as the paper evidently does (our counter leaves it out: 0.04220).
fn shufflenet_sk(widths: [i64; 5]) -> ModelSpec {
    let mut spec = shufflenet(SHUFFLENET_PAPER_BLOCKS, widths);
    spec.sk = Some(SkSpec::k3_k5(4, 16, false));
    ModelSpec::ShuffleNetV2(spec)
}

/// DenseNet-BC at ImageNet size: 64 stem channels for k = 32, 2k in general (DenseNet-232 has k = 48, 96).
fn densenet(growth_rate: i64, init_features: i64, blocks: [i64; 4]) -> ModelSpec {
    ModelSpec::DenseNet(DenseNetSpec {
        growth_rate,
        init_features,
        blocks: blocks.to_vec(),
        bn_size: 4,
        num_classes: 1000,
        input_size: 224,
    })
}

fn dpn(small: bool, init_features: i64, k_r: i64, groups: i64, blocks: [i64; 4], inc: [i64; 4]) -> ModelSpec {
    ModelSpec::Dpn(DpnSpec {
        small,
        init_features,
        k_r,
        groups,
        blocks: blocks.to_vec(),
        inc: inc.to_vec(),
        num_classes: 1000,
        input_size: 224,
    })
}

const S2: &str = "S2";
const T4: &str = "4";
const IN: &str = "imagenet";
const C10: &str = "cifar10";

pub static ENTRIES: &[Entry] = &[
    Entry {
        name: "resnet50",
        spec: || b(resnet(&[3, 4, 6, 3])),
        paper: &[(S2, "ResNet-50", IN)],
        exact: Some("ResNet-50"),
    },
    Entry {
        name: "resnet101",
        spec: || b(resnet(&[3, 4, 23, 3])),
        paper: &[(S2, "ResNet-101", IN)],
        exact: Some("ResNet-101"),
    },
    Entry {
        name: "resnet152",
        spec: || b(resnet(&[3, 8, 36, 3])),
        paper: &[(S2, "ResNet-152", IN)],
        exact: Some("ResNet-152"),
    },
    Entry {
        name: "resnext50_32x4d",
        spec: || b(resnext_32x4d(&[3, 4, 6, 3])),
        paper: &[(S2, "ResNeXt-50 (32x4d)", IN), ("1", "ResNeXt-50 (32x4d)", IN)],
        exact: Some("ResNeXt-50 (32x4d)"),
    },
    Entry {
        name: "resnext101_32x4d",
        spec: || b(resnext_32x4d(&[3, 4, 23, 3])),
        paper: &[(S2, "ResNeXt-101 (32x4d)", IN), ("2", "ResNeXt-101", IN)],
        exact: Some("ResNeXt-101 (32x4d)"),
    },
    Entry {
        name: "resnext50_32x4d_wider",
        // 1/16 more channels in every bottleneck block: 34 groups of 4.
        spec: || b(imagenet(&[3, 4, 6, 3], [136, 272, 544, 1088], [272, 544, 1088, 2176], 34)),
        paper: &[("3", "ResNeXt-50, wider", IN)],
        exact: None,
    },
    Entry {
        name: "resnext56_32x4d",
        // Two extra blocks at the end of the 14x14 stage.
        spec: || b(resnext_32x4d(&[3, 4, 8, 3])),
        paper: &[("3", "ResNeXt-56, deeper", IN)],
        exact: None,
    },
    Entry {
        name: "resnext50_36x4d",
        spec: || b(imagenet(&[3, 4, 6, 3], [144, 288, 576, 1152], IMAGENET_OUTPUTS, 36)),
        paper: &[("3", "ResNeXt-50 (36x4d)", IN)],
        exact: None,
    },
    Entry {
        name: "senet50",
        spec: || b(with_se(resnext_32x4d(&[3, 4, 6, 3]))),
        paper: &[(S2, "SENet-50", IN), ("1", "SENet-50", IN)],
        exact: Some("SENet-50"),
    },
    Entry {
        name: "senet101",
        spec: || b(with_se(resnext_32x4d(&[3, 4, 23, 3]))),
        paper: &[(S2, "SENet-101", IN), ("2", "SENet-101", IN)],
        exact: Some("SENet-101"),
    },
    Entry {
        name: "sknet26",
        spec: || b(with_sk(resnext_32x4d(&[2, 2, 2, 2]), 16)),
        paper: &[(S2, "SKNet-26", IN)],
        exact: Some("SKNet-26"),
    },
    Entry {
        name: "sknet50",
        spec: || b(with_sk(resnext_32x4d(&[3, 4, 6, 3]), 16)),
        paper: &[(S2, "SKNet-50", IN), ("1", "SKNet-50", IN)],
        exact: Some("SKNet-50"),
    },
    Entry {
        name: "sknet101",
        // The authors' released SKNet-101 uses d = 16 in its 28x28 stage; override sk.stage_dims for d = 32.
        spec: || {
            let mut spec = with_sk(resnext_32x4d(&[3, 4, 23, 3]), 16);
            spec.sk.as_mut().unwrap().stage_dims = Some(vec![32, 16, 32, 64]);
            b(spec)
        },
        paper: &[(S2, "SKNet-101", IN), ("2", "SKNet-101", IN)],
        exact: Some("SKNet-101"),
    },
    Entry {
        name: "resnext29_16x32d",
        spec: || b(resnext29(16, 32)),
        paper: &[("5", "ResNeXt-29, 16x32d", C10)],
        exact: None,
    },
    Entry {
        name: "resnext29_8x64d",
        spec: || b(resnext29(8, 64)),
        paper: &[("5", "ResNeXt-29, 8x64d", C10)],
        exact: None,
    },
    Entry {
        name: "resnext29_16x64d",
        spec: || b(resnext29(16, 64)),
        paper: &[("5", "ResNeXt-29, 16x64d", C10)],
        exact: None,
    },
    Entry {
        name: "senet29",
        // The paper says SENet-29 is built on 16x32d, but its 35.0M is 8x64d (34.4M) plus SE; this is 8x64d.
        spec: || b(with_se(resnext29(8, 64))),
        paper: &[("5", "SENet-29", C10)],
        exact: None,
    },
    Entry {
        name: "senet29_16x32d",
        // SENet-29 as the paper's text describes it (16x32d + SE); its count is about 25.7M, not 35.0M.
        spec: || b(with_se(resnext29(16, 32))),
        paper: &[],
        exact: None,
    },
    Entry {
        name: "sknet29",
        // SK[2, 16, 32] on 16x32d; the second path is 1x1 instead of 5x5 to curb overfitting (supplementary).
        spec: || {
            let mut spec = resnext29(16, 32);
            spec.sk = Some(SkSpec {
                paths: vec![SkPath::new(3, 1, true), SkPath::new(1, 1, true)],
                groups: Some(16),
                reduction: 32,
                min_dim: 32,
                select: true,
                stage_dims: None,
            });
            b(spec)
        },
        paper: &[("5", "SKNet-29", C10)],
        exact: None,
    },
    Entry {
        name: "shufflenetv2_0.5x",
        spec: || ModelSpec::ShuffleNetV2(shufflenet(SHUFFLENET_PAPER_BLOCKS, SHUFFLENET_0_5X)),
        paper: &[(T4, "ShuffleNetV2 0.5x", IN)],
        exact: Some("ShuffleNetV2 0.5x {4,6,6}"),
    },
    Entry {
        name: "shufflenetv2_1.0x",
        // Paper GFLOPs 0.14035 vs 0.1447 measured (+3.1%), while 0.5x matches to 4 digits; no construction
        // found. 2,443,556 params would also round to 2.44M, not the paper's 2.45M.
        spec: || ModelSpec::ShuffleNetV2(shufflenet(SHUFFLENET_PAPER_BLOCKS, SHUFFLENET_1_0X)),
        paper: &[(T4, "ShuffleNetV2 1.0x", IN)],
        exact: Some("ShuffleNetV2 1.0x {4,6,6}"),
    },
    Entry {
        name: "shufflenetv2_0.5x_484",
        // The original ShuffleNetV2 (torchvision's shufflenet_v2_x0_5).
        spec: || ModelSpec::ShuffleNetV2(shufflenet([4, 8, 4], SHUFFLENET_0_5X)),
        paper: &[(T4, "ShuffleNetV2 0.5x (original paper)", IN)],
        exact: Some("ShuffleNetV2 0.5x {4,8,4}"),
    },
    Entry {
        name: "shufflenetv2_1.0x_484",
        spec: || ModelSpec::ShuffleNetV2(shufflenet([4, 8, 4], SHUFFLENET_1_0X)),
        paper: &[(T4, "ShuffleNetV2 1.0x (original paper)", IN)],
        exact: Some("ShuffleNetV2 1.0x {4,8,4}"),
    },
    Entry {
        name: "shufflenetv2_0.5x_se",
        // Known gap: 1.434M vs the paper's 1.56M (-8%). SE with r = 4 would give 1.541M and, counting the SE
        // scaling as 1 MAC per element, exactly the paper's 0.04085 GMACs, but r = 4 makes 1.0x 3.28M (paper
        // 2.66M, which r = 16 gives); no single SE design reproduces both rows.
        spec: || shufflenet_se(SHUFFLENET_0_5X),
        paper: &[(T4, "ShuffleNetV2 0.5x + SE", IN)],
        exact: None,
    },
    Entry {
        name: "shufflenetv2_1.0x_se",
        // 2.655M vs the paper's 2.66M with SENet's r = 16.
        spec: || shufflenet_se(SHUFFLENET_1_0X),
        paper: &[(T4, "ShuffleNetV2 1.0x + SE", IN)],
        exact: None,
    },
    Entry {
        name: "shufflenetv2_0.5x_sk",
        // 1.479M vs the paper's 1.48M.
        spec: || shufflenet_sk(SHUFFLENET_0_5X),
        paper: &[(T4, "ShuffleNetV2 0.5x + SK", IN)],
        exact: None,
    },
    Entry {
        name: "shufflenetv2_1.0x_sk",
        // Known gap: 2.840M vs the paper's 2.63M (+8%). With r = 4 as stated, any L gives >= 2.84M; the
        // paper's +0.19M over the plain model fits r = 8 to 16 instead, which contradicts the text. Its 1.0x
        // GFLOPs are also off (see shufflenetv2_1.0x).
        spec: || shufflenet_sk(SHUFFLENET_1_0X),
        paper: &[(T4, "ShuffleNetV2 1.0x + SK", IN)],
        exact: None,
    },
    Entry {
        name: "densenet169",
        spec: || densenet(32, 64, [6, 12, 32, 32]),
        paper: &[(S2, "DenseNet-169 (k=32)", IN)],
        exact: Some("DenseNet-169 (k=32)"),
    },
    Entry {
        name: "densenet201",
        spec: || densenet(32, 64, [6, 12, 48, 32]),
        paper: &[(S2, "DenseNet-201 (k=32)", IN)],
        exact: Some("DenseNet-201 (k=32)"),
    },
    Entry {
        name: "densenet264",
        spec: || densenet(32, 64, [6, 12, 64, 48]),
        paper: &[(S2, "DenseNet-264 (k=32)", IN)],
        exact: Some("DenseNet-264 (k=32)"),
    },
    Entry {
        name: "densenet232_k48",
        // Known gap: 55.57M vs the paper's 55.80M (-0.4%); no public configuration gives 55.80M.
        spec: || densenet(48, 96, [6, 12, 48, 48]),
        paper: &[(S2, "DenseNet-232 (k=48)", IN)],
        exact: Some("DenseNet-232 (k=48)"),
    },
    Entry {
        name: "dpn68",
        spec: || dpn(true, 10, 128, 32, [3, 4, 12, 3], [16, 32, 32, 64]),
        paper: &[(S2, "DPN-68 (32x4d)", IN)],
        exact: Some("DPN-68"),
    },
    Entry {
        name: "dpn92",
        spec: || dpn(false, 64, 96, 32, [3, 4, 20, 3], [16, 32, 24, 128]),
        paper: &[(S2, "DPN-92 (32x3d)", IN), ("2", "DPN-92", IN)],
        exact: Some("DPN-92"),
    },
    Entry {
        name: "dpn98",
        spec: || dpn(false, 96, 160, 40, [3, 6, 20, 3], [16, 32, 32, 128]),
        paper: &[(S2, "DPN-98 (32x4d)", IN), ("2", "DPN-98", IN)],
        exact: Some("DPN-98"),
    },
];

pub fn names() -> impl Iterator<Item = &'static str> {
    ENTRIES.iter().map(|e| e.name)
}

pub fn entry(name: &str) -> Result<&'static Entry> {
    ENTRIES
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| anyhow!("unknown model '{name}'; known models: {}", names().collect::<Vec<_>>().join(", ")))
}

/// The named model's spec with `overrides` (a YAML mapping of spec fields) merged in.
pub fn resolve(name: &str, overrides: Option<&yaml_serde::Value>) -> Result<ModelSpec> {
    let spec = (entry(name)?.spec)();
    match overrides {
        None => Ok(spec),
        Some(o) => overrides::merge(&spec, o, &format!("model '{name}'")),
    }
}
