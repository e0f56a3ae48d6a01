//! Downloading a dataset from public mirrors (feature `download`).
//!
//! Each file is fetched as `<mirror><name>.gz`, decompressed on the fly, hashed,
//! and written through [`crate::store`]'s atomic writer: a file lands in the data
//! directory only if its decompressed bytes have the published SHA-256. Mirrors
//! are tried in order; when all fail, one error lists every URL and its reason
//! and says how to import from a folder instead.

use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

use crate::error::{io_err, MnistError, Result};
use crate::idx::gunzip_if_gzip;
use crate::sources::{DatasetKind, FileSpec, Split};
use crate::store::{install_verified, present_and_verified, FetchReport, FileOutcome, Progress};

/// Environment variable that overrides the mirror list with one base URL.
pub const MIRROR_ENV: &str = "LENET_MNIST_MIRROR";

/// The mirrors to try: `override_mirror` if given, else `$LENET_MNIST_MIRROR` if set,
/// else the dataset's public mirrors.
pub fn mirrors_for(kind: DatasetKind, override_mirror: Option<&str>) -> Vec<String> {
    let env = std::env::var(MIRROR_ENV).ok().filter(|s| !s.trim().is_empty());
    match override_mirror.map(str::to_string).or(env) {
        Some(m) if m.ends_with('/') => vec![m],
        Some(m) => vec![format!("{m}/")],
        None => kind.mirrors().iter().map(|s| s.to_string()).collect(),
    }
}

/// Downloads every file of `kind` that `dst` does not already hold verified.
pub fn download(
    dst: &Path,
    kind: DatasetKind,
    mirrors: &[String],
    progress: &mut dyn Progress,
) -> Result<FetchReport> {
    download_files(dst, kind.files(), mirrors, progress)
}

/// [`download`] for the files `specs` only.
fn download_files(
    dst: &Path,
    specs: &[FileSpec],
    mirrors: &[String],
    progress: &mut dyn Progress,
) -> Result<FetchReport> {
    std::fs::create_dir_all(dst).map_err(io_err(dst))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(600)))
        .build()
        .into();
    let mut files = Vec::new();
    for spec in specs {
        if present_and_verified(dst, spec) {
            files.push((*spec, FileOutcome::AlreadyPresent));
            continue;
        }
        let mut tried = Vec::new();
        let mut done = None;
        for mirror in mirrors {
            let url = format!("{mirror}{}.gz", spec.name);
            let attempt = agent
                .get(&url)
                .call()
                .map_err(|e| e.to_string())
                .and_then(|response| {
                    let body = BufReader::with_capacity(1 << 16, response.into_body().into_reader());
                    let (reader, compressed) = gunzip_if_gzip(body).map_err(|e| e.to_string())?;
                    install_verified(reader, compressed, Path::new(&url), dst, spec, progress)
                        .map_err(|e| e.to_string())
                });
            match attempt {
                Ok(()) => {
                    done = Some(url);
                    break;
                }
                Err(reason) => tried.push(format!("  {url}: {reason}")),
            }
        }
        match done {
            Some(url) => files.push((*spec, FileOutcome::Downloaded(url))),
            None => {
                return Err(MnistError::DownloadFailed {
                    file: spec.name.into(),
                    tried: tried.join("\n"),
                })
            }
        }
    }
    Ok(FetchReport { files })
}

/// Where the files should come from.
#[derive(Debug, Clone, Default)]
pub struct FetchSource {
    /// Import from this local folder instead of downloading.
    pub from: Option<std::path::PathBuf>,
    /// Download from this base URL instead of the public mirrors.
    pub mirror: Option<String>,
    /// Only this split's two files (`None`: all four).
    pub split: Option<Split>,
}

/// Puts verified files of `kind` into `dst` (all four, or `source.split`'s two):
/// imported from `source.from` when given, downloaded otherwise. Files already
/// present and verified are kept. On failure no partial file is left, and the
/// folders this call made for `dst` are removed if they are still empty.
pub fn fetch(
    dst: &Path,
    kind: DatasetKind,
    source: &FetchSource,
    progress: &mut dyn Progress,
) -> Result<FetchReport> {
    let specs = kind.files_for(source.split);
    // the folders that do not exist yet, deepest first
    let made: Vec<&Path> = dst
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    let result = match &source.from {
        Some(dir) => crate::store::import_files(dir, dst, specs, progress),
        None => download_files(dst, specs, &mirrors_for(kind, source.mirror.as_deref()), progress),
    };
    if result.is_err() {
        for dir in made {
            // refuses a folder that holds anything
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NoProgress;

    #[test]
    fn override_mirror_gets_a_trailing_slash() {
        assert_eq!(
            mirrors_for(DatasetKind::Mnist, Some("http://x/y")),
            vec!["http://x/y/"]
        );
    }

    #[test]
    fn unreachable_mirrors_give_one_clear_error() {
        // Port 9 on loopback: nothing listens, the connection is refused at once.
        let dir = tempfile::tempdir().unwrap();
        let mirrors = vec![
            "http://127.0.0.1:9/a/".to_string(),
            "http://127.0.0.1:9/b/".to_string(),
        ];
        let err = download(dir.path(), DatasetKind::Mnist, &mirrors, &mut NoProgress).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("http://127.0.0.1:9/a/train-images-idx3-ubyte.gz"),
            "{msg}"
        );
        assert!(
            msg.contains("http://127.0.0.1:9/b/train-images-idx3-ubyte.gz"),
            "{msg}"
        );
        assert!(msg.contains("--from"), "{msg}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
