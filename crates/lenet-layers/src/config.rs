//! What a LeNet-5 is made of: the `classic` preset follows the 1998 paper; every
//! departure from it is a named option.

use serde::{Deserialize, Serialize};
use tensor_ops::{Activation, Algo};

use crate::loss::Loss;

/// How S2 and S4 reduce 28x28 -> 14x14 and 10x10 -> 5x5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The paper's: sum of 4 x trainable coefficient + trainable bias, then squashed.
    Subsample,
    /// Plain 2x2 average, no parameters, no squashing.
    Avg,
    /// [`Pooling::Avg`] with the NumPy original's bug in the second-derivative pass:
    /// the weights 1/4 enter as they are instead of squared (1/16), so SDLM sees
    /// `h` 4x too large below S4 and 16x below S2. Forward and gradients as `Avg`.
    Avg2018,
    /// 2x2 max, no parameters, no squashing.
    Max,
}

/// The output layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// The paper's: ten Euclidean RBF units centred on fixed 7x12 digit bitmaps.
    Rbf,
    /// A trainable fully-connected layer of ten logits (with softmax cross-entropy).
    Softmax,
}

/// How parameters are drawn at the start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Init {
    /// The paper's: uniform in `(-scale / F, scale / F)`, `F` the unit's fan-in (scale 2.4).
    FanIn {
        /// The numerator; the paper's is 2.4.
        scale: f32,
    },
    /// PyTorch's default for conv and linear layers: uniform in `(-1/sqrt(F), 1/sqrt(F))`.
    Torch,
    /// eblearn's (the C++ port of the authors' Lush library; its MNIST LeNet-5 demo
    /// calls `forget_param_linear(1, 0.5)`): weights uniform in `(-1/sqrt(F), 1/sqrt(F))`
    /// as [`Init::Torch`], biases 0, subsampling coefficients `1/sqrt(4) = 0.5`.
    Eblearn,
    /// Normal with mean 0 and this standard deviation (the NumPy original: 0.1).
    Normal {
        /// Standard deviation.
        std: f32,
    },
}

/// Every choice that shapes a LeNet-5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The preset this config started from (`classic`, `modern`, `seed2018`), or `custom`.
    pub preset: String,
    /// What S2 and S4 do: trainable subsampling, average or max pooling.
    pub pooling: Pooling,
    /// Squashing function after C1, C3, C5, F6 (and S2, S4 when subsampling).
    pub activation: Activation,
    /// Use the paper's partial C3 connection table (else every S2 map feeds every C3 map).
    pub c3_table: bool,
    /// The last layer: RBF units or a fully-connected layer of 10.
    pub output: Output,
    /// The training criterion (and how scores become a class).
    pub loss: Loss,
    /// How parameters are drawn at the start.
    pub init: Init,
    /// Which kernel implementation the layers call. Not part of the model's identity.
    pub algo: Algo,
}

impl ModelConfig {
    /// Exactly the paper: subsampling, scaled tanh, C3 table, RBF output, MAP loss
    /// (j = 1), init uniform(+-2.4/F).
    pub fn classic() -> Self {
        ModelConfig {
            preset: "classic".into(),
            pooling: Pooling::Subsample,
            activation: Activation::ScaledTanh,
            c3_table: true,
            output: Output::Rbf,
            loss: Loss::Map { j: 1.0 },
            init: Init::FanIn { scale: 2.4 },
            algo: Algo::Parallel,
        }
    }

    /// ReLU, max pooling, full C3, ten logits with softmax cross-entropy.
    pub fn modern() -> Self {
        ModelConfig {
            preset: "modern".into(),
            pooling: Pooling::Max,
            activation: Activation::Relu,
            c3_table: false,
            output: Output::Softmax,
            loss: Loss::SoftmaxCrossEntropy,
            init: Init::Torch,
            algo: Algo::Parallel,
        }
    }

    /// The 2018 NumPy project's network: average pooling (with its second-derivative
    /// bug), scaled tanh, C3 table, RBF output with only 1/2 ||F6 - bitmap||^2 as
    /// loss, N(0, 0.1^2) init.
    pub fn seed2018() -> Self {
        ModelConfig {
            preset: "seed2018".into(),
            pooling: Pooling::Avg2018,
            activation: Activation::ScaledTanh,
            c3_table: true,
            output: Output::Rbf,
            loss: Loss::RbfMse { scale: 0.5 },
            init: Init::Normal { std: 0.1 },
            algo: Algo::Parallel,
        }
    }

    /// A preset by name.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "classic" => Some(Self::classic()),
            "modern" => Some(Self::modern()),
            "seed2018" => Some(Self::seed2018()),
            _ => None,
        }
    }

    /// Is the output layer consistent with the loss, and is every constant in
    /// range (MAP's j and MSE's scale in 0 to 1000, an activation's alpha within
    /// +-100)? A model file's configuration is checked the same way.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (self.output, self.loss) {
            (Output::Rbf, Loss::SoftmaxCrossEntropy) => return Err(ConfigError::RbfWithCrossEntropy),
            (Output::Softmax, Loss::Map { .. } | Loss::RbfMse { .. }) => {
                return Err(ConfigError::SoftmaxWithRbfLoss)
            }
            _ => {}
        }
        let within = |what: &'static str, v: f32, lo: f32, hi: f32| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange {
                    what,
                    value: v,
                    lo,
                    hi,
                })
            }
        };
        match self.loss {
            Loss::Map { j } => within("the MAP criterion's j", j, 0.0, 1000.0)?,
            Loss::RbfMse { scale } => within("the MSE loss's scale", scale, 0.0, 1000.0)?,
            Loss::SoftmaxCrossEntropy => {}
        }
        match self.activation {
            Activation::Prelu { alpha } | Activation::Elu { alpha } => {
                within("the activation's alpha", alpha, -100.0, 100.0)?
            }
            _ => {}
        }
        Ok(())
    }
}

/// A model configuration whose parts do not fit together.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// RBF penalties are not logits.
    #[error("an RBF output needs the MAP or MSE loss, not softmax cross-entropy")]
    RbfWithCrossEntropy,
    /// The MAP and MSE losses need RBF penalties.
    #[error("a softmax output needs the softmax cross-entropy loss")]
    SoftmaxWithRbfLoss,
    /// A constant outside the range any working model uses.
    #[error("{what} is {value}: out of range, from {lo} to {hi}")]
    OutOfRange {
        /// Which constant.
        what: &'static str,
        /// Its value.
        value: f32,
        /// The smallest accepted.
        lo: f32,
        /// The largest accepted.
        hi: f32,
    },
}

/// The paper's C3 table (Table I): which S2 maps feed each C3 map. Defined with
/// the kernels that take connection tables.
pub use tensor_ops::conv::LENET5_C3 as C3_TABLE;
