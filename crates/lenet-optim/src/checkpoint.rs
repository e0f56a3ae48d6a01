//! Training checkpoints: everything needed to resume a run exactly — parameters,
//! model config, optimizer config and state (momentum buffers, SDLM's `h_kk`),
//! loop settings, progress (epoch, next batch, partial sums, history), and the seed
//! from which all of the run's randomness derives.
//!
//! File layout: `b"LENET5CK"`, format version (`u32` LE), payload length (`u64`
//! LE), CRC-32 of the payload (`u32` LE), payload (serde + bincode 2.0.1).
//!
//! bincode is unmaintained (RUSTSEC-2025-0141); it is used only in this module,
//! behind [`save`] / [`load`] / [`to_bytes`] / [`from_bytes`], so it can be swapped
//! without touching anything else.

use std::path::{Path, PathBuf};

use lenet_fs::{read_capped, write_atomic, FsError};
use lenet_layers::{LeNet5, ModelConfig, ModelError};
use serde::{Deserialize, Serialize};

use crate::optimizer::{Optimizer, OptimizerConfig, OptimizerState};
use crate::trainer::{Progress, TrainConfig, TrainError, Trainer};
use crate::SettingsError;

const MAGIC: &[u8; 8] = b"LENET5CK";
/// Current format version (3: SDLM's mu is a schedule by epoch; 4: each epoch's
/// metrics hold the validation loss and error).
pub const VERSION: u32 = 4;
const HEADER_LEN: usize = 8 + 4 + 8 + 4;
/// Largest payload accepted (a LeNet-5 checkpoint is well under 1 MB).
pub const MAX_PAYLOAD: u64 = 64 << 20;

/// A resumable snapshot of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The network's configuration.
    #[serde(with = "as_json")]
    pub model: ModelConfig,
    /// Trained tensors by name, in the model's order.
    pub tensors: Vec<(String, Vec<f32>)>,
    /// The update rule and its schedules.
    #[serde(with = "as_json")]
    pub optimizer: OptimizerConfig,
    /// Momentum buffers and the Hessian estimate.
    pub optimizer_state: OptimizerState,
    /// Epochs and batch sizes.
    pub train: TrainConfig,
    /// Where the run is.
    pub progress: Progress,
    /// The run's seed (initialisation, epoch orders, distortions).
    pub seed: u64,
    /// The caller's own settings (the CLI stores its flags as JSON here).
    pub run_config: String,
}

/// Configurations use internally tagged enums, which a non-self-describing format
/// like bincode cannot read back; they travel as JSON strings inside the payload.
mod as_json {
    use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(value).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// Checkpoint failures.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The operating system refused a read, write or rename.
    #[error("{path}: {source}")]
    Io {
        /// The checkpoint file.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start like a checkpoint.
    #[error("{path}: not a lenet5-rs checkpoint (bad magic bytes)")]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// A checkpoint of another format version.
    #[error("{path}: checkpoint format version {found}, this build reads version {VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in its header.
        found: u32,
    },
    /// The file is shorter (or longer) than its header says.
    #[error("{path}: truncated checkpoint ({len} bytes, header says {expected})")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        len: u64,
        /// The size its header implies.
        expected: u64,
    },
    /// The payload is not the one written.
    #[error("{path}: checkpoint is corrupted (checksum mismatch)")]
    Checksum {
        /// The file.
        path: PathBuf,
    },
    /// The payload's checksum holds but its contents cannot be read.
    #[error("{path}: checkpoint payload cannot be decoded: {msg}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder reported.
        msg: String,
    },
    /// Settings in the checkpoint no run can have.
    #[error("{path}: {source}")]
    Settings {
        /// The file.
        path: PathBuf,
        /// The setting that is wrong.
        #[source]
        source: SettingsError,
    },
    /// Tensors that do not fit the checkpoint's own model.
    #[error("{path}: checkpoint does not fit its model: {msg}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        msg: String,
    },
    /// The model configuration is invalid, or writing failed while saving.
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl Checkpoint {
    /// Snapshot of `model` and `trainer`.
    pub fn capture(model: &LeNet5, trainer: &Trainer, seed: u64, run_config: String) -> Self {
        Checkpoint {
            model: model.config().clone(),
            tensors: model
                .params()
                .map(|p| (p.name.clone(), p.value.to_vec()))
                .collect(),
            optimizer: trainer.optimizer.config().clone(),
            optimizer_state: trainer.optimizer.state().clone(),
            train: trainer.config.clone(),
            progress: trainer.progress.clone(),
            seed,
            run_config,
        }
    }

    /// The model with the saved parameters. `path` only names the file in errors.
    pub fn model(&self, path: &Path) -> Result<LeNet5, CheckpointError> {
        let mismatch = |msg: String| CheckpointError::Mismatch {
            path: path.into(),
            msg,
        };
        let mut model = LeNet5::uninit(self.model.clone())?;
        let expected: Vec<(String, usize)> = model.params().map(|p| (p.name.clone(), p.len())).collect();
        let found: Vec<(String, usize)> = self.tensors.iter().map(|(n, v)| (n.clone(), v.len())).collect();
        if expected != found {
            return Err(mismatch(format!("tensors {found:?}, the model has {expected:?}")));
        }
        if self.tensors.iter().any(|(_, v)| v.iter().any(|x| !x.is_finite())) {
            return Err(mismatch("a tensor holds NaN or infinity".into()));
        }
        for (p, (_, v)) in model.params_mut().zip(&self.tensors) {
            p.value.copy_from_slice(v);
        }
        Ok(model)
    }

    /// A trainer in the saved state, for `model` (from [`Checkpoint::model`]).
    pub fn trainer(&self, model: &LeNet5, path: &Path) -> Result<Trainer, CheckpointError> {
        let settings = |source| CheckpointError::Settings {
            path: path.into(),
            source,
        };
        let mut optimizer = Optimizer::new(self.optimizer.clone(), model);
        optimizer
            .restore(self.optimizer_state.clone(), model)
            .map_err(settings)?;
        let mut trainer = Trainer::new(self.train.clone(), optimizer).map_err(|e| match e {
            TrainError::Settings(source) => settings(source),
            other => CheckpointError::Mismatch {
                path: path.into(),
                msg: other.to_string(),
            },
        })?;
        trainer.progress = self.progress.clone();
        Ok(trainer)
    }
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ MAX_PAYLOAD as usize }>()
}

/// The checkpoint's bytes.
pub fn to_bytes(ck: &Checkpoint) -> Vec<u8> {
    // Encoding plain data into a Vec cannot fail short of running out of memory.
    let payload = bincode::serde::encode_to_vec(ck, bincode::config::standard()).unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Parses a checkpoint; `path` only names it in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
    let p = || path.to_path_buf();
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(CheckpointError::BadMagic { path: p() });
    }
    if bytes.len() < HEADER_LEN {
        return Err(CheckpointError::Truncated {
            path: p(),
            len: bytes.len() as u64,
            expected: HEADER_LEN as u64,
        });
    }
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let version = u32_at(8);
    if version != VERSION {
        return Err(CheckpointError::Version {
            path: p(),
            found: version,
        });
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&bytes[12..20]);
    let len = u64::from_le_bytes(len8);
    let have = (bytes.len() - HEADER_LEN) as u64;
    if len > MAX_PAYLOAD || len != have {
        return Err(CheckpointError::Truncated {
            path: p(),
            len: have,
            expected: len,
        });
    }
    let payload = &bytes[HEADER_LEN..];
    if crc32fast::hash(payload) != u32_at(20) {
        return Err(CheckpointError::Checksum { path: p() });
    }
    let (ck, used): (Checkpoint, usize) = bincode::serde::decode_from_slice(payload, bincode_config())
        .map_err(|e| CheckpointError::Decode {
            path: p(),
            msg: e.to_string(),
        })?;
    if used != payload.len() {
        return Err(CheckpointError::Decode {
            path: p(),
            msg: "trailing bytes after the payload".into(),
        });
    }
    // a checksum proves the bytes are the ones written, not that the values are
    // sane: the settings are checked as a new run's are
    ck.train
        .validate()
        .and_then(|()| ck.progress.validate(&ck.train))
        .map_err(|source| CheckpointError::Settings { path: p(), source })?;
    Ok(ck)
}

/// Writes a checkpoint atomically (temporary file, sync, rename).
pub fn save(ck: &Checkpoint, path: &Path) -> Result<(), CheckpointError> {
    write_atomic(path, &to_bytes(ck)).map_err(|e| match e {
        FsError::Io { path, source } => CheckpointError::Io { path, source },
        other => CheckpointError::Model(other.into()),
    })
}

/// Does the file at `path` start like a checkpoint (its magic bytes)? For
/// messages: a checkpoint given where a model file belongs.
pub fn looks_like(path: &Path) -> bool {
    let mut head = [0u8; 8];
    lenet_fs::ensure_regular(path).is_ok()
        && std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .is_ok()
        && &head == MAGIC
}

/// Reads a checkpoint.
/// Only a regular file is read, and at most [`MAX_PAYLOAD`] plus the header.
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = read_capped(path, MAX_PAYLOAD + HEADER_LEN as u64).map_err(|e| match e {
        FsError::Io { path, source } => CheckpointError::Io { path, source },
        FsError::TooLarge { path, len, .. } => CheckpointError::Truncated {
            path,
            len,
            expected: MAX_PAYLOAD,
        },
        other => CheckpointError::Model(other.into()),
    })?;
    from_bytes(&bytes, path)
}
