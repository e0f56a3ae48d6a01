//! From bytes to the network's input, one batch at a time, and the seeded order
//! in which batches are drawn.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Dataset;
use crate::error::{MnistError, Result};

/// Images whose pixels [`InputSpec::fill`] requests from memory together before
/// converting them. Touching a shuffled batch's images first lets their cache
/// misses overlap: a whole epoch of batch-32 fills on one thread took 48 ms
/// without it and 28 ms with it (docs/benchmarks.md).
const FETCH_GROUP: usize = 16;

/// Bytes per cache line on the CPUs this runs on (x86-64 and most aarch64).
const CACHE_LINE: usize = 64;

/// How a pixel byte (0 = background, 255 = ink) becomes an input value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Normalization {
    /// The paper's: background -0.1, ink 1.175 (mean about 0, variance about 1 on MNIST).
    LeCun,
    /// `p / 255`: background 0, ink 1.
    ZeroOne,
    /// `(p / 255 - mean) / std`; MNIST's are mean 0.1307, std 0.3081.
    MeanStd {
        /// Mean of `p / 255` over the training set.
        mean: f32,
        /// Standard deviation of `p / 255` over the training set.
        std: f32,
    },
}

impl Normalization {
    /// The input value of pixel byte `p`.
    pub fn apply(self, p: u8) -> f32 {
        let p = p as f32;
        match self {
            Normalization::LeCun => -0.1 + 1.275 * p / 255.0,
            Normalization::ZeroOne => p / 255.0,
            Normalization::MeanStd { mean, std } => (p / 255.0 - mean) / std,
        }
    }
}

/// The network's input geometry and scaling: images are centred on a
/// `size x size` canvas filled with the background value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputSpec {
    /// Side of the square input (32 for LeNet-5: 28x28 padded by 2 on each side).
    pub size: usize,
    /// How pixel bytes become input values.
    pub norm: Normalization,
}

impl Default for InputSpec {
    /// LeNet-5's input: 32x32, background -0.1, ink 1.175.
    fn default() -> Self {
        InputSpec {
            size: 32,
            norm: Normalization::LeCun,
        }
    }
}

impl InputSpec {
    /// Writes images `indices` of `ds` into `out` as NCHW `f32`
    /// (`[indices.len(), 1, size, size]`, row-major).
    ///
    /// ```
    /// use mnist_io::{Dataset, InputSpec};
    /// let ds = Dataset::from_parts(vec![255; 28 * 28], vec![1], 28, 28).unwrap();
    /// let spec = InputSpec::default();
    /// let mut x = vec![0.0; 32 * 32];
    /// spec.fill(&ds, &[0], &mut x).unwrap();
    /// assert_eq!(x[0], -0.1); // padding is background
    /// assert_eq!(x[2 * 32 + 2], 1.175); // first pixel of the image
    /// ```
    pub fn fill(&self, ds: &Dataset, indices: &[usize], out: &mut [f32]) -> Result<()> {
        self.check_fits(ds)?;
        let (rows, cols, size) = (ds.rows(), ds.cols(), self.size);
        if out.len() != indices.len() * size * size {
            return Err(MnistError::InvalidArgument(format!(
                "output holds {} values, a batch of {} needs {}",
                out.len(),
                indices.len(),
                indices.len() * size * size
            )));
        }
        if let Some(&bad) = indices.iter().find(|&&i| i >= ds.len()) {
            return Err(MnistError::InvalidArgument(format!(
                "index {bad} out of range ({} images)",
                ds.len()
            )));
        }
        // One lookup table per call: 256 values instead of a division per pixel.
        let lut: [f32; 256] = std::array::from_fn(|p| self.norm.apply(p as u8));
        let (top, left) = ((size - rows) / 2, (size - cols) / 2);
        for (out, indices) in out
            .chunks_mut(FETCH_GROUP * size * size)
            .zip(indices.chunks(FETCH_GROUP))
        {
            // a shuffled batch's images lie anywhere in the dataset: read one byte
            // of each of their cache lines first, so that their misses overlap
            let first_bytes = indices.iter().fold(0u8, |acc, &i| {
                ds.image(i)
                    .iter()
                    .step_by(CACHE_LINE)
                    .fold(acc, |acc, &p| acc ^ p)
            });
            std::hint::black_box(first_bytes);
            for (canvas, &i) in out.chunks_exact_mut(size * size).zip(indices) {
                canvas.fill(lut[0]);
                for (r, src_row) in ds.image(i).chunks_exact(cols).enumerate() {
                    let dst_row = &mut canvas[(top + r) * size + left..][..cols];
                    for (d, &p) in dst_row.iter_mut().zip(src_row) {
                        *d = lut[p as usize];
                    }
                }
            }
        }
        Ok(())
    }

    /// Refuses a dataset that is empty or whose images are larger than the input
    /// (images are centred on the canvas, never cropped).
    pub fn check_fits(&self, ds: &Dataset) -> Result<()> {
        let (rows, cols, size) = (ds.rows(), ds.cols(), self.size);
        if ds.is_empty() {
            return Err(MnistError::InvalidArgument("the dataset holds no images".into()));
        }
        if rows > size || cols > size {
            return Err(MnistError::InvalidArgument(format!(
                "the images are {rows}x{cols}: the network's input is {size}x{size}, so images must be \
                 at most that size (MNIST's are 28x28, centred on the canvas)"
            )));
        }
        Ok(())
    }

    /// Like [`InputSpec::fill`] into a new vector.
    pub fn batch(&self, ds: &Dataset, indices: &[usize]) -> Result<Vec<f32>> {
        let mut out = vec![0.0; indices.len() * self.size * self.size];
        self.fill(ds, indices, &mut out)?;
        Ok(out)
    }
}

/// Draws the order of each epoch: a permutation of `0..n` that depends only on
/// `(seed, epoch)`, so a run can be resumed at any epoch and batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSampler {
    n: usize,
    batch_size: usize,
    seed: u64,
    shuffle: bool,
}

impl BatchSampler {
    /// A sampler over `n` examples. Fails for `batch_size == 0` or `n == 0`.
    ///
    /// ```
    /// let s = mnist_io::BatchSampler::new(10, 4, 42, true).unwrap();
    /// let order = s.epoch_order(1);
    /// assert_eq!(order, s.epoch_order(1)); // same seed and epoch, same order
    /// assert_ne!(order, s.epoch_order(2));
    /// assert_eq!(s.epoch_order(0), (0..10).collect::<Vec<_>>()); // evaluation
    /// assert_eq!(s.batches(&order).map(|b| b.len()).collect::<Vec<_>>(), vec![4, 4, 2]);
    /// ```
    pub fn new(n: usize, batch_size: usize, seed: u64, shuffle: bool) -> Result<Self> {
        if batch_size == 0 {
            return Err(MnistError::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        if n == 0 {
            return Err(MnistError::InvalidArgument(
                "cannot draw batches from an empty dataset".into(),
            ));
        }
        Ok(BatchSampler {
            n,
            batch_size,
            seed,
            shuffle,
        })
    }

    /// The example order of epoch `epoch`, counted as the trainer counts:
    /// training epochs from 1, and epoch 0 for evaluation, which is file order
    /// whether or not the sampler shuffles.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.n).collect();
        if self.shuffle && epoch > 0 {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(epoch as u64);
            order.shuffle(&mut rng);
        }
        order
    }

    /// The batches of an order (the last one may be smaller).
    pub fn batches<'a>(&self, order: &'a [usize]) -> std::slice::Chunks<'a, usize> {
        order.chunks(self.batch_size)
    }

    /// Number of batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.n.div_ceil(self.batch_size)
    }

    /// Batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds() -> Dataset {
        Dataset::from_parts(
            (0..3 * 28 * 28).map(|i| (i % 256) as u8).collect(),
            vec![1, 2, 3],
            28,
            28,
        )
        .unwrap()
    }

    #[test]
    fn lecun_scaling_endpoints() {
        assert_eq!(Normalization::LeCun.apply(0), -0.1);
        assert!((Normalization::LeCun.apply(255) - 1.175).abs() < 1e-6);
        assert_eq!(Normalization::ZeroOne.apply(255), 1.0);
        let m = Normalization::MeanStd { mean: 0.5, std: 0.5 };
        assert_eq!(m.apply(0), -1.0);
    }

    #[test]
    fn fill_pads_and_centres() {
        let ds = ds();
        let x = InputSpec::default().batch(&ds, &[2, 0]).unwrap();
        assert_eq!(x.len(), 2 * 32 * 32);
        // first image in the batch is dataset image 2
        for r in 0..28 {
            for c in 0..28 {
                let want = Normalization::LeCun.apply(ds.image(2)[r * 28 + c]);
                assert_eq!(x[(r + 2) * 32 + c + 2], want);
            }
        }
        // borders are background
        assert!(x[..64].iter().all(|&v| v == -0.1));
        assert!(x[32 * 32 - 64..32 * 32].iter().all(|&v| v == -0.1));
        assert_eq!(
            x[32 * 32 + 2 * 32 + 2],
            Normalization::LeCun.apply(ds.image(0)[0])
        );
    }

    #[test]
    fn fill_rejects_bad_arguments() {
        let ds = ds();
        let spec = InputSpec {
            size: 20,
            norm: Normalization::ZeroOne,
        };
        assert!(spec.batch(&ds, &[0]).is_err());
        assert!(InputSpec::default().batch(&ds, &[3]).is_err());
        let mut short = vec![0.0; 10];
        assert!(InputSpec::default().fill(&ds, &[0], &mut short).is_err());
    }

    #[test]
    fn sampler_is_a_seeded_permutation() {
        let s = BatchSampler::new(100, 7, 1, true).unwrap();
        let mut o = s.epoch_order(3);
        assert_ne!(o, (0..100).collect::<Vec<_>>());
        assert_ne!(o, BatchSampler::new(100, 7, 2, true).unwrap().epoch_order(3));
        o.sort();
        assert_eq!(o, (0..100).collect::<Vec<_>>());
        assert_eq!(s.batches_per_epoch(), 15);
        let fixed = BatchSampler::new(5, 2, 1, false).unwrap();
        assert_eq!(fixed.epoch_order(9), vec![0, 1, 2, 3, 4]);
        assert!(BatchSampler::new(5, 0, 1, true).is_err());
        assert!(BatchSampler::new(0, 1, 1, true).is_err());
    }
}
