//! Experiments: a YAML file declaring a base run, seeds and a sweep; the runner trains every run
//! (resumable, locked per run) and summarises the results beside the paper's figures.
pub mod runner;
pub mod schema;
pub mod store;
pub mod sweep;
