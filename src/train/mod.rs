//! Training: our own SGD, learning-rate schedules, the loss, checkpoints, the loop and data parallelism.
pub mod loss;
pub mod schedule;
pub mod sgd;
