//! The command line's subcommands: parse flags, call the library, print.
pub mod models;
pub mod bench;
pub mod eval;
pub mod export;
pub mod plot;
pub mod bench_train;
pub mod train;
pub mod run;
pub mod attention;
pub mod common;
