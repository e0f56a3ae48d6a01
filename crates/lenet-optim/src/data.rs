//! What the trainer needs from a dataset, without knowing where it comes from.

/// A labelled set the trainer can draw batches from. Implemented by the CLI over
/// `mnist-io`; tests implement it over synthetic data.
pub trait TrainData: Sync {
    /// Number of examples.
    fn len(&self) -> usize;

    /// True when there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The order in which epoch `epoch` (1-based) visits the examples; must depend
    /// only on the epoch (and a seed fixed at construction) so runs can resume.
    fn epoch_order(&self, epoch: usize) -> Vec<usize>;

    /// Writes the network input `[indices.len(), 1, 32, 32]` and the labels of
    /// examples `indices`. `epoch` lets on-the-fly distortions differ by epoch.
    fn fill(&self, indices: &[usize], epoch: usize, x: &mut [f32], labels: &mut [u8]);
}
