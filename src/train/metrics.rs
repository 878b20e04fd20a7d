//! metrics.csv: one row per epoch, written by the training loop, read back by the runner and the plots.
//! The struct is the one definition of the row: its fields are the header, serde writes and reads it.
use crate::util::csv_file::{csv_line, read_csv, shortest};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One row of metrics.csv. Errors are percentages; `wall_s` is the epoch's time (training and evaluation).
/// The eval columns are empty on an epoch without evaluation (files written by other tools may have them).
/// Floats are written in Rust's shortest round-trip form, so equal text means equal numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: u32,
    #[serde(serialize_with = "shortest")]
    pub lr: f64,
    #[serde(serialize_with = "shortest")]
    pub train_loss: f64,
    #[serde(serialize_with = "shortest")]
    pub train_top1_err: f64,
    #[serde(serialize_with = "shortest")]
    pub eval_loss: Option<f64>,
    #[serde(serialize_with = "shortest")]
    pub eval_top1_err: Option<f64>,
    #[serde(serialize_with = "shortest")]
    pub eval_top5_err: Option<f64>,
    #[serde(serialize_with = "shortest")]
    pub images_per_s: f64,
    #[serde(serialize_with = "shortest")]
    pub wall_s: f64,
}

/// The header; `header_matches_the_fields` checks it against the struct.
pub const METRICS_HEADER: [&str; 9] = [
    "epoch",
    "lr",
    "train_loss",
    "train_top1_err",
    "eval_loss",
    "eval_top1_err",
    "eval_top5_err",
    "images_per_s",
    "wall_s",
];

impl EpochMetrics {
    /// The numeric columns after `epoch`, by header name (None: an empty cell).
    pub fn columns(&self) -> [(&'static str, Option<f64>); 8] {
        [
            ("lr", Some(self.lr)),
            ("train_loss", Some(self.train_loss)),
            ("train_top1_err", Some(self.train_top1_err)),
            ("eval_loss", self.eval_loss),
            ("eval_top1_err", self.eval_top1_err),
            ("eval_top5_err", self.eval_top5_err),
            ("images_per_s", Some(self.images_per_s)),
            ("wall_s", Some(self.wall_s)),
        ]
    }

    /// The row with its timings left out, as CSV text: what must reproduce exactly under the same seed.
    pub fn deterministic_row(&self) -> Result<String> {
        csv_line(&EpochMetrics { images_per_s: 0.0, wall_s: 0.0, ..self.clone() })
    }
}

pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    read_csv(path, &METRICS_HEADER, |_: &EpochMetrics| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::csv_file::csv_text;

    fn row() -> EpochMetrics {
        EpochMetrics {
            epoch: 3,
            lr: 0.1 / 3.0,
            train_loss: 1.234_567_890_123_456_7,
            train_top1_err: 100.0,
            eval_loss: None,
            eval_top1_err: Some(12.345_678_901_234_567),
            eval_top5_err: Some(0.0),
            images_per_s: 1234.5,
            wall_s: 0.1 + 0.2,
        }
    }

    #[test]
    fn rows_round_trip_through_the_csv_reader() {
        let row = row();
        let text = csv_text(&METRICS_HEADER, std::slice::from_ref(&row)).unwrap();
        let back: EpochMetrics = csv::Reader::from_reader(text.as_slice()).deserialize().next().unwrap().unwrap();
        assert_eq!(back, row);
        assert_eq!(back.deterministic_row().unwrap(), row.deterministic_row().unwrap());
        assert_eq!(
            csv_line(&row).unwrap(),
            "3,0.03333333333333333,1.2345678901234567,100,,12.345678901234567,0,1234.5,0.30000000000000004"
        );
    }

    #[test]
    fn header_matches_the_fields() {
        let text = String::from_utf8(csv_text(&METRICS_HEADER, &[row()]).unwrap()).unwrap();
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
        let mut with_names = csv::Writer::from_writer(Vec::new());
        with_names.serialize(row()).unwrap();
        let named = String::from_utf8(with_names.into_inner().unwrap()).unwrap();
        assert_eq!(named.lines().next(), text.lines().next());
        assert_eq!(reader.records().count(), 2);
        let names: Vec<&str> = row().columns().iter().map(|c| c.0).collect();
        assert_eq!(names, METRICS_HEADER[1..]);
    }
}
