//! Typed errors of training settings: what a user (or a damaged checkpoint) can
//! get wrong, each with the message the CLI shows.

/// A training setting that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// A count outside its bounds (epochs, batch sizes).
    #[error("{what} {value} is out of range: from 1 to {max}")]
    OutOfRange {
        /// What is counted ("epochs", "batch size", ...).
        what: &'static str,
        /// The value given.
        value: usize,
        /// The largest accepted.
        max: usize,
    },
    /// A schedule with no values.
    #[error("the schedule has no steps")]
    EmptySchedule,
    /// A learning rate or mu that is zero, negative, NaN or infinite.
    #[error("schedule value {0} is not a positive finite number")]
    ScheduleValue(f32),
    /// Schedule steps whose first epochs do not increase.
    #[error("schedule steps are not in increasing epoch order")]
    ScheduleOrder,
    /// A momentum outside `[0, 1)`.
    #[error("momentum {0} is out of range: from 0 to below 1")]
    Momentum(f32),
    /// SDLM asked to estimate the Hessian from no patterns.
    #[error("SDLM needs at least one pattern for its Hessian estimate")]
    NoHessianSamples,
    /// Saved optimizer state whose tensors do not match the model's.
    #[error("optimizer state does not match the model's parameters")]
    StateMismatch,
    /// A progress record's epoch outside the run.
    #[error("epoch {epoch} is out of range: from 1 to {last} (one past the run's last)")]
    ProgressEpoch {
        /// The epoch recorded.
        epoch: usize,
        /// One past the run's last epoch.
        last: usize,
    },
    /// A finished run that claims a batch in progress.
    #[error("a finished run has no next batch ({0})")]
    FinishedWithBatch(usize),
    /// A progress record pointing past the data's batches.
    #[error("the next batch, {next}, is past the epoch's {batches} batches of this data")]
    PastTheData {
        /// The batch recorded as next.
        next: usize,
        /// Batches in an epoch of this data.
        batches: usize,
    },
}
