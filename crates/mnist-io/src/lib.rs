//! # mnist-io
//!
//! Everything between MNIST-style files on disk and the network's input tensor:
//!
//! - [`idx`]: the IDX format, raw or gzip (detected from the bytes), every header
//!   field checked against the file before anything is trusted or allocated;
//! - [`Dataset`]: images kept as `u8` (47 MB for MNIST's 60,000) with labels 0..=9;
//! - [`InputSpec`]: a batch as NCHW `f32`, padded 28x28 -> 32x32 and scaled the
//!   paper's way (background -0.1, ink 1.175) or another [`Normalization`];
//! - [`BatchSampler`]: seeded shuffled mini-batches (same seed, same order);
//! - [`Distortion`]: the paper's random affine (and elastic) training distortions;
//! - [`import_dir`] / [`verify_dir`]: get verified files into a data directory,
//!   checked by the SHA-256 of their decompressed bytes, written atomically;
//! - `download` (feature `download`): the same from public mirrors;
//! - [`TrainSet`] (feature `train`): a dataset as `lenet-optim`'s `TrainData`, with
//!   the parallel fill and the distortions the `lenet` command trains with.
//!
//! Works for any dataset of MNIST's shape: Fashion-MNIST loads the same way.
//!
//! ```no_run
//! use mnist_io::{DatasetKind, InputSpec, TrainTest};
//! let data = TrainTest::load("data/mnist".as_ref(), DatasetKind::Mnist)?;
//! let x = InputSpec::default().batch(&data.train, &[0, 1, 2, 3])?; // [4, 1, 32, 32]
//! assert_eq!(x.len(), 4 * 32 * 32);
//! # Ok::<(), mnist_io::MnistError>(())
//! ```

#[cfg(feature = "ndarray")]
mod array;
pub mod batch;
pub mod dataset;
#[cfg(feature = "image")]
pub mod digit;
pub mod distort;
#[cfg(feature = "download")]
pub mod download;
#[cfg(feature = "download")]
pub use download::{fetch, FetchSource};
pub mod error;
pub mod idx;
pub mod preprocess;
pub mod sources;
pub mod store;
#[cfg(test)]
pub(crate) mod testutil;
#[cfg(feature = "train")]
pub mod train;

pub use batch::{BatchSampler, InputSpec, Normalization};
pub use dataset::{load_split, locate, Dataset, TrainTest};
pub use distort::Distortion;
pub use error::{MnistError, Result};
pub use sources::{DatasetKind, FileSpec, Split};
#[cfg(feature = "progress")]
pub use store::BarProgress;
pub use store::{
    import_dir, sha256_decompressed, verify_dir, verify_file, FetchReport, FileOutcome, NoProgress, Progress,
};
#[cfg(feature = "train")]
pub use train::{fill_inputs_parallel, RunConfig, TrainSet};

/// Directory of the default data location, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data/mnist";
