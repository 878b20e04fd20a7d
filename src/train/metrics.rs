//! metrics.csv: one row per epoch, written by the training loop, read back by the runner and the plots
//! (`report::results::read_metrics`). One definition of the row and its header serves both sides.
use serde::Deserialize;

pub const METRICS_FILE: &str = "metrics.csv";
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

/// One row of metrics.csv. Errors are percentages; `wall_s` is the epoch's time (training and evaluation).
/// The eval columns are empty on an epoch without evaluation (files written by other tools may have them).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct EpochMetrics {
    pub epoch: u32,
    pub lr: f64,
    pub train_loss: f64,
    pub train_top1_err: f64,
    pub eval_loss: Option<f64>,
    pub eval_top1_err: Option<f64>,
    pub eval_top5_err: Option<f64>,
    pub images_per_s: f64,
    pub wall_s: f64,
}

/// The header line, without its newline.
pub fn header_line() -> String {
    METRICS_HEADER.join(",")
}

impl EpochMetrics {
    /// A CSV row without its newline; floats in Rust's shortest round-trip form, so equal rows mean equal
    /// numbers (the exact-resume tests compare them bit for bit).
    pub fn csv_row(&self) -> String {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        format!(
            "{},{},{},{},{},{},{},{},{}",
            self.epoch,
            self.lr,
            self.train_loss,
            self.train_top1_err,
            opt(self.eval_loss),
            opt(self.eval_top1_err),
            opt(self.eval_top5_err),
            self.images_per_s,
            self.wall_s
        )
    }

    /// The columns that must reproduce exactly under the same seed (not the timings), as bit patterns;
    /// an empty eval column reads as NaN.
    pub fn deterministic_bits(&self) -> [u64; 7] {
        let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        [
            self.epoch as f64,
            self.lr,
            self.train_loss,
            self.train_top1_err,
            nan(self.eval_loss),
            nan(self.eval_top1_err),
            nan(self.eval_top5_err),
        ]
        .map(f64::to_bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_the_csv_reader() {
        let row = EpochMetrics {
            epoch: 3,
            lr: 0.1 / 3.0,
            train_loss: 2.302_585_092_994_046,
            train_top1_err: 87.5,
            eval_loss: None,
            eval_top1_err: Some(12.345_678_901_234_567),
            eval_top5_err: Some(0.0),
            images_per_s: 1234.5,
            wall_s: 0.1 + 0.2,
        };
        let text = format!("{}\n{}\n", header_line(), row.csv_row());
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let back: EpochMetrics = reader.deserialize().next().unwrap().unwrap();
        assert_eq!(back.deterministic_bits(), row.deterministic_bits());
        assert_eq!(back, row);
    }
}
