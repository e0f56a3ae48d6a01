//! Safe file writes and reads, shared by every crate of lenet5-rs that touches files.
//!
//! - [`write_atomic`] replaces a file as a whole: a reader (or a process killed
//!   mid-write) sees the old file or the complete new one, never a part. It writes
//!   a temporary file beside the target ([`tempfile`]), syncs it and renames it over
//!   the target. A symbolic link, directory, FIFO or device at the target is
//!   refused: renaming over it would replace the link or the device node.
//! - [`read_capped`] reads a whole regular file of at most a byte budget. A FIFO
//!   (which would block) or a device (which never ends) is refused by name before
//!   it is opened, and the read stops one byte past the budget whatever size the
//!   file system reports.
//! - [`AtomicFile`] streams the same kind of write, for bytes that are checked
//!   (hashed, counted) on their way and land only if they pass.
//! - [`remove_stale_temps`] clears the temporary files that killed writers left.
//!
//! ```
//! # fn main() -> Result<(), lenet_fs::FsError> {
//! let dir = tempfile::tempdir().map_err(|e| lenet_fs::FsError::Io { path: ".".into(), source: e })?;
//! let path = dir.path().join("weights.bin");
//! lenet_fs::write_atomic(&path, b"new bytes")?;
//! assert_eq!(lenet_fs::read_capped(&path, 1024)?, b"new bytes");
//! // a budget smaller than the file is refused, not truncated
//! assert!(matches!(lenet_fs::read_capped(&path, 4), Err(lenet_fs::FsError::TooLarge { .. })));
//! # Ok(())
//! # }
//! ```

use std::fs::{self, FileType};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What went wrong with a file, naming it.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The operating system refused (missing file, permissions, full disk ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Something other than a regular file is at the path.
    #[error("{}: {kind}, not a regular file: {what}", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is: "a directory", "a symbolic link", "a FIFO", "a device", ...
        kind: &'static str,
        /// What was refused: "refusing to read it" or "refusing to replace it".
        what: &'static str,
    },
    /// The file holds more bytes than the reader allows.
    #[error("{}: more than the {limit}-byte limit (read {len} bytes before stopping)", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Bytes read before stopping (one past the limit).
        len: u64,
        /// The budget.
        limit: u64,
    },
}

/// Writes `bytes` to `path` through a temporary file beside it, synced, then
/// renamed: `path` is either the old file or the complete new one, never a
/// partial one. Only a regular file is replaced (see [`ensure_replaceable`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes).map_err(|source| FsError::Io {
        path: file.temp_path().into(),
        source,
    })?;
    file.commit()
}

/// A file being written in the background of `path`: bytes go to a temporary
/// file beside it, and [`commit`](AtomicFile::commit) syncs and renames it into
/// place. Dropped without a commit (an error, a failed check), the temporary
/// file is deleted and `path` is untouched. Use it to stream what
/// [`write_atomic`] would need in memory, or to check bytes before they land.
///
/// ```
/// # use std::io::Write;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("digits.idx");
/// let mut file = lenet_fs::AtomicFile::create(&path)?;
/// file.write_all(b"streamed ")?;
/// file.write_all(b"bytes")?;
/// assert!(!path.exists()); // nothing lands before the commit
/// file.commit()?;
/// assert_eq!(std::fs::read(&path)?, b"streamed bytes");
/// # Ok(())
/// # }
/// ```
pub struct AtomicFile {
    target: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Opens a temporary file beside `path`, after checking that `path` may be
    /// replaced ([`ensure_replaceable`]).
    pub fn create(path: &Path) -> Result<Self, FsError> {
        ensure_replaceable(path)?;
        let temp = tempfile::Builder::new()
            .prefix(&temp_prefix(path))
            .tempfile_in(parent_dir(path))
            .map_err(|source| FsError::Io {
                path: parent_dir(path).into(),
                source,
            })?;
        Ok(AtomicFile {
            target: path.into(),
            temp,
        })
    }

    /// Where the bytes go until the commit.
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// Syncs the bytes, renames them over the target and syncs the folder.
    pub fn commit(self) -> Result<(), FsError> {
        let AtomicFile { target, temp } = self;
        temp.as_file().sync_all().map_err(|source| FsError::Io {
            path: temp.path().into(),
            source,
        })?;
        // on error the temporary file is dropped, which deletes it
        temp.persist(&target).map_err(|e| FsError::Io {
            path: target.clone(),
            source: e.error,
        })?;
        if let Ok(d) = fs::File::open(parent_dir(&target)) {
            // the rename itself survives a power cut only once the folder is synced
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.temp.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.temp.flush()
    }
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// An output path may be absent or a regular file. A symbolic link, directory,
/// FIFO or device there is refused, never replaced.
pub fn ensure_replaceable(path: &Path) -> Result<(), FsError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => Err(FsError::NotRegular {
            path: path.into(),
            kind: kind_of(&meta.file_type()),
            what: "refusing to replace it",
        }),
        _ => Ok(()),
    }
}

/// An input path must be a regular file (after following links): a directory,
/// FIFO, device or socket is refused by name, before anything opens it.
pub fn ensure_regular(path: &Path) -> Result<(), FsError> {
    let meta = fs::metadata(path).map_err(|source| FsError::Io {
        path: path.into(),
        source,
    })?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(FsError::NotRegular {
            path: path.into(),
            kind: kind_of(&meta.file_type()),
            what: "refusing to read it",
        })
    }
}

/// Reads a whole regular file of at most `limit` bytes ([`ensure_regular`] first).
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, FsError> {
    ensure_regular(path)?;
    let io = |source| FsError::Io {
        path: path.into(),
        source,
    };
    let file = fs::File::open(path).map_err(io)?;
    let reported = file.metadata().map_err(io)?.len();
    let mut bytes = Vec::with_capacity(reported.min(limit) as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(FsError::TooLarge {
            path: path.into(),
            len: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// What names [`write_atomic`]'s temporary files: `.NAME.tmp-PID-` and a random tail.
const TEMP_MARK: &str = ".tmp-";

fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    format!(".{name}{TEMP_MARK}{}-", std::process::id())
}

/// Removes the temporary files that [`write_atomic`] leaves in `dir` when its
/// process is killed mid-write, if that process is gone (on Linux, `/proc/PID`
/// tells; elsewhere every one not of this process is removed). Returns how many
/// were removed.
pub fn remove_stale_temps(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix('.')
            .and_then(|rest| rest.rsplit_once(TEMP_MARK))
            .and_then(|(_, tail)| tail.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id()
            || (cfg!(target_os = "linux") && Path::new("/proc").join(pid.to_string()).exists());
        if !alive && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// What a non-regular file is, for messages.
pub fn kind_of(t: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}
