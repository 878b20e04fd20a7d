//! Every model of the paper by name: a spec builder, the paper rows it reproduces, and the exact
//! reference count it must match where a public definition shares its architecture.
use super::resnext::{BottleneckNetSpec, Stem};
use super::se::SeSpec;
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
    spec.sk = Some(SkSpec::default_k3_k5(reduction, 32));
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

const S2: &str = "S2";
const IN: &str = "imagenet";
const C10: &str = "cifar10";

pub static ENTRIES: &[Entry] = &[
    Entry { name: "resnet50", spec: || b(resnet(&[3, 4, 6, 3])), paper: &[(S2, "ResNet-50", IN)], exact: Some("ResNet-50") },
    Entry { name: "resnet101", spec: || b(resnet(&[3, 4, 23, 3])), paper: &[(S2, "ResNet-101", IN)], exact: Some("ResNet-101") },
    Entry { name: "resnet152", spec: || b(resnet(&[3, 8, 36, 3])), paper: &[(S2, "ResNet-152", IN)], exact: Some("ResNet-152") },
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
    Entry { name: "resnext29_16x32d", spec: || b(resnext29(16, 32)), paper: &[("5", "ResNeXt-29, 16x32d", C10)], exact: None },
    Entry { name: "resnext29_8x64d", spec: || b(resnext29(8, 64)), paper: &[("5", "ResNeXt-29, 8x64d", C10)], exact: None },
    Entry { name: "resnext29_16x64d", spec: || b(resnext29(16, 64)), paper: &[("5", "ResNeXt-29, 16x64d", C10)], exact: None },
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
];

pub fn names() -> impl Iterator<Item = &'static str> {
    ENTRIES.iter().map(|e| e.name)
}

pub fn entry(name: &str) -> Result<&'static Entry> {
    ENTRIES.iter().find(|e| e.name == name).ok_or_else(|| {
        anyhow!("unknown model '{name}'; known models: {}", names().collect::<Vec<_>>().join(", "))
    })
}

/// The named model's spec with `overrides` (a YAML mapping of spec fields) merged in.
pub fn resolve(name: &str, overrides: Option<&yaml_serde::Value>) -> Result<ModelSpec> {
    let spec = (entry(name)?.spec)();
    match overrides {
        None => Ok(spec),
        Some(o) => overrides::merge(&spec, o, &format!("model '{name}'")),
    }
}
