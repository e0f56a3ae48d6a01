//! # lenet-optim
//!
//! Training for LeNet-5: the update rules ([`Optimizer`]: SGD, momentum, and the
//! paper's stochastic diagonal Levenberg-Marquardt with its Hessian-diagonal
//! estimate in [`hessian`]), learning-rate [`Schedule`]s, the [`Trainer`] loop
//! (epochs, batches, evaluation, observers, exact resume), and training
//! [`checkpoint`]s; the [`Recipe`]s the `lenet` command trains with, as values.
//!
//! Data comes in through the [`TrainData`] trait: this crate never reads files.

pub mod checkpoint;
pub mod data;
mod error;
pub mod hessian;
pub mod optimizer;
pub mod recipe;
pub mod schedule;
pub mod trainer;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use data::{DataError, TrainData};
pub use error::SettingsError;
pub use optimizer::{HessianMode, Method, Optimizer, OptimizerConfig, OptimizerState};
pub use recipe::Recipe;
pub use schedule::Schedule;
pub use trainer::{
    evaluate, Control, Divergence, EpochMetrics, EvalSets, LossWatch, Observer, Outcome, Progress, Silent,
    TrainConfig, TrainError, Trainer,
};
