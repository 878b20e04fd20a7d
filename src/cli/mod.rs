//! The command line's subcommands: parse flags, call the library, print.
pub mod attention;
pub mod bench;
pub mod common;
pub mod eval;
pub mod export;
pub mod models;
pub mod omp_wait;
pub mod plot;
pub mod run;
pub mod train;
