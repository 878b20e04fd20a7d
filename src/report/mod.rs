//! Results in a form a person reads: results.csv and experiment summaries, the attention analysis' files,
//! and the figures. Writing and drawing only; the numbers come from train, analysis and experiment.
pub mod attention;
pub mod measured;
pub mod plots;
pub mod results;
pub mod summary;
pub mod table;
