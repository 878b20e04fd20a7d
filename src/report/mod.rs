//! Results in a form a person reads: the CSV readers of training output, experiment summaries, and plots.
pub mod plots;
pub mod results;
pub mod summary;
