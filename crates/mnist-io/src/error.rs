//! Typed errors. Every variant names the file it is about and what is wrong.

use std::path::PathBuf;

/// Everything that can go wrong while reading, importing or fetching a dataset.
#[derive(Debug, thiserror::Error)]
pub enum MnistError {
    /// The operating system refused a read, write or rename.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system or decoder reported.
        #[source]
        source: std::io::Error,
    },

    /// The file is gzip-compressed but the compressed stream is damaged or cut short.
    #[error("{path}: bad gzip stream: {source}")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the operating system or decoder reported.
        #[source]
        source: std::io::Error,
    },

    /// The first four bytes are not an IDX magic number of the expected kind.
    #[error("{path}: not an IDX {expected} file (magic 0x{found:08x}, expected 0x{expected_magic:08x})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The kind of file wanted ("images" or "labels").
        expected: &'static str,
        /// The magic number of that kind.
        expected_magic: u32,
        /// The magic number in the file.
        found: u32,
    },

    /// The file ends before its header does.
    #[error("{path}: truncated IDX header ({len} bytes, need {need})")]
    TruncatedHeader {
        /// The file.
        path: PathBuf,
        /// Bytes in the file.
        len: usize,
        /// Bytes a header of this kind needs.
        need: usize,
    },

    /// The header's dimensions do not describe what this reader expects.
    #[error("{path}: bad IDX dimensions: {what}")]
    BadDimensions {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },

    /// The header claims more data than any dataset of this kind can hold.
    #[error("{path}: header claims {claimed} bytes of data, more than the limit of {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Bytes of data the header implies.
        claimed: u64,
        /// The largest payload accepted, in bytes.
        limit: u64,
    },

    /// The payload is shorter or longer than the header says.
    #[error("{path}: header says {expected} bytes of data but the file holds {actual}{more}",
        more = if *.actual > *.expected { " (trailing bytes)" } else { " (truncated)" })]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Bytes of data the header implies.
        expected: u64,
        /// What the file holds.
        actual: u64,
    },

    /// A label outside 0..=9.
    #[error("{path}: label {label} at index {index} is outside 0..=9")]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// Position of the item in the file.
        index: usize,
        /// The label found.
        label: u8,
    },

    /// The image and label files disagree in count.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// Images in the image file.
        n_images: usize,
        /// Labels in the label file.
        n_labels: usize,
    },

    /// A file's decompressed bytes do not have the published SHA-256.
    #[error("{path}: checksum mismatch (SHA-256 of decompressed bytes is {actual}, expected {expected})")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The published SHA-256, hex.
        expected: String,
        /// What the file holds.
        actual: String,
    },

    /// A file needed for import is not in the source folder.
    #[error("{dir}: no {file} or {file}.gz to import")]
    MissingFile {
        /// The folder searched.
        dir: PathBuf,
        /// The file name.
        file: String,
    },

    /// A required dataset file is absent from the data directory.
    #[error("{dir}: dataset not found ({file} is missing); import it with `cargo xtask fetch-mnist --from DIR` or download it with `cargo xtask fetch-mnist`")]
    NotFound {
        /// The folder searched.
        dir: PathBuf,
        /// The file name.
        file: String,
    },

    /// Every mirror failed; lists what was tried.
    #[error("could not download {file}; tried:\n{tried}\nOn a machine without internet, import the files from a folder instead: `cargo xtask fetch-mnist --from DIR` (DIR holds the four IDX files, raw or .gz)")]
    DownloadFailed {
        /// The file name.
        file: String,
        /// Each mirror tried and how it failed, one per line.
        tried: String,
    },

    /// The path names a directory, FIFO, device, socket or (for an output) a
    /// symbolic link: only regular files are read, or replaced.
    #[error("{}: {kind}, not a regular file: {what}", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is ("a directory", "a FIFO", "a symbolic link", ...).
        kind: &'static str,
        /// What was refused ("refusing to read it", "refusing to replace it").
        what: &'static str,
    },

    /// A caller-supplied argument is unusable (batch size 0, limit 0, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Result alias for this crate.
pub type Result<T, E = MnistError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> MnistError {
    let path = path.into();
    move |source| MnistError::Io { path, source }
}

impl From<lenet_fs::FsError> for MnistError {
    fn from(e: lenet_fs::FsError) -> Self {
        match e {
            lenet_fs::FsError::Io { path, source } => MnistError::Io { path, source },
            lenet_fs::FsError::NotRegular { path, kind, what } => MnistError::NotRegular { path, kind, what },
            lenet_fs::FsError::TooLarge { path, len, limit } => MnistError::Io {
                path,
                source: std::io::Error::other(format!("more than {limit} bytes (read {len})")),
            },
        }
    }
}
