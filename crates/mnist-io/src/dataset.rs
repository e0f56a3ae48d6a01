//! A labelled image set held as bytes: 60,000 MNIST images are 47 MB as `u8`;
//! the network's `f32` input is made one batch at a time ([`crate::InputSpec`]).

use std::path::{Path, PathBuf};

use crate::error::{MnistError, Result};
use crate::idx::{gzip, read_images, read_labels, IdxImages, IdxLabels};
use crate::sources::{DatasetKind, Split};

/// Images (`u8`, row-major) and their labels (0..=9), checked to agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
}

impl Dataset {
    /// Builds a dataset from raw parts, checking sizes and labels.
    ///
    /// ```
    /// let ds = mnist_io::Dataset::from_parts(vec![0; 2 * 4], vec![3, 7], 2, 2).unwrap();
    /// assert_eq!(ds.len(), 2);
    /// assert_eq!(ds.label(1), 7);
    /// assert!(mnist_io::Dataset::from_parts(vec![0; 4], vec![10], 2, 2).is_err());
    /// ```
    pub fn from_parts(pixels: Vec<u8>, labels: Vec<u8>, rows: usize, cols: usize) -> Result<Self> {
        Self::checked(
            pixels,
            labels,
            rows,
            cols,
            Path::new("<memory>"),
            Path::new("<memory>"),
        )
    }

    fn checked(
        pixels: Vec<u8>,
        labels: Vec<u8>,
        rows: usize,
        cols: usize,
        images_path: &Path,
        labels_path: &Path,
    ) -> Result<Self> {
        let per_image = rows * cols;
        if per_image == 0 || !pixels.len().is_multiple_of(per_image) {
            return Err(MnistError::BadDimensions {
                path: images_path.into(),
                what: format!(
                    "{} bytes are not a whole number of {rows}x{cols} images",
                    pixels.len()
                ),
            });
        }
        let n_images = pixels.len() / per_image;
        if n_images != labels.len() {
            return Err(MnistError::CountMismatch {
                images: images_path.into(),
                labels: labels_path.into(),
                n_images,
                n_labels: labels.len(),
            });
        }
        if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l > 9) {
            return Err(MnistError::BadLabel {
                path: labels_path.into(),
                index,
                label,
            });
        }
        Ok(Dataset {
            pixels,
            labels,
            rows,
            cols,
        })
    }

    /// Reads an image file and a label file (each raw or gzip) and checks that they agree.
    pub fn from_files(images_path: &Path, labels_path: &Path) -> Result<Self> {
        let images = read_images(images_path)?;
        let labels = read_labels(labels_path)?;
        Self::checked(
            images.pixels,
            labels.labels,
            images.rows,
            images.cols,
            images_path,
            labels_path,
        )
    }

    /// Writes the images and the labels as two IDX files, gzip-compressed when a
    /// path ends in `.gz`; each is written to a temporary file and renamed, so a
    /// reader never sees half a file. [`Dataset::from_files`] reads them back.
    ///
    /// ```
    /// use mnist_io::Dataset;
    /// let dir = tempfile::tempdir()?;
    /// let (images, labels) = (dir.path().join("x-images-idx3-ubyte.gz"), dir.path().join("x-labels-idx1-ubyte"));
    /// let ds = Dataset::from_parts(vec![7; 3 * 4], vec![1, 2, 3], 2, 2)?;
    /// ds.write_idx(&images, &labels)?;
    /// assert_eq!(Dataset::from_files(&images, &labels)?, ds);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_idx(&self, images_path: &Path, labels_path: &Path) -> Result<()> {
        let images = IdxImages {
            count: self.len(),
            rows: self.rows,
            cols: self.cols,
            pixels: self.pixels.clone(),
        }
        .to_bytes();
        let labels = IdxLabels {
            labels: self.labels.clone(),
        }
        .to_bytes();
        for (path, bytes) in [(images_path, images), (labels_path, labels)] {
            let gz = path.extension().is_some_and(|e| e == "gz");
            crate::store::write_atomic(path, &if gz { gzip(&bytes) } else { bytes })?;
        }
        Ok(())
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image height in pixels.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Image width in pixels.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Pixels of image `i` (`rows * cols` bytes). Panics if `i >= len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Label of image `i`. Panics if `i >= len()`, like slice indexing.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// All pixels, image after image.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Keeps the first `n` images (all of them when `n >= len()`): the `--limit` helper.
    pub fn limit(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.pixels.truncate(n * self.rows * self.cols);
        self
    }

    /// Splits off the last `n` images, e.g. as a validation set held out of training:
    /// returns (the first `len() - n`, the last `n`). At least one image must remain.
    ///
    /// ```
    /// let ds = mnist_io::Dataset::from_parts(vec![0; 5 * 4], vec![0, 1, 2, 3, 4], 2, 2).unwrap();
    /// let (train, valid) = ds.split_last(2).unwrap();
    /// assert_eq!((train.labels(), valid.labels()), (&[0, 1, 2][..], &[3, 4][..]));
    /// ```
    pub fn split_last(mut self, n: usize) -> Result<(Self, Self)> {
        if n >= self.len() {
            return Err(MnistError::InvalidArgument(format!(
                "holding out {n} of {} images leaves none to train on",
                self.len()
            )));
        }
        let keep = self.len() - n;
        let last = Dataset {
            pixels: self.pixels.split_off(keep * self.rows * self.cols),
            labels: self.labels.split_off(keep),
            rows: self.rows,
            cols: self.cols,
        };
        Ok((self, last))
    }

    /// A new dataset of the images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(MnistError::InvalidArgument(format!(
                "index {bad} is out of range for a dataset of {} images",
                self.len()
            )));
        }
        let pixels = indices
            .iter()
            .flat_map(|&i| self.image(i).iter().copied())
            .collect();
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Ok(Dataset {
            pixels,
            labels,
            rows: self.rows,
            cols: self.cols,
        })
    }
}

/// The training and test sets of one MNIST-style dataset.
#[derive(Debug, Clone)]
pub struct TrainTest {
    /// The training split (60,000 images for MNIST).
    pub train: Dataset,
    /// The test split (10,000 images for MNIST).
    pub test: Dataset,
}

/// Where a split's file lies in `dir`: the raw name, or the name with `.gz`.
/// Anything at the path counts (a directory or device there is then refused by
/// the reader, not taken for a missing file to download).
pub fn locate(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.symlink_metadata().is_ok())
}

impl TrainTest {
    /// Loads both splits from a directory holding the four files (raw or `.gz`).
    ///
    /// This only parses and checks the format; [`crate::verify_dir`] checks the
    /// published checksums.
    pub fn load(dir: &Path, kind: DatasetKind) -> Result<Self> {
        Ok(TrainTest {
            train: load_split(dir, kind, Split::Train)?,
            test: load_split(dir, kind, Split::Test)?,
        })
    }
}

/// Loads one split from a directory holding its two files (raw or `.gz`).
pub fn load_split(dir: &Path, kind: DatasetKind, split: Split) -> Result<Dataset> {
    let [images, labels] = kind.split_files(split);
    let find = |name: &str| {
        locate(dir, name).ok_or_else(|| MnistError::NotFound {
            dir: dir.into(),
            file: name.to_string(),
        })
    };
    Dataset::from_files(&find(images.name)?, &find(labels.name)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{idx_images, idx_labels};

    #[test]
    fn files_that_disagree_in_count_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (i, l) = (dir.path().join("i"), dir.path().join("l"));
        std::fs::write(&i, idx_images(3, 2, 2, |_| 0)).unwrap();
        std::fs::write(&l, idx_labels(&[1, 2])).unwrap();
        let err = Dataset::from_files(&i, &l).unwrap_err();
        assert!(
            matches!(
                err,
                MnistError::CountMismatch {
                    n_images: 3,
                    n_labels: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_label_names_file_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let (i, l) = (dir.path().join("i"), dir.path().join("labels-file"));
        std::fs::write(&i, idx_images(3, 2, 2, |_| 0)).unwrap();
        std::fs::write(&l, idx_labels(&[1, 12, 2])).unwrap();
        let err = Dataset::from_files(&i, &l).unwrap_err();
        assert!(matches!(
            err,
            MnistError::BadLabel {
                index: 1,
                label: 12,
                ..
            }
        ));
        assert!(err.to_string().contains("labels-file"));
    }

    #[test]
    fn limit_and_subset() {
        let ds =
            Dataset::from_parts((0..5 * 4).map(|i| i as u8).collect(), vec![0, 1, 2, 3, 4], 2, 2).unwrap();
        let first = ds.clone().limit(2);
        assert_eq!(first.labels(), &[0, 1]);
        assert_eq!(first.pixels().len(), 8);
        assert_eq!(ds.clone().limit(99).len(), 5);
        let sub = ds.subset(&[4, 0]).unwrap();
        assert_eq!(sub.labels(), &[4, 0]);
        assert_eq!(sub.image(0), ds.image(4));
        assert!(ds.subset(&[5]).is_err());
        let (kept, held) = ds.clone().split_last(2).unwrap();
        assert_eq!((kept.labels(), held.labels()), (&[0, 1, 2][..], &[3, 4][..]));
        assert_eq!(held.image(0), ds.image(3));
        assert_eq!(kept.pixels().len() + held.pixels().len(), ds.pixels().len());
        let (all, none) = ds.clone().split_last(0).unwrap();
        assert_eq!((all.len(), none.len()), (5, 0));
        let err = ds.split_last(5).unwrap_err();
        assert!(err.to_string().contains("leaves none to train on"), "{err}");
    }

    #[test]
    fn missing_dataset_says_how_to_import() {
        let dir = tempfile::tempdir().unwrap();
        let err = TrainTest::load(dir.path(), DatasetKind::Mnist).unwrap_err();
        assert!(err.to_string().contains("fetch-mnist --from"), "{err}");
    }
}
