//! # lenet-layers
//!
//! LeNet-5's layers, each with an explicit `forward`, `backward` and
//! `backward_second` (diagonal Gauss-Newton, for SDLM) built on `tensor-ops`; the
//! paper's RBF output and its digit bitmaps; the losses; the [`LeNet5`] model with
//! its `classic` (1998 paper) and `modern` presets; and the safetensors model file.
//!
//! ```
//! use lenet_layers::{LeNet5, ModelConfig, INPUT_LEN};
//! let mut net = LeNet5::new(ModelConfig::classic(), 42).unwrap();
//! assert_eq!(net.trainable_params(), 60_000);
//! let x = vec![-0.1; 4 * INPUT_LEN];          // four blank 32x32 images
//! net.forward(&x);
//! let stats = net.backward(&[5, 0, 4, 1], false);  // fills every parameter's .grad
//! assert!(stats.mean_loss() > 0.0);
//! ```
//!
//! Knows nothing of datasets, optimizers or the command line.

pub mod activation;
#[cfg(feature = "ndarray")]
mod array;
pub mod config;
pub mod conv;
pub mod error;
pub mod fc;
pub mod layer;
pub mod loss;
pub mod model;
pub mod model_file;
pub mod param;
pub mod pool;
pub mod rbf;

pub use config::{ConfigError, Init, ModelConfig, Output, Pooling, Preset, C3_TABLE};
pub use error::ModelError;
pub use layer::Layer;
pub use loss::{BatchStats, Loss};
pub use model::{LeNet5, Prediction, CLASSES, INPUT_LEN, INPUT_SIZE, PREDICT_CHUNK};
pub use param::{Param, ParamRole};
pub use tensor_ops::{Activation, Algo, AlignedVec};
