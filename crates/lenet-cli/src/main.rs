//! `lenet`: the command-line face of lenet5-rs. All real work is library calls;
//! this crate parses flags, reports progress, and writes files.

mod commands;
mod data;
mod dataset;
mod plots;
mod report;
mod serve;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use mnist_io::{verify_dir, DatasetKind, TrainTest};

#[derive(Parser)]
#[command(
    name = "lenet",
    version,
    about = "LeNet-5 from scratch: train, evaluate, predict, inspect"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a LeNet-5 on MNIST (defaults: the paper's classic network and SDLM, 20 epochs)
    Train(Box<train::TrainArgs>),
    /// Test-set accuracy, per-class accuracy, confusion matrix (and pictures with --plots)
    Eval(commands::EvalArgs),
    /// Classify images of digits (PNG/JPEG, any size) or MNIST test images
    Predict(commands::PredictArgs),
    /// Pictures of every layer's feature maps for one test image, and the learned kernels
    Inspect(commands::InspectArgs),
    /// Write the model of a training checkpoint as a model file
    Export(commands::ExportArgs),
    /// A page to draw digits on and watch the network read them, and its JSON API
    Serve(serve::ServeArgs),
    /// Load a dataset, check it, and print what it holds
    Data {
        /// Directory with the four IDX files (raw or .gz)
        #[arg(long, env = "LENET_DATA_DIR", default_value = mnist_io::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Which dataset: mnist or fashion-mnist
        #[arg(long, default_value = "mnist")]
        dataset: DatasetKind,
    },
}

fn main() -> ExitCode {
    // Behave like other command-line tools when output is piped into `head`: end
    // quietly on a closed pipe instead of failing to print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sizes the global thread pool (`None`: one thread per core).
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n);
    }
    builder.build_global().context("starting the thread pool")
}

/// Runs `work` on one of the pool's threads (after [`set_threads`]). The kernels open a parallel region
/// per layer and pass (about 20 per training step); opened from a thread outside
/// the pool, each one hands its job over and sleeps on a lock until it is done,
/// while from a pool thread the other threads steal the work directly (measured
/// 15% of a batch-32 training step in that hand-over before).
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train::run(*args),
        Command::Eval(args) => commands::eval(args),
        Command::Predict(args) => commands::predict(args),
        Command::Inspect(args) => commands::inspect(args),
        Command::Export(args) => commands::export(args),
        Command::Serve(args) => serve::serve(args),
        Command::Data { data_dir, dataset } => {
            let data = TrainTest::load(&data_dir, dataset).context("loading the dataset")?;
            let checksums = match verify_dir(&data_dir, dataset) {
                Ok(()) => "checksums verified".to_string(),
                Err(e) => format!("checksums NOT verified: {e}"),
            };
            println!("{dataset} in {}: {checksums}", data_dir.display());
            for (name, ds) in [("train", &data.train), ("test", &data.test)] {
                let mut counts = [0usize; 10];
                for &l in ds.labels() {
                    counts[l as usize] += 1;
                }
                println!(
                    "  {name:5}: {} images of {}x{}, per class {counts:?}",
                    ds.len(),
                    ds.rows(),
                    ds.cols()
                );
            }
            Ok(())
        }
    }
}
