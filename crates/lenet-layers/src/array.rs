//! The `ndarray` front door (feature `ndarray`, on by default): images in as
//! `[N, 1, 32, 32]` array views, scores out as `[N, 10]` arrays, classes alone,
//! and every layer's feature maps as arrays. The slice methods underneath
//! ([`LeNet5::forward`], [`LeNet5::scores_into`]) stay for callers that manage
//! their own buffers (the trainer does).
//!
//! ```
//! use lenet_layers::{LeNet5, ModelConfig};
//! use ndarray::Array4;
//!
//! let mut net = LeNet5::new(ModelConfig::classic(), 1)?;
//! let x = Array4::<f32>::zeros((3, 1, 32, 32));
//! let scores = net.predict(x.view())?; // [3, 10]: RBF penalties, smaller is better
//! assert_eq!(scores.shape(), &[3, 10]);
//! let classes = net.classify(x.view())?;
//! assert_eq!(classes.len(), 3);
//! assert!(net.predict(Array4::<f32>::zeros((1, 1, 28, 28)).view()).is_err());
//! # Ok::<(), lenet_layers::ModelError>(())
//! ```

use ndarray::{Array2, ArrayView4, ArrayViewD, IxDyn};

use crate::{LeNet5, ModelError, CLASSES, INPUT_LEN, INPUT_SIZE};

impl LeNet5 {
    /// The scores `[N, 10]` (RBF penalties, smaller is better; or logits) of
    /// images `x` `[N, 1, 32, 32]`. Large batches are shared out over the rayon
    /// threads ([`LeNet5::scores_into`]); the result does not depend on their number.
    pub fn predict(&mut self, x: ArrayView4<'_, f32>) -> Result<Array2<f32>, ModelError> {
        let n = check_input(&x)?;
        let x = x.as_standard_layout();
        let mut scores = Array2::zeros((n, CLASSES));
        let (x, out) = (slice_of(&x), scores.as_slice_mut());
        if let (Some(x), Some(out)) = (x, out) {
            self.scores_into(x, out);
        }
        Ok(scores)
    }

    /// The predicted digit of each image of `x` `[N, 1, 32, 32]`.
    pub fn classify(&mut self, x: ArrayView4<'_, f32>) -> Result<Vec<usize>, ModelError> {
        let scores = self.predict(x)?;
        Ok(scores
            .rows()
            .into_iter()
            .map(|row| self.class_of(&row.to_vec()))
            .collect())
    }

    /// One forward pass on `x` `[N, 1, 32, 32]` (no threads beyond the kernels'),
    /// keeping every activation for [`LeNet5::feature_maps`]; returns the scores.
    pub fn forward_array(&mut self, x: ArrayView4<'_, f32>) -> Result<Array2<f32>, ModelError> {
        let n = check_input(&x)?;
        let x = x.as_standard_layout();
        let out = self.forward(slice_of(&x).unwrap_or_default()).to_vec();
        Array2::from_shape_vec((n, CLASSES), out).map_err(|e| ModelError::Input(e.to_string()))
    }

    /// Every layer's output of the last forward pass, by name (`act.c1.pre`,
    /// `act.c1.out`, ..., `act.output.penalties` or `act.output.logits`), each
    /// `[N, ...]`: what `lenet inspect` draws.
    ///
    /// ```
    /// use lenet_layers::{LeNet5, ModelConfig};
    /// let mut net = LeNet5::new(ModelConfig::classic(), 1)?;
    /// net.forward_array(ndarray::Array4::zeros((2, 1, 32, 32)).view())?;
    /// let maps = net.feature_maps();
    /// let (_, c1) = maps.iter().find(|(name, _)| name == "act.c1.out").unwrap();
    /// assert_eq!(c1.shape(), &[2, 6, 28, 28]);
    /// # Ok::<(), lenet_layers::ModelError>(())
    /// ```
    pub fn feature_maps(&self) -> Vec<(String, ArrayViewD<'_, f32>)> {
        self.named_activations()
            .into_iter()
            .filter_map(|(name, shape, data)| {
                ArrayViewD::from_shape(IxDyn(&shape), data)
                    .ok()
                    .map(|v| (name, v))
            })
            .collect()
    }
}

/// The batch size of `x`, if it is `[N, 1, 32, 32]`.
fn check_input(x: &ArrayView4<'_, f32>) -> Result<usize, ModelError> {
    match x.shape() {
        &[n, 1, INPUT_SIZE, INPUT_SIZE] => Ok(n),
        other => Err(ModelError::Input(format!(
            "input has shape {other:?}; the network takes [N, 1, {INPUT_SIZE}, {INPUT_SIZE}]"
        ))),
    }
}

/// The elements of a standard-layout array in order.
fn slice_of<'a>(x: &'a ndarray::CowArray<'_, f32, ndarray::Ix4>) -> Option<&'a [f32]> {
    x.as_slice().filter(|s| s.len() % INPUT_LEN == 0)
}
