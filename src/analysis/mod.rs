//! Analyses of trained models: the SK attention study of Figures 3, 4 and S1.
pub mod attention;
pub mod attention_report;

use crate::train::config::RunConfig;
use anyhow::Result;
use attention_report::AttentionSpec;
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

    /// Runs every analysis of this section on the finished run `config`.
    pub fn run_after(&self, config: &RunConfig, progress: bool) -> Result<()> {
        if let Some(spec) = &self.attention {
            let (_, written) = attention_report::report_run(config, spec, progress)?;
            if progress {
                eprintln!(
                    "attention analysis written to {}",
                    written[0].parent().unwrap_or(&config.out_dir()).display()
                );
            }
        }
        Ok(())
    }
}
