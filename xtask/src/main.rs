//! `cargo xtask`: the project's own tasks, written in Rust so they run wherever
//! cargo does. With no arguments it lists them.

mod bench_report;

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
    /// Measure kernels (criterion, quick) and end-to-end training and inference speed and
    /// peak memory on this machine; write docs/benchmarks.md and bench-report.json in the target directory
    BenchReport {
        /// Directory with MNIST
        #[arg(long, default_value = "data/mnist")]
        data_dir: PathBuf,
        /// Skip the criterion kernel benches
        #[arg(long)]
        skip_kernels: bool,
        /// Skip the second build (`-C target-cpu=native`) and its column
        #[arg(long)]
        no_native: bool,
        /// Training images per timed epoch (half of it at batch 1)
        #[arg(long, default_value_t = 10_000)]
        train_limit: usize,
        /// Also measure the PyTorch baseline (benches/pytorch/lenet5_torch.py) with this
        /// Python, which must have torch and numpy, and report the speed ratios
        #[arg(long, value_name = "PYTHON", env = "LENET_TORCH_PYTHON")]
        torch_python: Option<PathBuf>,
    },
    /// Recompute the PyTorch (f64 autograd) reference values that
    /// crates/lenet-layers/tests/reference.rs checks the model against, with
    /// xtask/reference/lenet5_reference.py. By default, check that the committed
    /// files are what PyTorch computes from their own inputs and parameters.
    ReferenceData {
        /// A Python with torch and numpy
        #[arg(long, value_name = "PYTHON", env = "LENET_TORCH_PYTHON")]
        python: PathBuf,
        /// Rewrite the committed files: from their own inputs and parameters, or
        /// with --fresh, from new parameters drawn by the paper's fan-in rule
        #[arg(long)]
        write: bool,
        /// With --write: draw new parameters (seeded) and read the images from --mnist
        #[arg(long, requires = "write")]
        fresh: bool,
        /// Seed of the fresh parameters
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Directory with MNIST (for --fresh)
        #[arg(long, default_value = "data/mnist")]
        mnist: PathBuf,
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

/// Today's date (UTC), `YYYY-MM-DD`, from the system's `date`.
pub fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown date".into())
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
            let source = FetchSource {
                from,
                mirror,
                split: None,
            };
            let report = fetch(&dir, dataset, &source, &mut BarProgress::default())
                .with_context(|| format!("fetching {dataset} into {}", dir.display()))?;
            println!("{dataset}: {} in {}", report.summary(), dir.display());
            Ok(())
        }
        Task::ReferenceData {
            python,
            write,
            fresh,
            seed,
            mnist,
        } => {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let data = root.join("crates/lenet-layers/tests/data");
            let mut cmd = std::process::Command::new(&python);
            cmd.arg(root.join("xtask/reference/lenet5_reference.py"));
            cmd.arg("--out").arg(&data);
            if fresh {
                cmd.arg("--mnist").arg(&mnist).arg("--seed").arg(seed.to_string());
            } else {
                // the committed files' own inputs and parameters (each file is
                // written to a temporary name and renamed)
                cmd.arg("--params-from").arg(&data);
                if !write {
                    cmd.arg("--check");
                }
            }
            let status = cmd
                .status()
                .with_context(|| format!("running {}", python.display()))?;
            anyhow::ensure!(status.success(), "the reference script failed ({status})");
            Ok(())
        }
        Task::BenchReport {
            data_dir,
            skip_kernels,
            no_native,
            train_limit,
            torch_python,
        } => {
            let data_dir = std::fs::canonicalize(&data_dir).with_context(|| {
                format!(
                    "{}: no MNIST here; run cargo xtask fetch-mnist first",
                    data_dir.display()
                )
            })?;
            bench_report::bench_report(bench_report::Options {
                data_dir,
                native: !no_native,
                skip_kernels,
                train_limit,
                torch_python,
            })
        }
    }
}
