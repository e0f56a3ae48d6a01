//! Typed errors of model construction and model files.

use std::path::PathBuf;

/// What can go wrong building, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An inconsistent configuration (e.g. an RBF output with cross-entropy).
    #[error("invalid model configuration: {0}")]
    Config(#[from] crate::config::ConfigError),

    /// Input of the wrong shape (the network takes `[N, 1, 32, 32]`).
    #[error("{0}")]
    Input(String),

    /// The operating system refused a read, write or rename.
    #[error("{path}: {source}")]
    Io {
        /// The model file.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },

    /// The file is not a readable safetensors file.
    #[error("{path}: not a valid safetensors model file: {msg}")]
    Format {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },

    /// The file's metadata lacks the model configuration or holds a bad one.
    #[error("{path}: bad model metadata: {msg}")]
    Metadata {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },

    /// A tensor the model needs is not in the file.
    #[error("{path}: tensor {name} is missing")]
    MissingTensor {
        /// The model file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },

    /// The file holds a tensor this model does not have.
    #[error("{path}: unexpected tensor {name} (not part of a {preset} model)")]
    UnexpectedTensor {
        /// The model file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The preset the file's metadata names.
        preset: String,
    },

    /// A tensor has the wrong shape for this model.
    #[error("{path}: tensor {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The model file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The shape this model needs.
        expected: Vec<usize>,
        /// What the file holds.
        found: Vec<usize>,
    },

    /// A tensor is not stored as 32-bit floats.
    #[error("{path}: tensor {name} has dtype {found}, expected F32")]
    Dtype {
        /// The model file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// What the file holds.
        found: String,
    },

    /// A tensor holds values no trained model has (NaN, infinities, wrong fixed values).
    #[error("{path}: tensor {name} {what}")]
    BadValues {
        /// The model file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// What is wrong with its values.
        what: String,
    },

    /// The path names a directory, FIFO, device, socket or (for an output) a
    /// symbolic link: only regular files are read, or replaced.
    #[error("{path}: {kind}, not a regular file: {what}")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is ("a directory", "a FIFO", "a symbolic link", ...).
        kind: &'static str,
        /// What was refused ("refusing to read it", "refusing to replace it").
        what: &'static str,
    },

    /// The file is larger than any model file can be.
    #[error("{path}: file is {len} bytes, more than the {limit}-byte limit for a model file")]
    TooLarge {
        /// The model file.
        path: PathBuf,
        /// The file's size in bytes.
        len: u64,
        /// The largest model file accepted, in bytes.
        limit: u64,
    },
}

impl From<lenet_fs::FsError> for ModelError {
    fn from(e: lenet_fs::FsError) -> Self {
        match e {
            lenet_fs::FsError::Io { path, source } => ModelError::Io { path, source },
            lenet_fs::FsError::NotRegular { path, kind, what } => ModelError::NotRegular { path, kind, what },
            lenet_fs::FsError::TooLarge { path, len, limit } => ModelError::TooLarge { path, len, limit },
        }
    }
}
