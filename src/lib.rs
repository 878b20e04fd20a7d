//! sk-exp: reproduce and extend Selective Kernel Networks on libtorch.
pub mod models;
pub mod overrides;
pub mod paper;
