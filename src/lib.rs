//! sk-exp: reproduce and extend Selective Kernel Networks on libtorch.
pub mod data;
pub mod models;
pub mod overrides;
pub mod paper;
pub mod train;
