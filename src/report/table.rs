//! Cells the text tables share (`sk-exp models`, the experiment dry run).

/// `ours` relative to the paper's figure, as a signed percentage (`+1.23%`), or `-` without one.
pub fn relative_difference(ours: f64, paper: Option<f64>) -> String {
    paper.map_or_else(|| "-".into(), |p| format!("{:+.2}%", (ours - p) / p * 100.0))
}
