//! What the trainer needs from a dataset, without knowing where it comes from.

/// Why a data source could not fill a batch (its own error, boxed).
pub type DataError = Box<dyn std::error::Error + Send + Sync>;

/// A labelled set the trainer can draw batches from. `mnist-io` implements it for
/// MNIST-style datasets (its `train` feature); tests implement it over synthetic data.
pub trait TrainData: Sync {
    /// Number of examples.
    fn len(&self) -> usize;

    /// True when there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The order in which epoch `epoch` visits the examples; must depend only on
    /// the epoch (and a seed fixed at construction) so runs can resume. Training
    /// epochs count from 1; epoch 0 is evaluation (file order, no distortion).
    fn epoch_order(&self, epoch: usize) -> Vec<usize>;

    /// Writes the network input `[indices.len(), 1, 32, 32]` and the labels of
    /// examples `indices`. `epoch` lets on-the-fly distortions differ by epoch
    /// (epoch 0: none).
    fn fill(
        &self,
        indices: &[usize],
        epoch: usize,
        x: &mut [f32],
        labels: &mut [u8],
    ) -> Result<(), DataError>;
}
