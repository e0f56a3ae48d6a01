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

/// The named networks. Each is a [`ModelConfig`] here ([`Preset::config`]) and a
/// training recipe in lenet-optim (`Recipe::for_preset`), so that picking a
/// preset picks how it trains too.
///
/// ```
/// use lenet_layers::{ModelConfig, Preset};
///
/// let preset: Preset = "modern".parse()?;
/// assert_eq!(preset.config(), ModelConfig::modern());
/// assert_eq!(preset.to_string(), "modern");
/// assert!("lenet4".parse::<Preset>().is_err());
/// # Ok::<(), lenet_layers::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The 1998 paper's network ([`ModelConfig::classic`]).
    Classic,
    /// ReLU, max pooling, softmax ([`ModelConfig::modern`]).
    Modern,
    /// The 2018 NumPy project, bugs and all ([`ModelConfig::seed2018`]).
    Seed2018,
}

impl Preset {
    /// Every preset, in the order the command lists them.
    pub const ALL: [Preset; 3] = [Preset::Classic, Preset::Modern, Preset::Seed2018];

    /// The name flags and files use.
    pub const fn name(self) -> &'static str {
        match self {
            Preset::Classic => "classic",
            Preset::Modern => "modern",
            Preset::Seed2018 => "seed2018",
        }
    }

    /// The preset's network.
    pub fn config(self) -> ModelConfig {
        match self {
            Preset::Classic => ModelConfig::classic(),
            Preset::Modern => ModelConfig::modern(),
            Preset::Seed2018 => ModelConfig::seed2018(),
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ConfigError::UnknownPreset(s.to_string()))
    }
}

/// Every choice that shapes a LeNet-5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The name of the [`Preset`] this config started from (`classic`, `modern`,
    /// `seed2018`); [`ModelConfig::departures`] says what was changed from it.
    /// Files written before the field was typed may carry a `+custom` suffix,
    /// which [`ModelConfig::base_preset`] ignores.
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
    /// The paper's network: subsampling, scaled tanh, C3 table, RBF output, MAP
    /// loss (j = 1), with the initialisation of the authors' own software
    /// ([`Init::Eblearn`]). That init is the one departure from the paper's text,
    /// chosen by validation error: the paper's uniform(+-2.4/F) shrinks the
    /// activations layer by layer and trains to a higher error on average
    /// (docs/results.md, "Initialisation"). [`ModelConfig::paper_literal`] is
    /// the paper read literally.
    pub fn classic() -> Self {
        ModelConfig {
            preset: "classic".into(),
            pooling: Pooling::Subsample,
            activation: Activation::ScaledTanh,
            c3_table: true,
            output: Output::Rbf,
            loss: Loss::Map { j: 1.0 },
            init: Init::Eblearn,
            algo: Algo::Parallel,
        }
    }

    /// Exactly the paper's text: [`ModelConfig::classic`] with the paper's
    /// initialisation, uniform(+-2.4/F) (`lenet train --init fan-in`).
    pub fn paper_literal() -> Self {
        ModelConfig {
            init: Init::FanIn { scale: 2.4 },
            ..Self::classic()
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
        name.parse::<Preset>().ok().map(Preset::config)
    }

    /// The preset this config started from, if its name is one.
    pub fn base_preset(&self) -> Option<Preset> {
        self.preset
            .strip_suffix("+custom")
            .unwrap_or(&self.preset)
            .parse()
            .ok()
    }

    /// The settings in which this config departs from its preset, by name
    /// (`pooling`, `activation`, `c3_table`, `output`, `loss`, `init`); empty
    /// for a preset as it is. The kernel choice is not part of a network.
    pub fn departures(&self) -> Vec<&'static str> {
        let Some(base) = self.base_preset().map(Preset::config) else {
            return vec!["preset"];
        };
        [
            ("pooling", self.pooling != base.pooling),
            ("activation", self.activation != base.activation),
            ("c3_table", self.c3_table != base.c3_table),
            ("output", self.output != base.output),
            ("loss", self.loss != base.loss),
            ("init", self.init != base.init),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
    }

    /// "classic", or "classic with init, pooling changed": for messages.
    pub fn describe(&self) -> String {
        let name: &str = match self.base_preset() {
            Some(p) => p.name(),
            None => &self.preset,
        };
        match self.departures() {
            d if d.is_empty() => name.to_string(),
            d => format!("{name} with {} changed", d.join(", ")),
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
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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
    /// A name that is not a preset.
    #[error("unknown preset {0:?} (classic, modern, seed2018)")]
    UnknownPreset(String),
}

/// The paper's C3 table (Table I): which S2 maps feed each C3 map. Defined with
/// the kernels that take connection tables.
pub use tensor_ops::conv::LENET5_C3 as C3_TABLE;
