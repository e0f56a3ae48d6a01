//! Parameter updates: SGD, SGD with momentum, and the paper's stochastic diagonal
//! Levenberg-Marquardt (SDLM), where each parameter `w_k` gets its own step
//! `eta_k = epsilon / (mu + h_kk)` from an estimate `h_kk` of the loss's diagonal
//! second derivative (see [`crate::hessian`]).

use lenet_layers::{BatchStats, LeNet5};
use serde::{Deserialize, Serialize};
use tensor_ops::AlignedVec;

use crate::schedule::Schedule;
use crate::SettingsError;

/// How SDLM turns second derivatives into rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HessianMode {
    /// The paper's: one rate per parameter, `eps / (mu + h_kk)`.
    PerParameter,
    /// The 2018 NumPy project's (a bug): one rate per layer, `eps / (mu + sum h)` with
    /// `h` summed over the layer's weights (its first tensor); the bias shares that rate.
    TensorSum,
}

/// The update rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Method {
    /// `w -= lr * g`.
    Sgd,
    /// `v = momentum * v + g; w -= lr * v`.
    Momentum {
        /// Fraction of the previous step kept, in `[0, 1)`.
        momentum: f32,
    },
    /// `v = momentum * v + g / (mu + h); w -= eps * v` (momentum 0: the paper).
    Sdlm {
        /// mu by epoch (the paper: 0.02 throughout).
        mu: Schedule,
        /// Fraction of the previous step kept, in `[0, 1)` (the paper: 0).
        momentum: f32,
        /// Patterns used to re-estimate `h` before each epoch (the paper: 500).
        samples: usize,
        /// One rate per parameter (the paper) or per layer.
        mode: HessianMode,
    },
}

impl Method {
    /// Does this method need a Hessian estimate before each epoch?
    pub fn hessian_samples(&self) -> Option<usize> {
        match self {
            Method::Sdlm { samples, .. } => Some(*samples),
            _ => None,
        }
    }
}

/// Rule plus global schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// The update rule.
    pub method: Method,
    /// The global learning rate (epsilon) by epoch.
    pub schedule: Schedule,
}

impl OptimizerConfig {
    /// Checks rates, momentum and mu.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.schedule.validate()?;
        let momentum = |m: f32| {
            if (0.0..1.0).contains(&m) {
                Ok(())
            } else {
                Err(SettingsError::Momentum(m))
            }
        };
        match &self.method {
            Method::Sgd => Ok(()),
            Method::Momentum { momentum: m } => momentum(*m),
            Method::Sdlm {
                mu,
                momentum: m,
                samples,
                ..
            } => {
                momentum(*m)?;
                mu.validate()?;
                if *samples == 0 {
                    return Err(SettingsError::NoHessianSamples);
                }
                Ok(())
            }
        }
    }
}

/// What an optimizer carries between steps (saved in checkpoints).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Momentum buffers, one per parameter tensor (empty without momentum).
    pub velocity: Vec<Vec<f32>>,
    /// SDLM's `h_kk`, one per parameter tensor (empty until estimated).
    pub hessian: Vec<Vec<f32>>,
}

/// An optimizer bound to one model's parameter layout.
#[derive(Debug, Clone)]
pub struct Optimizer {
    config: OptimizerConfig,
    state: OptimizerState,
    /// Per-parameter multiplier of the gradient for the current epoch (aligned as
    /// the parameters are: the fused steps stream both, [`AlignedVec`]).
    rates: Vec<AlignedVec>,
    rate: f32,
    /// For each tensor, the index of its layer's first tensor (`c1.bias` -> `c1.weight`).
    layer_head: Vec<usize>,
}

impl Optimizer {
    /// An optimizer for `model`'s parameters.
    pub fn new(config: OptimizerConfig, model: &LeNet5) -> Self {
        let layer = |name: &str| name.split('.').next().unwrap_or_default().to_string();
        let names: Vec<String> = model.params().map(|p| layer(&p.name)).collect();
        let layer_head = names
            .iter()
            .map(|n| names.iter().position(|m| m == n).unwrap_or_default())
            .collect();
        let velocity = match config.method {
            Method::Momentum { .. } | Method::Sdlm { .. } => {
                model.params().map(|p| vec![0.0; p.len()]).collect()
            }
            Method::Sgd => Vec::new(),
        };
        Optimizer {
            config,
            state: OptimizerState {
                velocity,
                hessian: Vec::new(),
            },
            rates: model.params().map(|p| AlignedVec::zeros(p.len())).collect(),
            rate: 0.0,
            layer_head,
        }
    }

    /// Restores saved state (from a checkpoint). Fails if it does not fit the model.
    pub fn restore(&mut self, state: OptimizerState, model: &LeNet5) -> Result<(), SettingsError> {
        let lens: Vec<usize> = model.params().map(|p| p.len()).collect();
        let fits = |v: &Vec<Vec<f32>>| v.is_empty() || v.iter().map(Vec::len).eq(lens.iter().copied());
        if !fits(&state.velocity) || !fits(&state.hessian) {
            return Err(SettingsError::StateMismatch);
        }
        self.state = state;
        Ok(())
    }

    /// The state to save.
    pub fn state(&self) -> &OptimizerState {
        &self.state
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Installs a fresh `h_kk` estimate (one vector per parameter tensor).
    pub fn set_hessian(&mut self, hessian: Vec<Vec<f32>>) {
        self.state.hessian = hessian;
    }

    /// The global rate of the current epoch.
    pub fn rate(&self) -> f32 {
        self.rate
    }

    /// Fixes the per-parameter steps for `epoch` (1-based) from the schedules and `h`.
    pub fn begin_epoch(&mut self, epoch: usize) {
        self.rate = self.config.schedule.at(epoch);
        for (t, rates) in self.rates.iter_mut().enumerate() {
            match &self.config.method {
                Method::Sgd | Method::Momentum { .. } => rates.fill(1.0),
                Method::Sdlm { mu, mode, .. } => {
                    let mu = mu.at(epoch);
                    let head = match mode {
                        HessianMode::PerParameter => t,
                        HessianMode::TensorSum => self.layer_head[t],
                    };
                    let Some(h) = self.state.hessian.get(head) else {
                        rates.fill(1.0 / mu);
                        continue;
                    };
                    match mode {
                        HessianMode::PerParameter => {
                            rates.iter_mut().zip(h).for_each(|(r, &h)| *r = 1.0 / (mu + h));
                        }
                        HessianMode::TensorSum => rates.fill(1.0 / (mu + h.iter().sum::<f32>())),
                    }
                }
            }
        }
    }

    /// A training step on a batch (`x`, `labels`): the gradients of its mean
    /// loss ([`LeNet5::train_step`]) and, if `accept` takes the batch's loss and
    /// errors, one update of every parameter ([`Optimizer::step`]).
    ///
    /// Without momentum, the update is plain descent and the model takes it on
    /// its way back ([`LeNet5::train_step_descend`]): at one image, C5 and F6
    /// never store their gradients (a batch-1 epoch runs 1.14-1.16x faster,
    /// docs/benchmarks.md). The parameters come out the same, bit for bit; their
    /// `grad` is not defined afterwards.
    pub fn train_step(
        &mut self,
        model: &mut LeNet5,
        x: &[f32],
        labels: &[u8],
        accept: impl FnOnce(&BatchStats) -> bool,
    ) -> BatchStats {
        if self.momentum().is_some() {
            let stats = model.train_step(x, labels);
            if accept(&stats) {
                self.step(model);
            }
            return stats;
        }
        model.train_step_descend(x, labels, self.rate, &self.rates, accept)
    }

    /// The momentum of the update, if it has one.
    fn momentum(&self) -> Option<f32> {
        match self.config.method {
            Method::Sgd => None,
            Method::Momentum { momentum } | Method::Sdlm { momentum, .. } => Some(momentum),
        }
        .filter(|&m| m > 0.0)
    }

    /// One update of every parameter from its `grad`.
    pub fn step(&mut self, model: &mut LeNet5) {
        let lr = self.rate;
        let Some(m) = self.momentum() else {
            return model.descend(lr, &self.rates);
        };
        for (t, p) in model.params_mut().enumerate() {
            let v = &mut self.state.velocity[t];
            tensor_ops::update::descend_momentum(&mut p.value, v, &p.grad, &self.rates[t], lr, m);
        }
    }
}
