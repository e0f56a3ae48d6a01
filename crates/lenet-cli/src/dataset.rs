//! Getting MNIST for a command: load it from `--data-dir`, fetching it there first
//! when it is missing. A command fetches only the files it reads.

use std::path::Path;

use anyhow::{Context, Result};
use mnist_io::{
    fetch, load_split, locate, BarProgress, Dataset, DatasetKind, FetchSource, NoProgress, Split, TrainTest,
};

/// Loads MNIST's two splits from `dir`; downloads a missing file there first
/// (offline, this fails with the message that says how to import).
pub fn load_or_fetch(dir: &Path, quiet: bool) -> Result<TrainTest> {
    ensure(dir, quiet, None)?;
    TrainTest::load(dir, DatasetKind::Mnist).with_context(|| format!("loading MNIST from {}", dir.display()))
}

/// Loads MNIST's test split from `dir`, downloading only its two files if missing.
pub fn load_test_or_fetch(dir: &Path, quiet: bool) -> Result<Dataset> {
    ensure(dir, quiet, Some(Split::Test))?;
    load_split(dir, DatasetKind::Mnist, Split::Test)
        .with_context(|| format!("loading the MNIST test set from {}", dir.display()))
}

/// Fetches the files of `split` (`None`: all four) that `dir` lacks.
fn ensure(dir: &Path, quiet: bool, split: Option<Split>) -> Result<()> {
    let kind = DatasetKind::Mnist;
    if kind
        .files_for(split)
        .iter()
        .all(|f| locate(dir, f.name).is_some())
    {
        return Ok(());
    }
    if !quiet {
        eprintln!("MNIST is not in {}; downloading it", dir.display());
    }
    let source = FetchSource {
        split,
        ..FetchSource::default()
    };
    let report = if quiet {
        fetch(dir, kind, &source, &mut NoProgress)
    } else {
        fetch(dir, kind, &source, &mut BarProgress::default())
    };
    report.with_context(|| format!("fetching MNIST into {}", dir.display()))?;
    Ok(())
}
