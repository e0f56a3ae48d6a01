//! Getting MNIST for a command: load it from `--data-dir`, fetching it there first
//! when it is missing.

use std::path::Path;

use anyhow::{Context, Result};
use mnist_io::{fetch, locate, BarProgress, DatasetKind, FetchSource, NoProgress, TrainTest};

/// Loads MNIST from `dir`; downloads it there first if a file is missing
/// (offline, this fails with the message that says how to import).
pub fn load_or_fetch(dir: &Path, quiet: bool) -> Result<TrainTest> {
    let kind = DatasetKind::Mnist;
    let missing = kind.files().iter().any(|f| locate(dir, f.name).is_none());
    if missing {
        if !quiet {
            eprintln!("MNIST is not in {}; downloading it", dir.display());
        }
        let report = if quiet {
            fetch(dir, kind, &FetchSource::default(), &mut NoProgress)
        } else {
            fetch(dir, kind, &FetchSource::default(), &mut BarProgress::default())
        };
        report.with_context(|| format!("fetching MNIST into {}", dir.display()))?;
    }
    TrainTest::load(dir, kind).with_context(|| format!("loading MNIST from {}", dir.display()))
}
