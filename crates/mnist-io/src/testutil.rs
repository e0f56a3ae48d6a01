//! Builders of small IDX files for this crate's unit tests, from the real encoders.

use crate::idx::{IdxImages, IdxLabels};

pub use crate::idx::gzip;

/// IDX bytes of `count` images of `rows x cols`, pixel `i` (over the whole file) = `f(i)`.
pub fn idx_images(count: usize, rows: usize, cols: usize, f: impl Fn(usize) -> u8) -> Vec<u8> {
    IdxImages {
        count,
        rows,
        cols,
        pixels: (0..count * rows * cols).map(f).collect(),
    }
    .to_bytes()
}

/// IDX bytes of a label file.
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    IdxLabels {
        labels: labels.to_vec(),
    }
    .to_bytes()
}
