//! Training: the resolved run and its folder, our own SGD, learning-rate schedules, checkpoints, the loop
//! and data parallelism.
pub mod checkpoint;
pub mod metrics;
pub mod recipe;
pub mod replica;
pub mod run;
pub mod run_dir;
pub mod schedule;
pub mod sgd;
pub mod step_counts;
pub mod tensorboard;
pub mod trainer;
