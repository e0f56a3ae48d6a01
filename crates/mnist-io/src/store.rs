//! Getting verified files into a data directory: checksum checks, import from a
//! folder, and the one atomic writer that both import and download use.
//!
//! Invariant: a file named like a dataset file in the data directory is either
//! absent or complete and verified. Bytes are written to a hidden temporary file
//! beside it, hashed on the way, and renamed into place only when the SHA-256 of
//! the decompressed bytes matches.

use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::dataset::locate;
use crate::error::{io_err, MnistError, Result};
use crate::idx::open_decompressed;
use crate::sources::{DatasetKind, FileSpec};

/// Receives progress of long copies and downloads (bytes of decompressed data).
/// The CLI and xtask draw it with a progress bar; libraries pass [`NoProgress`].
pub trait Progress {
    /// A file starts; `total` is its decompressed length when known.
    fn begin(&mut self, _file: &str, _total: Option<u64>) {}
    /// `bytes` more bytes were written.
    fn advance(&mut self, _bytes: u64) {}
    /// The file is done (whether it succeeded or not).
    fn end(&mut self) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// A terminal progress bar per file (feature `progress`); draws nothing when
/// stderr is not a terminal.
#[cfg(feature = "progress")]
#[derive(Default)]
pub struct BarProgress {
    bar: Option<indicatif::ProgressBar>,
}

#[cfg(feature = "progress")]
impl Progress for BarProgress {
    fn begin(&mut self, file: &str, total: Option<u64>) {
        let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(file.to_string());
        self.bar = Some(bar);
    }
    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }
    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// It was already in place and verified; nothing was written.
    AlreadyPresent,
    /// Copied (decompressed if needed) from this file.
    Imported(PathBuf),
    /// Downloaded from this URL.
    Downloaded(String),
}

/// The outcome for each of a dataset's four files.
#[derive(Debug, Clone)]
pub struct FetchReport {
    /// Each file and what was done with it.
    pub files: Vec<(FileSpec, FileOutcome)>,
}

impl FetchReport {
    /// One line: how many files were already there, imported or downloaded.
    pub fn summary(&self) -> String {
        let count = |f: fn(&FileOutcome) -> bool| self.files.iter().filter(|(_, o)| f(o)).count();
        format!(
            "{} files verified ({} already present, {} imported, {} downloaded)",
            self.files.len(),
            count(|o| matches!(o, FileOutcome::AlreadyPresent)),
            count(|o| matches!(o, FileOutcome::Imported(_))),
            count(|o| matches!(o, FileOutcome::Downloaded(_))),
        )
    }
}

/// SHA-256 (hex) and length of a file's decompressed bytes.
pub fn sha256_decompressed(path: &Path) -> Result<(String, u64)> {
    let (mut reader, raw_len) = open_decompressed(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    while let Some(n) = read_chunk(&mut reader, &mut buf, raw_len.is_none(), path)? {
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex(&hasher.finalize()), len))
}

/// Checks that a file (raw or gzip) decompresses to exactly the published bytes.
pub fn verify_file(path: &Path, spec: &FileSpec) -> Result<()> {
    let (actual, _) = sha256_decompressed(path)?;
    if actual != spec.sha256 {
        return Err(MnistError::Checksum {
            path: path.into(),
            expected: spec.sha256.into(),
            actual,
        });
    }
    Ok(())
}

/// Checks that `dir` holds all four files of `kind` (raw or `.gz`) with the published checksums.
pub fn verify_dir(dir: &Path, kind: DatasetKind) -> Result<()> {
    for spec in kind.files() {
        let path = locate(dir, spec.name).ok_or_else(|| MnistError::NotFound {
            dir: dir.into(),
            file: spec.name.into(),
        })?;
        verify_file(&path, spec)?;
    }
    Ok(())
}

/// Is the decompressed file `dir/<name>` present and verified? (Any error counts as no.)
pub(crate) fn present_and_verified(dir: &Path, spec: &FileSpec) -> bool {
    let path = dir.join(spec.name);
    path.is_file() && verify_file(&path, spec).is_ok()
}

/// Copies the four files of `kind` from `src` (each raw or `.gz`) into `dst` as raw
/// IDX files, verifying each. Files already present and verified are skipped.
/// A file that does not match its checksum is refused and nothing of it is left in `dst`.
pub fn import_dir(
    src: &Path,
    dst: &Path,
    kind: DatasetKind,
    progress: &mut dyn Progress,
) -> Result<FetchReport> {
    import_files(src, dst, kind.files(), progress)
}

/// [`import_dir`] for the files `specs` only.
pub(crate) fn import_files(
    src: &Path,
    dst: &Path,
    specs: &[FileSpec],
    progress: &mut dyn Progress,
) -> Result<FetchReport> {
    fs::create_dir_all(dst).map_err(io_err(dst))?;
    let mut files = Vec::new();
    for spec in specs {
        if present_and_verified(dst, spec) {
            files.push((*spec, FileOutcome::AlreadyPresent));
            continue;
        }
        let from = locate(src, spec.name).ok_or_else(|| MnistError::MissingFile {
            dir: src.into(),
            file: spec.name.into(),
        })?;
        let (reader, raw_len) = open_decompressed(&from)?;
        install_verified(reader, raw_len.is_none(), &from, dst, spec, progress)?;
        files.push((*spec, FileOutcome::Imported(from)));
    }
    Ok(FetchReport { files })
}

/// Streams decompressed bytes into `dst/<spec.name>` through a temporary file,
/// hashing them; renames into place only if length and SHA-256 match.
/// `source` names where the bytes come from, for errors.
pub(crate) fn install_verified(
    reader: impl Read,
    compressed: bool,
    source: &Path,
    dst: &Path,
    spec: &FileSpec,
    progress: &mut dyn Progress,
) -> Result<()> {
    let out = lenet_fs::AtomicFile::create(&dst.join(spec.name))?;
    progress.begin(spec.name, Some(spec.len));
    let result = write_hashed(reader, compressed, source, out, spec, progress);
    progress.end();
    result
}

/// Writes `bytes` to `path` atomically ([`lenet_fs::write_atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(lenet_fs::write_atomic(path, bytes)?)
}

fn write_hashed(
    reader: impl Read,
    compressed: bool,
    source: &Path,
    file: lenet_fs::AtomicFile,
    spec: &FileSpec,
    progress: &mut dyn Progress,
) -> Result<()> {
    let tmp_path = file.temp_path().to_path_buf();
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let mut hasher = Sha256::new();
    // Never write more than one byte past the expected length (gzip bombs, wrong files).
    let mut reader = reader.take(spec.len + 1);
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    while let Some(n) = read_chunk(&mut reader, &mut buf, compressed, source)? {
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_err(&tmp_path))?;
        len += n as u64;
        progress.advance(n as u64);
    }
    let actual = hex(&hasher.finalize());
    if len != spec.len {
        return Err(MnistError::SizeMismatch {
            path: source.into(),
            expected: spec.len,
            actual: len,
        });
    }
    if actual != spec.sha256 {
        return Err(MnistError::Checksum {
            path: source.into(),
            expected: spec.sha256.into(),
            actual,
        });
    }
    // only bytes of the right length and hash land at the final path
    let file = out.into_inner().map_err(|e| MnistError::Io {
        path: tmp_path,
        source: e.into_error(),
    })?;
    Ok(file.commit()?)
}

/// Reads the next chunk of decompressed bytes (`None` at the end); a failure is
/// a gzip error when the stream is compressed, an I/O error otherwise.
fn read_chunk(
    reader: &mut impl Read,
    buf: &mut [u8],
    compressed: bool,
    path: &Path,
) -> Result<Option<usize>> {
    loop {
        return match reader.read(buf) {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) if compressed => Err(MnistError::Gzip {
                path: path.into(),
                source,
            }),
            Err(source) => Err(MnistError::Io {
                path: path.into(),
                source,
            }),
        };
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
    }

    #[test]
    fn a_wrong_file_is_refused_and_leaves_nothing() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        for spec in DatasetKind::Mnist.files() {
            std::fs::write(src.path().join(spec.name), b"not mnist").unwrap();
        }
        let err = import_dir(src.path(), dst.path(), DatasetKind::Mnist, &mut NoProgress).unwrap_err();
        assert!(matches!(err, MnistError::SizeMismatch { .. }), "{err}");
        assert_eq!(
            std::fs::read_dir(dst.path()).unwrap().count(),
            0,
            "nothing half-copied"
        );
    }

    #[test]
    fn a_missing_source_file_is_named() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let err = import_dir(src.path(), dst.path(), DatasetKind::Mnist, &mut NoProgress).unwrap_err();
        assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");
    }
}
