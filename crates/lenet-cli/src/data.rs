//! The bridge from `mnist-io` datasets to the trainer's [`TrainData`].

use lenet_optim::TrainData;
use mnist_io::{BatchSampler, Dataset, Distortion, InputSpec};
use rayon::prelude::*;

/// Fewest images per task when a batch's inputs are filled in parallel.
const FILL_PER_TASK: usize = 64;

/// Images per task when a batch is distorted in parallel: a distortion costs
/// microseconds per image (an affine map's samples; an elastic field's draws and
/// blur), so small batches split too.
const DISTORT_PER_TASK: usize = 4;

/// [`InputSpec::fill`] with large batches spread over the threads: images are
/// independent, so the values are the same (filled on one thread, the inputs of a
/// batch of 256 were 1.7% of a training step with the other core idle).
pub fn fill_inputs(spec: &InputSpec, ds: &Dataset, indices: &[usize], x: &mut [f32]) -> mnist_io::Result<()> {
    let per_image = spec.size * spec.size;
    if x.len() != indices.len() * per_image {
        // the whole batch at once, for its error message
        return spec.fill(ds, indices, x);
    }
    let per_task = tensor_ops::threads::per_thread(indices.len(), FILL_PER_TASK);
    x.par_chunks_mut(per_task * per_image)
        .zip(indices.par_chunks(per_task))
        .try_for_each(|(x, indices)| spec.fill(ds, indices, x))
}

/// A dataset as the trainer sees it: seeded epoch orders, the paper's input
/// scaling, and optional on-the-fly distortions (never in epoch 0, which is
/// evaluation).
pub struct MnistData<'a> {
    pub dataset: &'a Dataset,
    pub spec: InputSpec,
    pub sampler: BatchSampler,
    pub distortion: Distortion,
    pub seed: u64,
}

/// Refuses a dataset whose images the network's input cannot hold (it centres
/// them on its canvas, never crops or zero-fills them), and, with `what` named,
/// an empty one.
fn check_images(dataset: &Dataset, what: Option<&str>) -> anyhow::Result<()> {
    if let Some(what) = what.filter(|_| dataset.is_empty()) {
        anyhow::bail!("the {what} set holds no images");
    }
    let (rows, cols, size) = (dataset.rows(), dataset.cols(), InputSpec::default().size);
    if !dataset.is_empty() && (rows > size || cols > size) {
        anyhow::bail!(
            "the images are {rows}x{cols}: the network's input is {size}x{size}, so images must be \
             at most that size (MNIST's are 28x28, centred on the canvas)"
        );
    }
    Ok(())
}

impl<'a> MnistData<'a> {
    /// Shuffled each epoch with `seed` (training).
    pub fn train(dataset: &'a Dataset, seed: u64, distortion: Distortion) -> anyhow::Result<Self> {
        check_images(dataset, Some("training"))?;
        let sampler = BatchSampler::new(dataset.len(), 1, seed, true)?;
        Ok(MnistData {
            dataset,
            spec: InputSpec::default(),
            sampler,
            distortion,
            seed,
        })
    }

    /// In file order, undistorted (evaluation); `what` names a set that must not
    /// be empty (`None`: the optional validation set).
    pub fn eval(dataset: &'a Dataset, what: Option<&str>) -> anyhow::Result<Self> {
        check_images(dataset, what)?;
        let sampler = BatchSampler::new(dataset.len().max(1), 1, 0, false)?;
        Ok(MnistData {
            dataset,
            spec: InputSpec::default(),
            sampler,
            distortion: Distortion::None,
            seed: 0,
        })
    }
}

impl TrainData for MnistData<'_> {
    fn len(&self) -> usize {
        self.dataset.len()
    }

    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        self.sampler.epoch_order(epoch as u64)
    }

    fn fill(&self, indices: &[usize], epoch: usize, x: &mut [f32], labels: &mut [u8]) {
        for (l, &i) in labels.iter_mut().zip(indices) {
            *l = self.dataset.label(i);
        }
        // Indices come from epoch_order, so they are in range and the sizes agree;
        // the constructors refused images that do not fit the input, so this
        // cannot fail.
        if fill_inputs(&self.spec, self.dataset, indices, x).is_err() {
            x.fill(0.0);
        }
        if epoch > 0 && !matches!(self.distortion, Distortion::None) {
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
    }
}
