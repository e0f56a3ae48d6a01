//! The bridge to `lenet-optim`'s trainer (feature `train`): a [`Dataset`] as
//! [`TrainData`], with seeded epoch orders, the network's input scaling, batches
//! filled on every thread, and the paper's distortions drawn on the fly.
//!
//! ```
//! use lenet_optim::TrainData;
//! use mnist_io::{Dataset, Distortion, TrainSet};
//!
//! let ds = Dataset::from_parts(vec![128; 3 * 28 * 28], vec![4, 2, 7], 28, 28)?;
//! let train = TrainSet::shuffled(&ds, 1, Distortion::None)?;
//! let order = train.epoch_order(1); // epochs count from 1
//! let mut x = vec![0.0; 3 * 32 * 32];
//! let mut labels = [0u8; 3];
//! train.fill(&order, 1, &mut x, &mut labels)?;
//! assert!(labels.contains(&7));
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use lenet_layers::{ModelConfig, Preset};
use lenet_optim::{DataError, Recipe, TrainData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{BatchSampler, Dataset, Distortion, InputSpec, MnistError, Result};

/// Every setting that defines a training run on a dataset of MNIST's shape: the
/// network, the recipe, the seed, and what is done to the data. The `lenet`
/// command stores it in every checkpoint, in `config.json` and in the model
/// file's metadata, so a run is known by this value, not by its command line.
///
/// ```
/// use lenet_layers::Preset;
/// use mnist_io::RunConfig;
///
/// let run = RunConfig::preset(Preset::Classic, 1);
/// assert_eq!(run.recipe.train.batch_size, 1);
/// let json = serde_json::to_string(&run)?;
/// assert_eq!(serde_json::from_str::<RunConfig>(&json)?, run);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Version of this layout; [`RunConfig::VERSION`] for what this crate writes.
    pub version: u32,
    /// The preset the run started from.
    pub preset: Preset,
    /// The network (the preset's, with any setting changed).
    pub model: ModelConfig,
    /// The optimizer, its schedules, epochs and batch size.
    pub recipe: Recipe,
    /// Seed of initialisation, epoch orders and distortions.
    pub seed: u64,
    /// Train on the first N images of the training set only (`None`: all).
    pub limit: Option<usize>,
    /// Images held out at the end of the training set, never trained on, for
    /// the validation error.
    pub validation: usize,
    /// Distortions of training images, drawn anew each epoch.
    pub distortion: Distortion,
}

impl RunConfig {
    /// The layout version this crate writes and reads.
    pub const VERSION: u32 = 1;

    /// A preset's network and recipe, on the whole training set, undistorted.
    pub fn preset(preset: Preset, seed: u64) -> Self {
        RunConfig {
            version: Self::VERSION,
            preset,
            model: preset.config(),
            recipe: Recipe::for_preset(preset),
            seed,
            limit: None,
            validation: 0,
            distortion: Distortion::None,
        }
    }
}

/// Fewest images per task when a batch's inputs are filled in parallel: a
/// training batch of 32 fills on two threads, which keeps the second thread awake
/// for the next step (see `tensor_ops::threads::elementwise_piece`).
const FILL_PER_TASK: usize = 16;

/// Images per task when a batch is distorted in parallel: a distortion costs
/// microseconds per image (an affine map's samples; an elastic field's draws and
/// blur), so small batches split too.
const DISTORT_PER_TASK: usize = 4;

/// [`InputSpec::fill`] with large batches spread over rayon's threads: images are
/// independent, so the values are the same whatever the split.
pub fn fill_inputs_parallel(spec: &InputSpec, ds: &Dataset, indices: &[usize], x: &mut [f32]) -> Result<()> {
    let per_image = spec.size * spec.size;
    if x.len() != indices.len() * per_image {
        // the whole batch at once, for its error message
        return spec.fill(ds, indices, x);
    }
    let per_task = indices
        .len()
        .div_ceil(rayon::current_num_threads())
        .max(FILL_PER_TASK);
    x.par_chunks_mut(per_task * per_image)
        .zip(indices.par_chunks(per_task))
        .try_for_each(|(x, indices)| spec.fill(ds, indices, x))
}

/// A dataset as the trainer sees it: a seeded order per epoch, the network's
/// input (LeNet-5's 32x32 by default), and optional distortions in training
/// epochs (never in epoch 0, which is evaluation).
#[derive(Debug, Clone)]
pub struct TrainSet<'a> {
    dataset: &'a Dataset,
    spec: InputSpec,
    sampler: BatchSampler,
    distortion: Distortion,
    seed: u64,
}

impl<'a> TrainSet<'a> {
    /// For training: shuffled each epoch with `seed`, each image distorted by
    /// `distortion` (drawn from the seed, the epoch and the image's index).
    /// Refuses an empty dataset and images larger than the input.
    pub fn shuffled(dataset: &'a Dataset, seed: u64, distortion: Distortion) -> Result<Self> {
        Self::new(dataset, seed, true, distortion)
    }

    /// For evaluation: file order, undistorted. Refuses an empty dataset and
    /// images larger than the input.
    pub fn in_order(dataset: &'a Dataset) -> Result<Self> {
        Self::new(dataset, 0, false, Distortion::None)
    }

    fn new(dataset: &'a Dataset, seed: u64, shuffle: bool, distortion: Distortion) -> Result<Self> {
        let spec = InputSpec::default();
        spec.check_fits(dataset)?;
        let sampler = BatchSampler::new(dataset.len(), 1, seed, shuffle)?;
        Ok(TrainSet {
            dataset,
            spec,
            sampler,
            distortion,
            seed,
        })
    }

    /// The same set with another input geometry or scaling (refused if the
    /// images do not fit it). The trainer's models take [`InputSpec::default`].
    pub fn with_spec(mut self, spec: InputSpec) -> Result<Self> {
        spec.check_fits(self.dataset)?;
        self.spec = spec;
        Ok(self)
    }

    /// The dataset.
    pub fn dataset(&self) -> &'a Dataset {
        self.dataset
    }
}

impl TrainData for TrainSet<'_> {
    fn len(&self) -> usize {
        self.dataset.len()
    }

    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        self.sampler.epoch_order(epoch)
    }

    fn fill(
        &self,
        indices: &[usize],
        epoch: usize,
        x: &mut [f32],
        labels: &mut [u8],
    ) -> Result<(), DataError> {
        if labels.len() != indices.len() {
            return Err(MnistError::InvalidArgument(format!(
                "{} labels for a batch of {}",
                labels.len(),
                indices.len()
            ))
            .into());
        }
        fill_inputs_parallel(&self.spec, self.dataset, indices, x)?;
        for (l, &i) in labels.iter_mut().zip(indices) {
            *l = self.dataset.label(i);
        }
        if epoch > 0 && self.distortion != Distortion::None {
            // each image draws its distortion from its own seed: any split of the
            // batch over the threads gives the same images
            let (size, background) = (self.spec.size, self.spec.norm.apply(0));
            x.par_chunks_mut(DISTORT_PER_TASK * size * size)
                .zip(indices.par_chunks(DISTORT_PER_TASK))
                .for_each(|(x, indices)| {
                    self.distortion
                        .apply(x, size, background, indices, epoch, self.seed)
                });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(n: usize) -> Dataset {
        let pixels = (0..n * 28 * 28).map(|i| (i * 31 % 256) as u8).collect();
        Dataset::from_parts(pixels, (0..n).map(|i| (i % 10) as u8).collect(), 28, 28).unwrap()
    }

    #[test]
    fn the_parallel_fill_is_the_serial_one() {
        let ds = ds(300);
        let spec = InputSpec::default();
        let indices: Vec<usize> = (0..300).rev().collect();
        let mut x = vec![0.0; 300 * 32 * 32];
        fill_inputs_parallel(&spec, &ds, &indices, &mut x).unwrap();
        assert_eq!(x, spec.batch(&ds, &indices).unwrap());
    }

    #[test]
    fn epochs_shuffle_and_evaluation_keeps_file_order() {
        let ds = ds(50);
        let train = TrainSet::shuffled(&ds, 7, Distortion::None).unwrap();
        assert_ne!(train.epoch_order(1), train.epoch_order(2));
        assert_eq!(train.epoch_order(0), (0..50).collect::<Vec<_>>());
        assert_eq!(
            TrainSet::in_order(&ds).unwrap().epoch_order(3),
            (0..50).collect::<Vec<_>>()
        );
    }

    #[test]
    fn distortions_only_in_training_epochs() {
        let ds = ds(8);
        let set = TrainSet::shuffled(&ds, 1, Distortion::Affine { strength: 1.0 }).unwrap();
        let (mut x0, mut x1, mut l) = (vec![0.0; 8 * 1024], vec![0.0; 8 * 1024], [0u8; 8]);
        let all: Vec<usize> = (0..8).collect();
        set.fill(&all, 0, &mut x0, &mut l).unwrap();
        set.fill(&all, 1, &mut x1, &mut l).unwrap();
        assert_eq!(x0, InputSpec::default().batch(&ds, &all).unwrap());
        assert_ne!(x0, x1);
    }

    #[test]
    fn bad_sets_and_batches_are_refused() {
        let empty = Dataset::from_parts(vec![], vec![], 28, 28).unwrap();
        assert!(TrainSet::in_order(&empty).is_err());
        let big = Dataset::from_parts(vec![0; 40 * 40], vec![1], 40, 40).unwrap();
        let err = TrainSet::shuffled(&big, 1, Distortion::None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("40x40"), "{err}");
        let ds = ds(4);
        let set = TrainSet::in_order(&ds).unwrap();
        let mut x = vec![0.0; 2 * 1024];
        assert!(set.fill(&[0, 1], 1, &mut x, &mut [0u8; 3]).is_err());
        assert!(set.fill(&[0, 9], 1, &mut x, &mut [0u8; 2]).is_err());
    }
}
