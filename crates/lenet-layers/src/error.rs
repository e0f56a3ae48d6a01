//! Typed errors of model construction and model files.

use std::path::PathBuf;

/// What can go wrong building, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An inconsistent configuration (e.g. an RBF output with cross-entropy).
    #[error("invalid model configuration: {0}")]
    Config(String),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not a readable safetensors file.
    #[error("{path}: not a valid safetensors model file: {msg}")]
    Format { path: PathBuf, msg: String },

    /// The file's metadata lacks the model configuration or holds a bad one.
    #[error("{path}: bad model metadata: {msg}")]
    Metadata { path: PathBuf, msg: String },

    #[error("{path}: tensor {name} is missing")]
    MissingTensor { path: PathBuf, name: String },

    #[error("{path}: unexpected tensor {name} (not part of a {preset} model)")]
    UnexpectedTensor {
        path: PathBuf,
        name: String,
        preset: String,
    },

    #[error("{path}: tensor {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("{path}: tensor {name} has dtype {found}, expected F32")]
    Dtype {
        path: PathBuf,
        name: String,
        found: String,
    },

    #[error("{path}: tensor {name} {what}")]
    BadValues {
        path: PathBuf,
        name: String,
        what: String,
    },

    #[error("{path}: file is {len} bytes, more than the {limit}-byte limit for a model file")]
    TooLarge { path: PathBuf, len: u64, limit: u64 },
}
