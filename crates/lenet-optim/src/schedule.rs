//! Schedules piecewise constant in the epoch: the global learning rate, and SDLM's mu.

use serde::{Deserialize, Serialize};

use crate::SettingsError;

/// A piecewise-constant value by epoch (a learning rate, or SDLM's mu):
/// `steps[k] = (first_epoch, value)`, epochs counted from 1, sorted by epoch; the
/// value of the last step at or before an epoch applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// `(first_epoch, value)` pairs, first epochs increasing from 1.
    pub steps: Vec<(usize, f32)>,
}

impl Schedule {
    /// The paper's epsilon schedule for SDLM: 0.0005 for passes 1-2, 0.0002 for 3-5,
    /// 0.0001 for 6-8, 0.00005 for 9-12, 0.00001 from 13 on.
    pub fn paper() -> Self {
        Schedule {
            steps: vec![(1, 5e-4), (3, 2e-4), (6, 1e-4), (9, 5e-5), (13, 1e-5)],
        }
    }

    /// SDLM's mu as `lenet train` uses it: 1.0 for passes 1-8, then the paper's
    /// 0.02 from pass 9, when epsilon has decayed to 5e-5.
    ///
    /// ```
    /// let mu = lenet_optim::Schedule::sdlm_mu();
    /// assert_eq!((mu.at(8), mu.at(9)), (1.0, 0.02));
    /// ```
    pub fn sdlm_mu() -> Self {
        Schedule {
            steps: vec![(1, 1.0), (9, 0.02)],
        }
    }

    /// One value for every epoch.
    pub fn constant(value: f32) -> Self {
        Schedule {
            steps: vec![(1, value)],
        }
    }

    /// The same shape with every value multiplied by `factor`.
    ///
    /// ```
    /// let s = lenet_optim::Schedule::paper().scaled(2.0);
    /// assert_eq!(s.at(1), 1e-3);
    /// assert_eq!(s.at(20), 2e-5);
    /// ```
    pub fn scaled(mut self, factor: f32) -> Self {
        self.steps.iter_mut().for_each(|(_, r)| *r *= factor);
        self
    }

    /// The same shape rescaled so that epoch 1 gets exactly `first`: each value
    /// times `first / self.at(1)`, computed in f64 so that rescaling back and forth
    /// lands on the same f32 values (`--lr`).
    ///
    /// ```
    /// use lenet_optim::Schedule;
    ///
    /// let big = Schedule::paper().starting_at(12.8);
    /// assert_eq!(big.at(1), 12.8);
    /// assert_eq!(big.starting_at(5e-4), Schedule::paper());
    /// ```
    pub fn starting_at(mut self, first: f32) -> Self {
        let from = self.at(1) as f64;
        self.steps
            .iter_mut()
            .for_each(|(_, r)| *r = (*r as f64 * first as f64 / from) as f32);
        self
    }

    /// The value of `epoch` (1-based): a rate, or a mu.
    pub fn at(&self, epoch: usize) -> f32 {
        self.steps
            .iter()
            .take_while(|(e, _)| *e <= epoch)
            .last()
            .or(self.steps.first())
            .map_or(0.0, |s| s.1)
    }

    /// Are all values finite and positive, and the steps sorted?
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.steps.is_empty() {
            return Err(SettingsError::EmptySchedule);
        }
        if let Some((_, r)) = self.steps.iter().find(|(_, r)| !(r.is_finite() && *r > 0.0)) {
            return Err(SettingsError::ScheduleValue(*r));
        }
        if self.steps.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(SettingsError::ScheduleOrder);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_schedule() {
        let s = Schedule::paper();
        let rates: Vec<f32> = (1..=14).map(|e| s.at(e)).collect();
        assert_eq!(
            rates,
            vec![5e-4, 5e-4, 2e-4, 2e-4, 2e-4, 1e-4, 1e-4, 1e-4, 5e-5, 5e-5, 5e-5, 5e-5, 1e-5, 1e-5]
        );
        assert!(s.validate().is_ok());
        assert!(Schedule::constant(f32::NAN).validate().is_err());
        assert!(Schedule::constant(0.0).validate().is_err());
    }
}
