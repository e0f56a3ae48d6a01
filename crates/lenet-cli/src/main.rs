//! `lenet`: the command-line face of lenet5-rs. All real work is library calls;
//! this crate parses flags, reports progress, and writes files.

use lenet_cli::{commands, serve, train, Platform};

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
    ///
    /// Prints the class, the ten scores (an RBF network's penalties, lower is better;
    /// a softmax network's logits) and the ten probabilities. With the paper's MAP
    /// criterion these do not sum to 1: the rest belongs to an eleventh "none of these"
    /// class of fixed penalty j, printed as "none of these" (JSON: `rejection`). A
    /// large share says the picture is unlike every digit.
    Predict(commands::PredictArgs),
    /// Pictures of every layer's feature maps for one test image, and the learned kernels
    Inspect(commands::InspectArgs),
    /// Write the model of a training checkpoint as a model file
    Export(commands::ExportArgs),
    /// A page to draw digits on and watch the network read them, and its JSON API
    Serve(serve::ServeArgs),
    /// The build and the machine: version, instruction set in use, threads
    Info {
        /// One JSON object instead of text
        #[arg(long)]
        json: bool,
    },
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
    let command = Cli::command().mut_subcommand("train", |c| c.after_long_help(train::presets_help()));
    let train_args: Vec<String> = command
        .find_subcommand("train")
        .map(|c| {
            c.get_arguments()
                .map(|a| a.get_id().as_str().to_string())
                .collect()
        })
        .unwrap_or_default();
    let matches = command.get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // the flags given on the command line (not defaults or environment), for
    // `train --resume` to refuse the ones it would ignore
    let given: Vec<String> = matches
        .subcommand_matches("train")
        .map(|m| {
            m.ids()
                .filter(|id| train_args.iter().any(|a| a == id.as_str()))
                .filter(|id| m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
                .map(|id| id.as_str().to_string())
                .collect()
        })
        .unwrap_or_default();
    match run(cli, &given) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", chain_once(&e));
            ExitCode::FAILURE
        }
    }
}

/// Picks the kernels' instruction set from `LENET_SIMD` (unset: the best this CPU
/// has), refusing a name that is unknown or that the CPU lacks.
fn choose_isa() -> Result<()> {
    let isa = tensor_ops::Isa::from_env().context("LENET_SIMD")?;
    tensor_ops::set_isa(isa).context("LENET_SIMD")
}

/// What a command's success means for the exit code: 0, or 130 for a training run
/// stopped by Ctrl-C (its state saved in a checkpoint).
fn run(cli: Cli, given: &[String]) -> Result<ExitCode> {
    match cli.command {
        Command::Train(args) => {
            choose_isa()?;
            Ok(match train::run(*args, given)? {
                train::Ended::Finished => ExitCode::SUCCESS,
                train::Ended::Interrupted => ExitCode::from(130),
            })
        }
        other => run_other(other).map(|()| ExitCode::SUCCESS),
    }
}

fn run_other(command: Command) -> Result<()> {
    choose_isa()?;
    match command {
        Command::Train(_) => unreachable!("handled by run"),
        Command::Eval(args) => commands::eval(args),
        Command::Predict(args) => commands::predict(args),
        Command::Inspect(args) => commands::inspect(args),
        Command::Export(args) => commands::export(args),
        Command::Serve(args) => serve::serve(args),
        Command::Info { json } => {
            let p = Platform::now();
            if json {
                println!("{}", serde_json::to_string(&p)?);
                return Ok(());
            }
            let names = |v: &[tensor_ops::Isa]| v.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ");
            println!("lenet {}", p.version);
            println!(
                "instruction set: {} ({} f32 lanes per register)",
                p.isa,
                p.isa.lanes()
            );
            println!(
                "supported here:  {} (force one with LENET_SIMD=NAME)",
                names(&p.supported)
            );
            println!(
                "threads:         {} (one per core; --threads N to change)",
                p.threads
            );
            println!("cpu:             {}", p.cpu);
            Ok(())
        }
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

/// An error and its causes joined by ": ", each said once: a cause whose text its
/// parent's message already ends with (an error that shows its source and also
/// returns it) is left out.
fn chain_once(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|last| last.ends_with(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
