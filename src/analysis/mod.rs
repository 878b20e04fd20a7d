//! Analyses of trained models: the SK attention study of Figures 3, 4 and S1. Statistics and the forward
//! passes that feed them; writing and drawing the results is `report::attention`'s.
pub mod attention;
pub mod attention_pass;

use anyhow::Result;
use attention_pass::AttentionSpec;
use serde::{Deserialize, Serialize};

/// An experiment's `analysis:` section: what to run on each run's final weights after it trains.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSpec {
    /// The attention analysis, written into `<run>/attention/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<AttentionSpec>,
}

impl AnalysisSpec {
    pub fn validate(&self) -> Result<()> {
        match &self.attention {
            Some(a) => a.validate().map_err(|e| e.context("analysis.attention")),
            None => Ok(()),
        }
    }
}
