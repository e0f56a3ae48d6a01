//! `cargo xtask`: the project's own tasks, written in Rust so they run wherever
//! cargo does. With no arguments it lists them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use mnist_io::{fetch, BarProgress, DatasetKind, FetchSource};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Project tasks for lenet5-rs",
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    task: Option<Task>,
}

#[derive(Subcommand)]
enum Task {
    /// Put verified MNIST (or Fashion-MNIST) files into a data directory: download them
    /// from the public mirrors, or import them from a local folder with --from.
    FetchMnist {
        /// Destination directory [default: data/mnist, or data/fashion-mnist]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Import from this folder (the four IDX files, raw or .gz) instead of downloading
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// Download from this base URL instead of the public mirrors
        /// (also: environment variable LENET_MNIST_MIRROR)
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
        /// Which dataset: mnist or fashion-mnist
        #[arg(long, default_value = "mnist")]
        dataset: DatasetKind,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(task) = cli.task else {
        // matklad's convention: `cargo xtask` alone lists the tasks.
        let _ = Cli::command().print_help();
        return ExitCode::SUCCESS;
    };
    match run(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    match task {
        Task::FetchMnist {
            dir,
            from,
            mirror,
            dataset,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("data").join(dataset.name()));
            let source = FetchSource { from, mirror };
            let report = fetch(&dir, dataset, &source, &mut BarProgress::default())
                .with_context(|| format!("fetching {dataset} into {}", dir.display()))?;
            println!("{dataset}: {} in {}", report.summary(), dir.display());
            Ok(())
        }
    }
}
