//! Training: our own SGD, learning-rate schedules, the loss, checkpoints, the loop and data parallelism.
pub mod checkpoint;
pub mod config;
pub mod loss;
pub mod metrics;
pub mod parallel;
pub mod recipe;
pub mod schedule;
pub mod sgd;
pub mod trainer;
