//! The training loop: epochs of mini-batches (batch size 1 = the paper's pure
//! stochastic updates), SDLM's Hessian re-estimate before each epoch, evaluation
//! after it, an observer for progress, and a resumable [`Progress`].
//!
//! Every source of randomness is a function of the seed, the epoch and the position
//! in it (the data's epoch order and distortions), so a run stopped after any batch
//! and resumed from its [`Progress`] ends with the same model as one never stopped.

use std::time::Instant;

use lenet_layers::{BatchStats, LeNet5, INPUT_LEN};
use serde::{Deserialize, Serialize};

use crate::data::{DataError, TrainData};
use crate::hessian;
use crate::optimizer::Optimizer;
use crate::SettingsError;

/// Loop settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Patterns per update; gradients are averaged over a batch.
    pub batch_size: usize,
    /// Patterns per forward pass when evaluating.
    pub eval_batch: usize,
}

impl TrainConfig {
    /// Most images per batch (training or evaluation): a batch's inputs take 4 KB
    /// per image, so at most 256 MB.
    pub const MAX_BATCH: usize = 65_536;
    /// Most passes over the training set.
    pub const MAX_EPOCHS: usize = 10_000;

    /// Checks the settings a user (or a damaged checkpoint) can get wrong, before
    /// anything is allocated from them.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let check = |what: &'static str, value: usize, max: usize| {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err(SettingsError::OutOfRange { what, value, max })
            }
        };
        check("epochs", self.epochs, Self::MAX_EPOCHS)?;
        check("batch size", self.batch_size, Self::MAX_BATCH)?;
        check("evaluation batch size", self.eval_batch, Self::MAX_BATCH)
    }
}

impl Progress {
    /// Checks a progress record against the run's settings: the epoch in
    /// progress is one of the run's (or the one after its last, when done), and
    /// only an epoch in progress has a next batch.
    pub fn validate(&self, config: &TrainConfig) -> Result<(), SettingsError> {
        if !(1..=config.epochs + 1).contains(&self.epoch) {
            return Err(SettingsError::ProgressEpoch {
                epoch: self.epoch,
                last: config.epochs + 1,
            });
        }
        if self.next_batch > 0 && self.epoch > config.epochs {
            return Err(SettingsError::FinishedWithBatch(self.next_batch));
        }
        Ok(())
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    /// Mean loss over the epoch's training batches (as the weights moved).
    pub train_loss: f64,
    /// Fraction of training patterns misclassified during the epoch.
    pub train_error: f64,
    /// Loss and error on the images held out of training ([`EvalSets::valid`]).
    pub valid_loss: Option<f64>,
    /// Fraction of the held-out images misclassified.
    pub valid_error: Option<f64>,
    /// Loss and error on the test set ([`EvalSets::test`]).
    pub test_loss: Option<f64>,
    /// Fraction of the test images misclassified.
    pub test_error: Option<f64>,
    /// Training time of the epoch (Hessian estimate, forward, backward, updates; not evaluation).
    pub seconds: f64,
    /// Training images per second of `seconds`.
    pub images_per_s: f64,
    /// Global learning rate (epsilon) of the epoch.
    pub lr: f32,
}

/// What the trainer evaluates after each epoch, undistorted and in order.
///
/// `valid` is for choosing settings (epochs, schedules) without looking at the test
/// set: images held out of the training data, never trained on. `test` is for
/// reporting.
#[derive(Clone, Copy, Default)]
pub struct EvalSets<'a> {
    /// Images held out of training, for choosing settings.
    pub valid: Option<&'a dyn TrainData>,
    /// The test set, for reporting.
    pub test: Option<&'a dyn TrainData>,
}

/// Where a run is; saved in checkpoints so it can resume exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The epoch in progress or next to run (1-based).
    pub epoch: usize,
    /// The next batch of that epoch (0 = the epoch has not started).
    pub next_batch: usize,
    /// Sum of the losses of the epoch's patterns so far.
    pub loss_sum: f64,
    /// Patterns of the epoch so far misclassified (before their update).
    pub errors: usize,
    /// Patterns of the epoch so far.
    pub count: usize,
    /// Training seconds of the epoch so far.
    pub seconds: f64,
    /// Finished epochs.
    pub history: Vec<EpochMetrics>,
    /// The divergence watch (kept across epochs and in checkpoints).
    pub watch: LossWatch,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            epoch: 1,
            next_batch: 0,
            loss_sum: 0.0,
            errors: 0,
            count: 0,
            seconds: 0.0,
            history: Vec::new(),
            watch: LossWatch::default(),
        }
    }
}

/// Detects a diverging run early: a non-finite loss at once, and a loss climbing
/// above the untrained network's. A learning rate far too large need not produce
/// NaN (the classic network's tanh units saturate, which bounds its loss), but it
/// drives the loss above where it started; a run that learns brings it down.
///
/// The reference is the untrained model's mean loss on the first
/// [`LossWatch::WINDOW`] patterns of epoch 1, measured before the first update; then
/// every window of that many training patterns is compared with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LossWatch {
    /// Mean loss per pattern of the untrained model (set once, at the run's start).
    pub reference: Option<f64>,
    window_sum: f64,
    window_count: usize,
}

impl LossWatch {
    /// Patterns per comparison window.
    pub const WINDOW: usize = 256;
    /// A window whose mean loss exceeds `FACTOR` x the reference means divergence.
    pub const FACTOR: f64 = 2.0;

    /// Adds a batch's loss; `Err(why)` if the run has diverged.
    pub fn observe(&mut self, loss_sum: f64, count: usize) -> Result<(), Divergence> {
        if !loss_sum.is_finite() {
            return Err(Divergence::NonFinite(loss_sum));
        }
        self.window_sum += loss_sum;
        self.window_count += count;
        if self.window_count < Self::WINDOW {
            return Ok(());
        }
        let mean = self.window_sum / self.window_count as f64;
        let n = self.window_count;
        self.window_sum = 0.0;
        self.window_count = 0;
        match self.reference {
            Some(reference) if mean > Self::FACTOR * reference => Err(Divergence::Climbing {
                patterns: n,
                mean,
                reference,
            }),
            _ => Ok(()),
        }
    }
}

/// What [`LossWatch`] saw of a diverging run.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Divergence {
    /// A batch's loss is NaN or infinite.
    #[error("the loss is {0}")]
    NonFinite(f64),
    /// A window's mean loss is above [`LossWatch::FACTOR`] times the untrained network's.
    #[error("the mean loss of the last {patterns} patterns is {mean:.4}, more than {factor} times the untrained network's {reference:.4}", factor = LossWatch::FACTOR)]
    Climbing {
        /// Patterns in the window.
        patterns: usize,
        /// Their mean loss.
        mean: f64,
        /// The untrained network's mean loss.
        reference: f64,
    },
}

/// An observer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop after this batch; [`Trainer::run`] returns [`Outcome::Stopped`].
    Stop,
}

/// Progress reports; every method has a do-nothing default.
pub trait Observer {
    /// An epoch starts (`batches` in all).
    fn epoch_start(&mut self, _epoch: usize, _batches: usize) {}
    /// A batch is done.
    fn batch_end(&mut self, _progress: &Progress, _batches: usize) -> Control {
        Control::Continue
    }
    /// An epoch is done and evaluated; `trainer` and `model` are in a consistent state
    /// (a good moment to checkpoint).
    fn epoch_end(&mut self, _metrics: &EpochMetrics, _trainer: &Trainer, _model: &LeNet5) -> Control {
        Control::Continue
    }
}

/// Observes nothing.
pub struct Silent;
impl Observer for Silent {}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every epoch ran.
    Finished,
    /// The observer stopped the run; [`Trainer::progress`] says where.
    Stopped,
}

/// Training failures.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting no run can have.
    #[error("invalid training settings: {0}")]
    Settings(#[from] SettingsError),
    /// The loss became non-finite or climbed far above where it started.
    #[error("training diverged in epoch {epoch}, batch {batch}: {why}; last finite batch loss {last_finite:.4}. Lower the learning rate.")]
    Diverged {
        /// The epoch (1-based).
        epoch: usize,
        /// The batch of that epoch (1-based).
        batch: usize,
        /// What was seen: a non-finite loss, or a loss far above the untrained network's.
        why: Divergence,
        /// Mean loss of the last batch whose loss was finite (NaN if none was).
        last_finite: f64,
    },
    /// No training patterns.
    #[error("the training set is empty")]
    Empty,
    /// The data source could not produce a batch.
    #[error("epoch {epoch}: could not fill a batch: {source}")]
    Data {
        /// The epoch (0 = evaluation).
        epoch: usize,
        /// What the data source reported.
        #[source]
        source: DataError,
    },
}

/// Runs epochs; owns the optimizer and the progress.
pub struct Trainer {
    /// Epochs and batch sizes.
    pub config: TrainConfig,
    /// The update rule and its state.
    pub optimizer: Optimizer,
    /// Where the run is.
    pub progress: Progress,
}

impl Trainer {
    /// A trainer at the start of epoch 1.
    pub fn new(config: TrainConfig, optimizer: Optimizer) -> Result<Self, TrainError> {
        config.validate()?;
        optimizer.config().validate()?;
        Ok(Trainer {
            config,
            optimizer,
            progress: Progress::default(),
        })
    }

    /// Is every epoch done?
    pub fn finished(&self) -> bool {
        self.progress.epoch > self.config.epochs
    }

    /// Trains until the last epoch is done or the observer says stop.
    pub fn run(
        &mut self,
        model: &mut LeNet5,
        train: &dyn TrainData,
        eval: EvalSets,
        observer: &mut dyn Observer,
    ) -> Result<Outcome, TrainError> {
        if train.is_empty() {
            return Err(TrainError::Empty);
        }
        let bs = self.config.batch_size;
        let mut x = vec![0.0f32; bs * INPUT_LEN];
        let mut labels = vec![0u8; bs];
        let mut last_finite = f64::NAN;
        if self.progress.watch.reference.is_none() {
            let first = train.epoch_order(1);
            let sample = &first[..LossWatch::WINDOW.min(first.len())];
            let stats = evaluate_on(model, train, sample, self.config.eval_batch)?;
            self.progress.watch.reference = Some(stats.mean_loss());
        }
        while !self.finished() {
            let epoch = self.progress.epoch;
            let order = train.epoch_order(epoch);
            let batches = order.len().div_ceil(bs);
            if self.progress.next_batch > batches {
                return Err(SettingsError::PastTheData {
                    next: self.progress.next_batch,
                    batches,
                }
                .into());
            }
            observer.epoch_start(epoch, batches);
            let started = Instant::now();
            if self.progress.next_batch == 0 {
                if let Some(n) = self.optimizer.config().method.hessian_samples() {
                    let sample = &order[..n.min(order.len())];
                    let h = hessian::estimate(model, train, sample, epoch, bs.clamp(1, 100))
                        .map_err(|source| TrainError::Data { epoch, source })?;
                    self.optimizer.set_hessian(h);
                }
            }
            self.optimizer.begin_epoch(epoch);
            let seconds_before = self.progress.seconds;
            for (b, batch) in order.chunks(bs).enumerate().skip(self.progress.next_batch) {
                let n = batch.len();
                train
                    .fill(batch, epoch, &mut x[..n * INPUT_LEN], &mut labels[..n])
                    .map_err(|source| TrainError::Data { epoch, source })?;
                // the step is taken only if the loss has not diverged
                let (watch, mut verdict) = (&mut self.progress.watch, Ok(()));
                let stats = self
                    .optimizer
                    .train_step(model, &x[..n * INPUT_LEN], &labels[..n], |stats| {
                        verdict = watch.observe(stats.loss_sum, stats.count);
                        verdict.is_ok()
                    });
                if let Err(why) = verdict {
                    return Err(TrainError::Diverged {
                        epoch,
                        batch: b + 1,
                        why,
                        last_finite,
                    });
                }
                last_finite = stats.mean_loss();
                let p = &mut self.progress;
                p.next_batch = b + 1;
                p.loss_sum += stats.loss_sum;
                p.errors += stats.errors;
                p.count += stats.count;
                p.seconds = seconds_before + started.elapsed().as_secs_f64();
                if observer.batch_end(&self.progress, batches) == Control::Stop && b + 1 < batches {
                    return Ok(Outcome::Stopped);
                }
            }
            let p = &self.progress;
            let seconds = seconds_before + started.elapsed().as_secs_f64();
            let eval_on = |model: &mut LeNet5, data: Option<&dyn TrainData>| {
                data.map(|d| evaluate(model, d, self.config.eval_batch))
                    .transpose()
            };
            let valid_stats = eval_on(model, eval.valid)?;
            let test_stats = eval_on(model, eval.test)?;
            let metrics = EpochMetrics {
                epoch,
                train_loss: p.loss_sum / p.count.max(1) as f64,
                train_error: p.errors as f64 / p.count.max(1) as f64,
                valid_loss: valid_stats.map(|s| s.mean_loss()),
                valid_error: valid_stats.map(|s| s.error_rate()),
                test_loss: test_stats.map(|s| s.mean_loss()),
                test_error: test_stats.map(|s| s.error_rate()),
                seconds,
                images_per_s: p.count as f64 / seconds.max(1e-9),
                lr: self.optimizer.rate(),
            };
            let mut history = std::mem::take(&mut self.progress.history);
            history.push(metrics.clone());
            self.progress = Progress {
                epoch: epoch + 1,
                history,
                watch: self.progress.watch.clone(),
                ..Progress::default()
            };
            if observer.epoch_end(&metrics, self, model) == Control::Stop && !self.finished() {
                return Ok(Outcome::Stopped);
            }
        }
        Ok(Outcome::Finished)
    }
}

/// Loss and errors of `model` on all of `data` (in its epoch-0 order, unshuffled
/// data sets return `0..len`), `batch` patterns per forward pass.
pub fn evaluate(model: &mut LeNet5, data: &dyn TrainData, batch: usize) -> Result<BatchStats, TrainError> {
    let indices: Vec<usize> = (0..data.len()).collect();
    evaluate_on(model, data, &indices, batch)
}

/// Loss and errors of `model` on the patterns `indices` of `data`, undistorted.
pub fn evaluate_on(
    model: &mut LeNet5,
    data: &dyn TrainData,
    indices: &[usize],
    batch: usize,
) -> Result<BatchStats, TrainError> {
    let batch = batch.max(1);
    let mut x = vec![0.0f32; batch * INPUT_LEN];
    let mut labels = vec![0u8; batch];
    let mut total = BatchStats::default();
    for part in indices.chunks(batch) {
        let n = part.len();
        data.fill(part, 0, &mut x[..n * INPUT_LEN], &mut labels[..n])
            .map_err(|source| TrainError::Data { epoch: 0, source })?;
        total.add(model.evaluate(&x[..n * INPUT_LEN], &labels[..n]));
    }
    Ok(total)
}
