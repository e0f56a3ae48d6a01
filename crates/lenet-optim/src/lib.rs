//! # lenet-optim
//!
//! Training for LeNet-5: the update rules ([`Optimizer`]: SGD, momentum, and the
//! paper's stochastic diagonal Levenberg-Marquardt with its Hessian-diagonal
//! estimate in [`hessian`]), learning-rate [`Schedule`]s, the [`Trainer`] loop
//! (epochs, batches, evaluation, observers, exact resume), and training
//! [`checkpoint`]s; the [`Recipe`]s the `lenet` command trains with, as values.
//!
//! Data comes in through the [`TrainData`] trait: this crate never reads files
//! (but its own checkpoints). `mnist-io` implements the trait for MNIST-style sets
//! (feature `train`); a program can implement it for its own data:
//!
//! ```
//! use lenet_layers::{LeNet5, ModelConfig, INPUT_LEN};
//! use lenet_optim::{DataError, EvalSets, Recipe, Silent, TrainData};
//!
//! /// 20 blank images, labelled 0 to 9 in turn.
//! struct Blank;
//! impl TrainData for Blank {
//!     fn len(&self) -> usize { 20 }
//!     fn epoch_order(&self, _epoch: usize) -> Vec<usize> { (0..20).collect() }
//!     fn fill(&self, idx: &[usize], _epoch: usize, x: &mut [f32], labels: &mut [u8]) -> Result<(), DataError> {
//!         x.fill(-0.1);
//!         labels.iter_mut().zip(idx).for_each(|(l, &i)| *l = (i % 10) as u8);
//!         Ok(())
//!     }
//! }
//!
//! let mut model = LeNet5::new(ModelConfig::classic(), 1)?;
//! let mut trainer = Recipe::paper_sdlm().with_epochs(1).trainer(&model)?;
//! trainer.run(&mut model, &Blank, EvalSets::default(), &mut Silent)?;
//! assert_eq!(trainer.progress.history.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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
