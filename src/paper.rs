//! The paper's published figures and the exact reference counts, carried as data (data/paper/*.csv).
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::OnceLock;

const PUBLISHED_CSV: &str = include_str!("../data/paper/published.csv");
const EXACT_COUNTS_CSV: &str = include_str!("../data/paper/exact-counts.csv");

/// One row of published.csv: a model in one of the paper's tables.
#[derive(Clone, Debug, Deserialize)]
pub struct PaperRow {
    pub table: String,
    pub model: String,
    pub dataset: String,
    pub params_m: Option<f64>,
    pub gflops: Option<f64>,
    pub top1_err: Option<f64>,
    pub top1_err_320: Option<f64>,
    pub note: String,
}

/// Names one row of published.csv: written in the registry (static) and in experiment files (`paper:`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PaperRef {
    pub table: Cow<'static, str>,
    pub model: Cow<'static, str>,
    #[serde(default = "default_dataset")]
    pub dataset: Cow<'static, str>,
}

fn default_dataset() -> Cow<'static, str> {
    Cow::Borrowed("imagenet")
}

impl PaperRef {
    pub const fn new(table: &'static str, model: &'static str, dataset: &'static str) -> PaperRef {
        PaperRef { table: Cow::Borrowed(table), model: Cow::Borrowed(model), dataset: Cow::Borrowed(dataset) }
    }

    /// The published row this names, if published.csv has it.
    pub fn row(&self) -> Option<&'static PaperRow> {
        published().iter().find(|r| r.table == self.table && r.model == self.model && r.dataset == self.dataset)
    }
}

/// One row of exact-counts.csv: the exact parameter count of a public reference definition.
#[derive(Clone, Debug, Deserialize)]
pub struct ExactCount {
    pub model: String,
    pub params: i64,
    pub source: String,
    pub note: String,
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str, name: &str) -> Result<Vec<T>> {
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .with_context(|| format!("data/paper/{name} is malformed"))
}

pub fn published() -> &'static [PaperRow] {
    static ROWS: OnceLock<Vec<PaperRow>> = OnceLock::new();
    ROWS.get_or_init(|| parse(PUBLISHED_CSV, "published.csv").expect("embedded published.csv parses (tested)"))
}

pub fn exact_counts() -> &'static [ExactCount] {
    static ROWS: OnceLock<Vec<ExactCount>> = OnceLock::new();
    ROWS.get_or_init(|| parse(EXACT_COUNTS_CSV, "exact-counts.csv").expect("embedded exact-counts.csv parses (tested)"))
}

pub fn exact_count(model: &str) -> Option<&'static ExactCount> {
    exact_counts().iter().find(|r| r.model == model)
}

/// Whether `value` prints as the paper's `printed` figure at the figure's own decimals (2,635,448 params
/// in millions is 2.64, not 2.63; 0.145345 GFLOPs at 5 decimals is 0.14535).
pub fn rounds_to(value: f64, printed: f64) -> bool {
    let text = printed.to_string();
    let decimals = text.split_once('.').map_or(0, |(_, fraction)| fraction.len());
    format!("{value:.decimals$}") == format!("{printed:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_follows_the_printed_decimals() {
        assert!(rounds_to(4.468, 4.47));
        assert!(!rounds_to(4.4627, 4.47));
        assert!(rounds_to(2.634688, 2.63));
        assert!(!rounds_to(2.635448, 2.63));
        assert!(rounds_to(0.0425806, 0.04258));
        assert!(rounds_to(34.52, 34.5) && !rounds_to(34.56, 34.5));
    }

    #[test]
    fn embedded_tables_parse() {
        assert_eq!(parse::<PaperRow>(PUBLISHED_CSV, "published.csv").unwrap().len(), 80);
        assert_eq!(PaperRef::new("1", "SKNet-50", "imagenet").row().unwrap().gflops, Some(4.47));
        assert_eq!(exact_count("SKNet-50").unwrap().params, 27479784);
    }
}
