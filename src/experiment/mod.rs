//! Experiments: a YAML file declaring a base run, seeds and a sweep. Loading resolves every run; the
//! runner takes each through the per-run pipeline (train -> analyse -> measure -> record); the summary
//! sets the results beside the paper's figures.
pub mod dry_run;
pub mod load;
pub mod pipeline;
pub mod reuse;
pub mod runner;
pub mod schema;
pub mod store;
pub mod summary;
pub mod sweep;
