//! The experiment file: a base run, seeds, and a sweep (a grid over dotted keys or labelled variants).
use crate::analysis::AnalysisSpec;
use crate::paper::PaperRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use yaml_serde::Value;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    /// Folder name under the results root; defaults to the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The run every sweep point starts from (a run config, as `sk-exp train --config` reads).
    pub base: Value,
    /// One run per seed and sweep point.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub sweep: Sweep,
    /// Analyses of each run's final weights, run right after it trains (e.g. `attention: {scales: [1.0, 2.0]}`).
    #[serde(default)]
    pub analysis: AnalysisSpec,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sweep {
    /// Cartesian product over dotted keys, e.g. `model.overrides.sk.paths[1].kernel: [1, 3]`.
    pub grid: BTreeMap<String, Vec<Value>>,
    /// Labelled variants, each a set of dotted-key assignments.
    pub variants: Vec<Variant>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub label: String,
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
    /// The paper's row for this variant, shown beside the measured result.
    #[serde(default)]
    pub paper: Option<PaperRef>,
}
