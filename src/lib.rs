//! sk-exp: reproduce and extend Selective Kernel Networks on libtorch.
pub mod analysis;
pub mod data;
pub mod device;
pub mod dist;
pub mod eval;
pub mod experiment;
pub mod interop;
pub mod loss;
pub mod models;
pub mod overrides;
pub mod paper;
pub mod precision;
pub mod report;
pub mod train;
pub mod util;
