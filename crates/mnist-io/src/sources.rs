//! The datasets this crate knows by name: their files, checksums and mirrors.
//!
//! Checksums are SHA-256 of the **decompressed** IDX bytes: the `.gz` wrappers
//! differ between mirrors, their contents do not.

use std::fmt;
use std::str::FromStr;

/// One IDX file of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    /// File name without `.gz`, e.g. `train-images-idx3-ubyte`.
    pub name: &'static str,
    /// SHA-256 of the decompressed bytes, lower-case hex.
    pub sha256: &'static str,
    /// Length of the decompressed file in bytes.
    pub len: u64,
}

/// Which half of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

/// A dataset with the MNIST layout (28x28 `u8` images, labels 0..=9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DatasetKind {
    /// LeCun, Cortes & Burges' handwritten digits.
    #[default]
    Mnist,
    /// Zalando's Fashion-MNIST: same format, clothing instead of digits.
    FashionMnist,
}

const MNIST_FILES: [FileSpec; 4] = [
    FileSpec {
        name: "train-images-idx3-ubyte",
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        len: 47_040_016,
    },
    FileSpec {
        name: "train-labels-idx1-ubyte",
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        len: 60_008,
    },
    FileSpec {
        name: "t10k-images-idx3-ubyte",
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        len: 7_840_016,
    },
    FileSpec {
        name: "t10k-labels-idx1-ubyte",
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        len: 10_008,
    },
];

// Computed from Debian's `dataset-fashion-mnist` package (zcat FILE | sha256sum).
const FASHION_FILES: [FileSpec; 4] = [
    FileSpec {
        name: "train-images-idx3-ubyte",
        sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        len: 47_040_016,
    },
    FileSpec {
        name: "train-labels-idx1-ubyte",
        sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        len: 60_008,
    },
    FileSpec {
        name: "t10k-images-idx3-ubyte",
        sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        len: 7_840_016,
    },
    FileSpec {
        name: "t10k-labels-idx1-ubyte",
        sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        len: 10_008,
    },
];

impl DatasetKind {
    /// The four files: train images, train labels, test images, test labels.
    pub fn files(self) -> &'static [FileSpec; 4] {
        match self {
            DatasetKind::Mnist => &MNIST_FILES,
            DatasetKind::FashionMnist => &FASHION_FILES,
        }
    }

    /// The image and label file of one split.
    pub fn split_files(self, split: Split) -> [FileSpec; 2] {
        let [train_images, train_labels, test_images, test_labels] = *self.files();
        match split {
            Split::Train => [train_images, train_labels],
            Split::Test => [test_images, test_labels],
        }
    }

    /// The files of `split`, or all four for `None`: what a fetch of that
    /// split reads and writes.
    ///
    /// ```
    /// use mnist_io::{DatasetKind, Split};
    /// let test = DatasetKind::Mnist.files_for(Some(Split::Test));
    /// assert_eq!(test[0].name, "t10k-images-idx3-ubyte");
    /// assert_eq!(DatasetKind::Mnist.files_for(None).len(), 4);
    /// ```
    pub fn files_for(self, split: Option<Split>) -> &'static [FileSpec] {
        // train images and labels, then test images and labels
        let (train, test) = self.files().split_at(2);
        match split {
            None => self.files(),
            Some(Split::Train) => train,
            Some(Split::Test) => test,
        }
    }

    /// Public mirrors, tried in order; each serves `<mirror><name>.gz`.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
                "https://yann.lecun.com/exdb/mnist/",
            ],
            DatasetKind::FashionMnist => &[
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ],
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashion" => Ok(DatasetKind::FashionMnist),
            _ => Err(format!("unknown dataset {s:?} (expected mnist or fashion-mnist)")),
        }
    }
}
