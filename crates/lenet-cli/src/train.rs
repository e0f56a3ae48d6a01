//! `lenet train`: flags -> library calls -> files in `--out`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use lenet_layers::{model_file, Activation, Algo, Init, LeNet5, Loss, ModelConfig, Output, Pooling, Preset};

use crate::choices::{
    name_of, one_of, OptimizerKind, ACTIVATIONS, DISTORTIONS, HESSIAN_MODES, KERNELS, OPTIMIZERS, OUTPUTS,
    POOLINGS, PRESETS, SWITCH,
};
use lenet_optim::checkpoint::{self, Checkpoint};
use lenet_optim::{
    Control, EpochMetrics, EvalSets, HessianMode, Method, Observer, OptimizerConfig, Outcome, Progress,
    Recipe, Schedule, TrainData, Trainer,
};
use mnist_io::{Distortion, MnistError, TrainTest};
use mnist_io::{RunConfig, TrainSet};
use serde::Serialize;

use crate::dataset::load_or_fetch;
use crate::report;

/// Flags of `lenet train`. They describe a [`RunConfig`] ([`TrainArgs::run_config`]),
/// which is what a run stores; the flags themselves are never stored.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Model preset, with its training recipe (listed below; every other flag changes
    /// one setting of it)
    #[arg(long, default_value = "classic", value_parser = one_of(&PRESETS))]
    pub model: Preset,
    /// Pooling layers S2/S4 (avg2018: avg with the NumPy original's second-derivative
    /// bug) [default: the preset's]
    #[arg(long, value_parser = one_of(&POOLINGS))]
    pub pooling: Option<Pooling>,
    /// Squashing function [default: the preset's]
    #[arg(long, value_parser = one_of(&ACTIVATIONS))]
    pub activation: Option<Activation>,
    /// The paper's partial C3 connection table [default: the preset's]
    #[arg(long, value_parser = one_of(&SWITCH))]
    pub c3_table: Option<bool>,
    /// Output layer: rbf (MAP loss) or softmax (cross-entropy) [default: the preset's]
    #[arg(long, value_parser = one_of(&OUTPUTS))]
    pub output: Option<Output>,
    /// The MAP criterion's constant j (RBF output)
    #[arg(long, default_value_t = 1.0)]
    pub map_j: f32,
    /// Initial weights: fan-in (the paper's uniform +-2.4/F) | torch (uniform +-1/sqrt(F)) |
    /// eblearn (torch's weights, biases 0, subsampling coefficients 0.5) | normal:STD (the
    /// NumPy original: normal:0.1) [default: the preset's; classic: eblearn, chosen on
    /// held-out images: `lenet train` averages 0.930% test error over seeds 1-10,
    /// `--init fan-in` 0.999% (docs/results.md, "Initialisation")]
    #[arg(long, value_parser = parse_init)]
    pub init: Option<Init>,
    /// Kernel implementation
    #[arg(long, default_value = "parallel", value_parser = one_of(&KERNELS))]
    pub kernels: Algo,
    /// Optimizer (sdlm: the paper's) [default: the preset's]; another optimizer than
    /// the preset's starts from its own defaults (sdlm: the paper's schedule from
    /// 0.0005; momentum 0.9 and sgd: 0.01 constant)
    #[arg(long, value_parser = one_of(&OPTIMIZERS))]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate of the first epoch; later epochs keep the schedule's shape
    /// [default: the preset's]
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Learning-rate schedule: paper (the paper's epsilon steps: 0.0005, 0.0002 from
    /// epoch 3, ...) | constant | explicit steps "EPOCH=RATE,EPOCH=RATE,..." (e.g.
    /// "1=2e-5,3=1e-5,9=2e-6"; not with --lr) [default: the preset's]
    #[arg(long)]
    pub schedule: Option<String>,
    /// Momentum, 0 to below 1 (momentum optimizer; with sdlm, SDLM with momentum)
    /// [default: the preset's]
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f32>,
    /// SDLM's mu, added to each h_kk: one number, or steps by epoch "EPOCH=MU,..." like
    /// --schedule's [default: the preset's; classic: 1.0 for passes 1-8, then the
    /// paper's 0.02, because the paper's 0.02 from the first pass diverges (the lower
    /// layers' h_kk are ~1e-5, so mu alone sets their step, epsilon/mu); see
    /// docs/results.md]
    #[arg(long, allow_negative_numbers = true)]
    pub mu: Option<String>,
    /// How SDLM turns h_kk into steps: per-parameter (the paper, eps/(mu+h_kk)) |
    /// tensor-sum (the NumPy original's bug: one rate eps/(mu+sum h) per tensor)
    /// [default: the preset's]
    #[arg(long, value_parser = one_of(&HESSIAN_MODES))]
    pub hessian_mode: Option<HessianMode>,
    /// Training patterns on which SDLM re-estimates h_kk before each epoch
    /// [default: the preset's, 500]
    #[arg(long)]
    pub hessian_samples: Option<usize>,
    /// Passes over the training set (1 to 10000) [default: the preset's, 20]
    #[arg(long, value_parser = crate::limits::epochs)]
    pub epochs: Option<usize>,
    /// Patterns per update (1 = the paper's pure per-sample updates; up to 65536)
    /// [default: the preset's, listed below]
    #[arg(long, value_parser = crate::limits::batch_size)]
    pub batch_size: Option<usize>,
    /// Worker threads (1 to 256) [default: all cores]
    #[arg(long, value_parser = crate::limits::threads)]
    pub threads: Option<usize>,
    /// Seed of initialisation, shuffling and distortions
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Training distortions, drawn anew each epoch
    #[arg(long, default_value = "none", value_parser = one_of(&DISTORTIONS))]
    pub distort: Distortion,
    /// Strength of the distortions: 1 = the default ranges (affine: +-2 px, scale and squeeze
    /// +-15%, shear +-0.3; elastic: alpha 34 px), 0 = none, at most 4
    #[arg(long, default_value_t = 1.0, value_parser = crate::limits::distort_strength)]
    pub distort_strength: f32,
    /// Train on the first N training images only
    #[arg(long)]
    pub limit: Option<usize>,
    /// Hold out the last N of the 60,000 training images, never trained on, and report
    /// the error on them after each epoch: for choosing settings without the test set
    /// (--limit then counts from the first image of the rest)
    #[arg(long, default_value_t = 0)]
    pub validation: usize,
    /// Directory with MNIST (fetched there when missing)
    #[arg(long, env = "LENET_DATA_DIR", default_value = mnist_io::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Output directory [default: runs/<timestamp>]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from this checkpoint: every setting comes from it, and only --data-dir,
    /// --out, --threads, --quiet and --verbose may be given with it
    #[arg(long, value_name = "CHECKPOINT")]
    pub resume: Option<PathBuf>,
    /// Replace the run in --out (its model, metrics and checkpoints) if it holds one;
    /// without this, a directory that holds a run is refused
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Print the resolved settings (the preset's recipe with every flag applied) as
    /// JSON, and stop before reading data or writing anything
    #[arg(long)]
    pub dry_run: bool,
    /// Print nothing but errors
    #[arg(long)]
    pub quiet: bool,
    /// After each epoch, print SDLM's mean h_kk and step size per parameter tensor
    #[arg(long)]
    pub verbose: bool,
}

impl TrainArgs {
    /// The model configuration these flags describe.
    pub fn model_config(&self) -> Result<ModelConfig> {
        let mut c = self.model.config();
        c.pooling = self.pooling.unwrap_or(c.pooling);
        c.activation = self.activation.unwrap_or(c.activation);
        c.c3_table = self.c3_table.unwrap_or(c.c3_table);
        c.init = self.init.unwrap_or(c.init);
        if let Some(output) = self.output {
            (c.output, c.loss) = match output {
                Output::Rbf => (Output::Rbf, Loss::Map { j: self.map_j }),
                Output::Softmax => (Output::Softmax, Loss::SoftmaxCrossEntropy),
            };
        }
        if let Loss::Map { j } = &mut c.loss {
            if !(self.map_j.is_finite() && self.map_j >= 0.0) {
                bail!("--map-j must be a finite number >= 0, not {}", self.map_j);
            }
            *j = self.map_j;
        }
        c.algo = self.kernels;
        c.validate().map_err(anyhow::Error::msg)?;
        Ok(c)
    }

    /// The whole run these flags describe.
    pub fn run_config(&self) -> Result<RunConfig> {
        let strength = self.distort_strength;
        let distortion = match self.distort {
            Distortion::Affine { .. } => Distortion::Affine { strength },
            Distortion::Elastic { .. } => Distortion::Elastic { strength },
            Distortion::None => Distortion::None,
        };
        Ok(RunConfig {
            version: RunConfig::VERSION,
            preset: self.model,
            model: self.model_config()?,
            recipe: self.recipe()?,
            seed: self.seed,
            limit: self.limit,
            validation: self.validation,
            distortion,
        })
    }

    /// The training recipe these flags describe: the preset's
    /// ([`Recipe::for_preset`]), with each flag given replacing one setting.
    pub fn recipe(&self) -> Result<Recipe> {
        let mut recipe = Recipe::for_preset(self.model);
        let kind = |m: &Method| match m {
            Method::Sdlm { .. } => OptimizerKind::Sdlm,
            Method::Momentum { .. } => OptimizerKind::Momentum,
            Method::Sgd => OptimizerKind::Sgd,
        };
        let opt = &mut recipe.optimizer;
        if let Some(wanted) = self.optimizer {
            if wanted != kind(&opt.method) {
                *opt = match wanted {
                    OptimizerKind::Sdlm => OptimizerConfig {
                        method: Method::sdlm(),
                        schedule: Schedule::paper(),
                    },
                    OptimizerKind::Momentum => OptimizerConfig {
                        method: Method::Momentum { momentum: 0.9 },
                        schedule: Schedule::constant(0.01),
                    },
                    OptimizerKind::Sgd => OptimizerConfig {
                        method: Method::Sgd,
                        schedule: Schedule::constant(0.01),
                    },
                };
            }
        }
        if let Some(m) = self.momentum {
            if !(m.is_finite() && (0.0..1.0).contains(&m)) {
                bail!("--momentum must be in [0, 1), not {m}");
            }
            match &mut opt.method {
                Method::Sdlm { momentum, .. } | Method::Momentum { momentum } => *momentum = m,
                Method::Sgd => bail!("--momentum needs the sdlm or momentum optimizer, not sgd"),
            }
        }
        let current = name_of(&OPTIMIZERS, &kind(&opt.method)).unwrap_or("this optimizer");
        let sdlm_only = |flag: &str| anyhow::anyhow!("{flag} is a setting of SDLM, not of {current}");
        match &mut opt.method {
            Method::Sdlm {
                mu, samples, mode, ..
            } => {
                if let Some(text) = &self.mu {
                    *mu = parse_mu(text)?;
                }
                if let Some(n) = self.hessian_samples {
                    if n == 0 {
                        bail!("--hessian-samples must be at least 1");
                    }
                    *samples = n;
                }
                *mode = self.hessian_mode.unwrap_or(*mode);
            }
            _ if self.mu.is_some() => return Err(sdlm_only("--mu")),
            _ if self.hessian_samples.is_some() => return Err(sdlm_only("--hessian-samples")),
            _ if self.hessian_mode.is_some() => return Err(sdlm_only("--hessian-mode")),
            _ => {}
        }
        let first = opt.schedule.at(1);
        match self.schedule.as_deref() {
            None => {}
            Some("paper") => opt.schedule = Schedule::paper().starting_at(first),
            Some("constant") => opt.schedule = Schedule::constant(first),
            Some(steps) if steps.contains('=') => {
                if self.lr.is_some() {
                    bail!("--schedule {steps:?} gives every epoch's rate; leave out --lr");
                }
                opt.schedule = parse_steps(steps)?;
            }
            Some(other) => bail!("unknown schedule {other:?} (paper, constant, or EPOCH=RATE,...)"),
        }
        if let Some(lr) = self.lr {
            let lr = positive_finite("--lr", lr)?;
            opt.schedule = opt.schedule.clone().starting_at(lr);
        }
        if let Some(epochs) = self.epochs {
            recipe.train.epochs = epochs;
        }
        if let Some(batch) = self.batch_size {
            recipe.train.batch_size = batch;
        }
        Ok(recipe)
    }
}

/// What `lenet train --help` says of each preset's recipe, from the library's values.
pub fn presets_help() -> String {
    let mut text = String::from("Presets and the recipes they train with (flags change one setting each):\n");
    for preset in Preset::ALL {
        let c = preset.config();
        let r = Recipe::for_preset(preset);
        let method = match &r.optimizer.method {
            Method::Sdlm {
                mu,
                momentum,
                samples,
                mode,
            } => format!(
                "sdlm (mu {}, h_kk from {samples} patterns, {}{})",
                steps_text(mu),
                name_of(&HESSIAN_MODES, mode).unwrap_or_default(),
                if *momentum > 0.0 {
                    format!(", momentum {momentum}")
                } else {
                    String::new()
                }
            ),
            Method::Momentum { momentum } => format!("momentum {momentum}"),
            Method::Sgd => "sgd".into(),
        };
        text.push_str(&format!(
            "  {:9} {}, init {}; {method}, lr {}, batch {}, {} epochs\n",
            preset.name(),
            network_text(&c),
            init_text(&c.init),
            steps_text(&r.optimizer.schedule),
            r.train.batch_size,
            r.train.epochs,
        ));
    }
    text.push_str("`lenet train --dry-run` prints the resolved settings of any command line.");
    text
}

/// "1=0.0005,3=0.0002": a schedule as `--schedule` and `--mu` write it.
fn steps_text(s: &Schedule) -> String {
    let short = |v: f32| {
        let text = format!("{v:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    s.steps
        .iter()
        .map(|(e, v)| format!("{e}={}", short(*v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn init_text(init: &Init) -> String {
    match init {
        Init::FanIn { scale } if *scale == 2.4 => "fan-in".into(),
        Init::FanIn { scale } => format!("fan-in (scale {scale})"),
        Init::Torch => "torch".into(),
        Init::Eblearn => "eblearn".into(),
        Init::Normal { std } => format!("normal:{std}"),
    }
}

fn network_text(c: &ModelConfig) -> String {
    format!(
        "{} pooling, {}, C3 table {}, {}",
        name_of(&POOLINGS, &c.pooling).unwrap_or_default(),
        c.activation.name(),
        name_of(&SWITCH, &c.c3_table).unwrap_or_default(),
        match c.output {
            Output::Rbf => "RBF output",
            Output::Softmax => "softmax output",
        }
    )
}

/// Removes the directory when dropped if it is still empty: the output directory a
/// run made, when the run ends (refused or failed) before writing anything into it.
struct RemoveIfEmpty(PathBuf);

impl Drop for RemoveIfEmpty {
    fn drop(&mut self) {
        // `remove_dir` refuses a directory that holds anything: a run's files stay
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Parses `fan-in`, `torch`, `eblearn` or `normal:STD` (`--init`'s value parser).
fn parse_init(text: &str) -> Result<Init> {
    let init = match text.split_once(':') {
        None if text == "fan-in" => Init::FanIn { scale: 2.4 },
        None if text == "torch" => Init::Torch,
        None if text == "eblearn" => Init::Eblearn,
        Some(("normal", std)) => {
            let std: f32 = std
                .parse()
                .with_context(|| format!("--init {text:?}: bad standard deviation"))?;
            if !(std.is_finite() && std > 0.0) {
                bail!("--init {text:?}: the standard deviation must be a positive finite number");
            }
            Init::Normal { std }
        }
        _ => bail!("unknown --init {text:?} (fan-in, torch, eblearn, normal:STD)"),
    };
    Ok(init)
}

/// Parses `--mu`: one number ("1.0") or steps by epoch ("1=1.0,9=0.02").
fn parse_mu(text: &str) -> Result<Schedule> {
    if text.contains('=') {
        return parse_steps(text).context("--mu");
    }
    let mu: f32 = text
        .trim()
        .parse()
        .with_context(|| format!("--mu {text:?} is neither a number nor EPOCH=MU steps"))?;
    Ok(Schedule::constant(positive_finite("--mu", mu)?))
}

/// `v` if it is a positive finite number, else an error naming the flag.
fn positive_finite(name: &str, v: f32) -> Result<f32> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{name} must be a positive finite number, not {v}");
    }
    Ok(v)
}

/// Parses "1=5e-4,3=2e-4" into a schedule.
fn parse_steps(text: &str) -> Result<Schedule> {
    let mut steps = Vec::new();
    for part in text.split(',') {
        let (e, r) = part
            .split_once('=')
            .with_context(|| format!("schedule step {part:?} is not EPOCH=RATE"))?;
        let epoch: usize = e
            .trim()
            .parse()
            .with_context(|| format!("schedule step {part:?}: bad epoch"))?;
        let rate: f32 = r
            .trim()
            .parse()
            .with_context(|| format!("schedule step {part:?}: bad rate"))?;
        steps.push((epoch, rate));
    }
    let schedule = Schedule { steps };
    schedule.validate().map_err(anyhow::Error::msg)?;
    if schedule.steps[0].0 != 1 {
        bail!("the schedule must start at epoch 1");
    }
    Ok(schedule)
}

/// Runs `lenet train`.
/// The flags `--resume` takes from the command line; every other setting comes
/// from the checkpoint.
const RESUME_FLAGS: [&str; 8] = [
    "resume", "data_dir", "out", "threads", "quiet", "verbose", "dry_run", "epochs",
];

/// How a training run ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every epoch ran; the model is written.
    Finished,
    /// Ctrl-C: the state is in a checkpoint that `--resume` continues.
    Interrupted,
}

/// "1 epoch", "20 epochs".
pub fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// How to run this binary again: `lenet` once installed, the cargo command while
/// it runs from a cargo target directory.
pub fn invocation() -> &'static str {
    let exe = std::env::current_exe().unwrap_or_default();
    let in_target = exe
        .ancestors()
        .any(|d| d.file_name().is_some_and(|n| n == "target") && d.join("release").exists());
    if in_target {
        "cargo run --release -p lenet-cli --"
    } else {
        "lenet"
    }
}

/// Runs `lenet train`; `given` names the flags given on the command line.
pub fn run(args: TrainArgs, given: &[String]) -> Result<Ended> {
    if args.resume.is_some() {
        let ignored: Vec<String> = given
            .iter()
            .filter(|id| !RESUME_FLAGS.contains(&id.as_str()))
            .map(|id| format!("--{}", id.replace('_', "-")))
            .collect();
        if !ignored.is_empty() {
            bail!(
                "--resume continues a run with the settings in its checkpoint, and {} would change \
                 what that run is; with --resume give only --epochs (the new last epoch), \
                 --data-dir, --out, --threads, --quiet, --verbose or --dry-run",
                ignored.join(", ")
            );
        }
    }
    crate::set_threads(args.threads)?;
    crate::on_pool(|| train(args))
}

fn train(args: TrainArgs) -> Result<Ended> {
    // Everything that defines the run: from the flags, or from the checkpoint.
    let (run, resume) = match &args.resume {
        Some(path) => {
            let ck =
                checkpoint::load(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
            (run_of_checkpoint(&ck, path)?, Some((ck, path.clone())))
        }
        None => (args.run_config()?, None),
    };
    check_run(&run)?;
    if args.dry_run {
        #[derive(Serialize)]
        struct DryRun<'a> {
            network: String,
            run: &'a RunConfig,
            data_dir: &'a Path,
            resume: Option<&'a Path>,
        }
        let dry = DryRun {
            network: run.model.describe(),
            run: &run,
            data_dir: &args.data_dir,
            resume: args.resume.as_deref(),
        };
        println!("{}", serde_json::to_string_pretty(&dry)?);
        return Ok(Ended::Finished);
    }

    // The output directory first: an unwritable one fails before any download.
    let out = match (&args.out, &args.resume) {
        (Some(out), _) => out.clone(),
        (None, Some(ck)) => ck.parent().unwrap_or(Path::new(".")).to_path_buf(),
        (None, None) => PathBuf::from("runs").join(report::timestamp()),
    };
    let made_out = !out.exists();
    std::fs::create_dir_all(&out).with_context(|| format!("creating output directory {}", out.display()))?;
    // a run refused before it wrote anything leaves no empty directory behind
    let _remove_if_empty = made_out.then(|| RemoveIfEmpty(out.clone()));
    // one process writes a run directory at a time; the lock is released at the end
    let _lock = crate::rundir::RunLock::take(&out, args.quiet)?;
    if resume.is_none() {
        crate::rundir::claim_for_new_run(&out, args.overwrite)?;
    }
    // a run killed while writing leaves a temporary file; the real files are whole
    lenet_fs::remove_stale_temps(&out)
        .with_context(|| format!("cleaning temporary files in {}", out.display()))?;

    let TrainTest { train, test } = load_or_fetch(&args.data_dir, args.quiet)?;
    let (train, valid) = split_data(train, &test, &run, &args.data_dir)?;
    let train_data = TrainSet::shuffled(&train, run.seed, run.distortion).context("the training set")?;
    let valid_data = (!valid.is_empty())
        .then(|| TrainSet::in_order(&valid))
        .transpose()
        .context("the validation set")?;
    let test_data = TrainSet::in_order(&test).context("the test set")?;
    let eval = EvalSets {
        valid: valid_data.as_ref().map(|d| d as &dyn TrainData),
        test: Some(&test_data),
    };

    let (mut model, mut trainer) = match resume {
        Some((ck, path)) => {
            let model = ck.model(&path)?;
            let mut trainer = ck.trainer(&model, &path)?;
            if let Some(epochs) = args.epochs {
                extend_to(&mut trainer, epochs)?;
            }
            (model, trainer)
        }
        None => {
            let model = LeNet5::new(run.model.clone(), run.seed)?;
            let trainer = run.recipe.trainer(&model)?;
            (model, trainer)
        }
    };
    let mut run = run;
    run.recipe.train.epochs = trainer.config.epochs;
    let run_config = serde_json::to_string(&run)?;
    report::write_json(
        &out.join("config.json"),
        &report::RunRecord::new(&run, &model, train.len()),
    )?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C while the first is being handled kills the process as usual.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    if !args.quiet {
        println!(
            "training {} ({} parameters) on {} images, {}, batch {}, {}, {} -> {}",
            model.config().describe(),
            model.trainable_params(),
            train.len(),
            count(trainer.config.epochs, "epoch"),
            trainer.config.batch_size,
            count(rayon::current_num_threads(), "thread"),
            tensor_ops::isa(),
            out.display()
        );
    }
    let mut observer = CliObserver {
        out: out.clone(),
        seed: run.seed,
        run_config,
        stop: stop.clone(),
        bar: None,
        quiet: args.quiet,
        terminal: std::io::stdout().is_terminal(),
        error: None,
        verbose: args.verbose,
        started: std::time::Instant::now(),
        first_epoch: trainer.progress.epoch,
        epochs: trainer.config.epochs,
    };
    let outcome = trainer.run(&mut model, &train_data, eval, &mut observer);
    if let Some(bar) = observer.bar.take() {
        bar.finish_and_clear();
    }
    if let Some(e) = observer.error.take() {
        return Err(e);
    }
    match outcome {
        Err(e) => Err(e)
            .context("training stopped; the last checkpoint in the output directory is the last good state"),
        Ok(Outcome::Stopped) => {
            let path = out.join(format!(
                "checkpoint-epoch-{}-batch-{}.bin",
                trainer.progress.epoch, trainer.progress.next_batch
            ));
            checkpoint::save(
                &Checkpoint::capture(&model, &trainer, run.seed, observer.run_config.clone()),
                &path,
            )?;
            eprintln!(
                "interrupted; resume with:\n  {} train --resume {}",
                invocation(),
                path.display()
            );
            Ok(Ended::Interrupted)
        }
        Ok(Outcome::Finished) => {
            let model_path = out.join("model.safetensors");
            model_file::save_with(&model, &model_path, Some(&observer.run_config))?;
            report::write_metrics(&out, &trainer.progress.history)?;
            crate::plots::error_rate_chart(&out.join("error-rate.png"), &trainer.progress.history)?;
            if !args.quiet {
                print_summary(&trainer.progress.history, &model_path, observer.started.elapsed());
            }
            Ok(Ended::Finished)
        }
    }
}

/// The run a checkpoint continues. Checkpoints written before run settings were
/// typed (`RunConfig`) held the command line's flags instead; those are refused
/// with the way out.
fn run_of_checkpoint(ck: &Checkpoint, path: &Path) -> Result<RunConfig> {
    match serde_json::from_str::<RunConfig>(&ck.run_config) {
        Ok(run) if run.version == RunConfig::VERSION => Ok(run),
        Ok(run) => bail!(
            "{}: its run settings are version {} and this lenet reads version {}; \
             resume it with the lenet that wrote it",
            path.display(),
            run.version,
            RunConfig::VERSION
        ),
        Err(_) if ck.run_config.contains("\"kernels\"") => bail!(
            "{}: written by lenet 0.1.0 before its run settings were versioned (they are \
             command-line flags there); resume it with that build (git history), or export \
             its model with `lenet export` and start a new run",
            path.display()
        ),
        Err(e) => bail!(
            "{}: the checkpoint's run settings are unreadable: {e}",
            path.display()
        ),
    }
}

/// The settings a checkpoint may carry and flags may not: bounded again here.
fn check_run(run: &RunConfig) -> Result<()> {
    let strength = match run.distortion {
        Distortion::None => 1.0,
        Distortion::Affine { strength } | Distortion::Elastic { strength } => strength,
    };
    crate::limits::check_run(run.recipe.train.batch_size, run.recipe.train.epochs, strength)
        .map_err(anyhow::Error::msg)?;
    run.recipe.train.validate().map_err(anyhow::Error::msg)?;
    run.model.validate().map_err(anyhow::Error::msg)?;
    if run.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    Ok(())
}

/// The training images (after `--validation` and `--limit`) and the validation set.
fn split_data(
    train: mnist_io::Dataset,
    test: &mnist_io::Dataset,
    run: &RunConfig,
    data_dir: &Path,
) -> Result<(mnist_io::Dataset, mnist_io::Dataset)> {
    if train.is_empty() {
        bail!("the training set in {} holds no images", data_dir.display());
    }
    if test.is_empty() {
        bail!("the test set in {} holds no images", data_dir.display());
    }
    let (train, valid) = train.split_last(run.validation).map_err(|e| match e {
        MnistError::InvalidArgument(why) => anyhow::anyhow!("--validation {}: {why}", run.validation),
        e => anyhow::Error::new(e),
    })?;
    let train = match run.limit {
        Some(n) => train.limit(n),
        None => train,
    };
    Ok((train, valid))
}

/// `--resume` with `--epochs N`: the run now ends after epoch N (later or
/// earlier than planned, but not before the epochs already done).
fn extend_to(trainer: &mut Trainer, epochs: usize) -> Result<()> {
    let done = trainer.progress.epoch.saturating_sub(1);
    if epochs < done.max(1) {
        bail!(
            "--epochs {epochs}: the checkpoint has already finished {}",
            count(done, "epoch")
        );
    }
    trainer.config.epochs = epochs;
    Ok(())
}

/// The end-of-run block: errors, time, where the model is, how to use it.
fn print_summary(history: &[EpochMetrics], model_path: &Path, took: std::time::Duration) {
    let Some(last) = history.last() else { return };
    let pct = |e: Option<f64>| format!("{:.2}%", 100.0 * e.unwrap_or(f64::NAN));
    let best = history.iter().filter(|m| m.test_error.is_some()).min_by(|a, b| {
        a.test_error
            .partial_cmp(&b.test_error)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let per_epoch: f64 = history.iter().map(|m| m.seconds).sum::<f64>() / history.len() as f64;
    let model = model_path.display();
    let lenet = invocation();
    println!();
    println!(
        "done: {} in {:.0} s",
        count(history.len(), "epoch"),
        took.as_secs_f64()
    );
    println!(
        "  test error   {} after epoch {}",
        pct(last.test_error),
        last.epoch
    );
    if let Some(b) = best {
        println!("  best         {} after epoch {}", pct(b.test_error), b.epoch);
    }
    if last.valid_error.is_some() {
        println!(
            "  validation   {} after epoch {}",
            pct(last.valid_error),
            last.epoch
        );
    }
    println!("  time         {per_epoch:.1} s per epoch of training (the rest: evaluation, checkpoints)");
    println!("  model        {model}");
    println!("  use it       {lenet} eval --model {model}");
    println!("               {lenet} predict --model {model} digit.png");
}

struct CliObserver {
    out: PathBuf,
    seed: u64,
    run_config: String,
    stop: Arc<AtomicBool>,
    bar: Option<ProgressBar>,
    quiet: bool,
    terminal: bool,
    error: Option<anyhow::Error>,
    verbose: bool,
    /// When this process started training, the epoch it started at, the last epoch:
    /// for the whole run's ETA.
    started: std::time::Instant,
    first_epoch: usize,
    epochs: usize,
}

impl Observer for CliObserver {
    fn epoch_start(&mut self, epoch: usize, batches: usize) {
        if self.quiet || !self.terminal {
            return;
        }
        let bar = ProgressBar::new(batches as u64);
        if let Ok(style) =
            ProgressStyle::with_template("epoch {prefix:>3} [{bar:30}] {pos}/{len} {msg} epoch ETA {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(epoch.to_string());
        self.bar = Some(bar);
    }

    fn batch_end(&mut self, p: &Progress, batches: usize) -> Control {
        if let Some(bar) = &self.bar {
            if p.next_batch.is_multiple_of(64) {
                bar.set_position(p.next_batch as u64);
                // the whole run's remaining time, from this process's pace so far
                let done = (p.epoch - self.first_epoch) as f64 + p.next_batch as f64 / batches.max(1) as f64;
                let left = (self.epochs + 1 - self.first_epoch) as f64 - done;
                let run_eta = self.started.elapsed().as_secs_f64() * left / done.max(1e-9);
                bar.set_message(format!(
                    "{:.0} img/s, loss {:.4}, train error {:.2}%, run ETA {}",
                    p.count as f64 / p.seconds.max(1e-9),
                    p.loss_sum / p.count.max(1) as f64,
                    100.0 * p.errors as f64 / p.count.max(1) as f64,
                    indicatif::HumanDuration(std::time::Duration::from_secs_f64(run_eta))
                ));
            }
        }
        if self.stop.load(Ordering::SeqCst) {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    fn epoch_end(&mut self, m: &EpochMetrics, trainer: &Trainer, model: &LeNet5) -> Control {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            let valid = m
                .valid_error
                .map(|e| format!("validation error {:.2}%, ", 100.0 * e))
                .unwrap_or_default();
            println!(
                "epoch {:>2}: train loss {:.4}, train error {:.2}%, {valid}test error {:.2}%, {:.1} s ({:.0} img/s), lr {:.2e}",
                m.epoch,
                m.train_loss,
                100.0 * m.train_error,
                100.0 * m.test_error.unwrap_or(f64::NAN),
                m.seconds,
                m.images_per_s,
                m.lr
            );
        }
        if self.verbose {
            let h = &trainer.optimizer.state().hessian;
            for (p, h) in model.params().zip(h) {
                let mean = h.iter().map(|&v| v as f64).sum::<f64>() / h.len().max(1) as f64;
                let max = h.iter().fold(0.0f32, |m, &v| m.max(v));
                let w_rms =
                    (p.value.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / p.len() as f64).sqrt();
                println!(
                    "    {:10} h mean {mean:.3e} max {max:.3e}  |w| rms {w_rms:.3e}",
                    p.name
                );
            }
        }
        let ck = Checkpoint::capture(model, trainer, self.seed, self.run_config.clone());
        let path = self.out.join(format!("checkpoint-epoch-{}.bin", m.epoch));
        let written = checkpoint::save(&ck, &path)
            .map_err(anyhow::Error::from)
            .and_then(|()| report::write_metrics(&self.out, &trainer.progress.history));
        if let Err(e) = written {
            self.error = Some(e.context("writing the epoch's checkpoint and metrics"));
            return Control::Stop;
        }
        if self.stop.load(Ordering::SeqCst) {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `TrainArgs` as clap parses them from `flags`.
    fn args(flags: &[&str]) -> TrainArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            train: TrainArgs,
        }
        let argv = std::iter::once("lenet").chain(flags.iter().copied());
        <Cli as clap::Parser>::parse_from(argv).train
    }

    /// The library's recipes are what the command trains with: a program that
    /// calls the trainer with a preset's recipe gets the run `--model NAME` gives,
    /// and each flag changes one setting of it.
    #[test]
    fn each_preset_brings_its_recipe_and_flags_change_one_setting() {
        let recipe = |flags: &[&str]| args(flags).recipe().unwrap();
        assert_eq!(recipe(&[]), Recipe::paper_sdlm());
        assert_eq!(recipe(&["--model", "modern"]), Recipe::modern_momentum());
        assert_eq!(recipe(&["--model", "seed2018"]), Recipe::seed2018_sdlm());
        // the run that chose seed2018's epsilon
        assert_eq!(
            recipe(&["--model", "seed2018", "--lr", "0.002"]),
            Recipe::seed2018_sdlm()
        );
        // the command lines the README gave before presets carried recipes
        assert_eq!(
            recipe(&[
                "--model",
                "modern",
                "--optimizer",
                "momentum",
                "--schedule",
                "1=0.01,11=0.003,16=0.001",
                "--batch-size",
                "32"
            ]),
            Recipe::modern_momentum()
        );
        assert_eq!(
            recipe(&[
                "--model",
                "seed2018",
                "--batch-size",
                "256",
                "--momentum",
                "0.9",
                "--hessian-mode",
                "tensor-sum",
                "--mu",
                "0.02",
                "--lr",
                "12.8"
            ]),
            Recipe::numpy_2018()
        );
        // one flag, one setting
        let mut want = Recipe::modern_momentum();
        want.train.batch_size = 8;
        assert_eq!(recipe(&["--model", "modern", "--batch-size", "8"]), want);
        let mut want = Recipe::paper_sdlm();
        want.optimizer.schedule = Schedule::paper().scaled(2.0);
        assert_eq!(recipe(&["--lr", "0.001"]), want);
        // seed2018's network with classic's training: the same values, bit for bit
        let flags = ["--model", "seed2018", "--batch-size", "1", "--momentum", "0"];
        assert_eq!(
            recipe(&[&flags[..], &["--lr", "0.0005"]].concat()),
            Recipe::paper_sdlm()
        );
        let more = [
            "--hessian-mode",
            "per-parameter",
            "--mu",
            "1=1.0,9=0.02",
            "--lr",
            "0.0005",
        ];
        assert_eq!(recipe(&[&flags[..], &more[..]].concat()), Recipe::paper_sdlm());
        let mut want = Recipe::modern_momentum();
        want.optimizer.schedule = Schedule::constant(0.01);
        assert_eq!(recipe(&["--model", "modern", "--schedule", "constant"]), want);
        // another optimizer starts from its own defaults
        let got = recipe(&["--model", "modern", "--optimizer", "sdlm"]);
        assert_eq!(got.optimizer.method, Method::sdlm());
        assert_eq!(got.optimizer.schedule, Schedule::paper());
        assert_eq!(got.train.batch_size, 32);
    }

    #[test]
    fn settings_of_another_optimizer_and_bad_values_are_refused() {
        let refused = |flags: &[&str], says: &str| {
            let e = args(flags).recipe().unwrap_err().to_string();
            assert!(e.contains(says), "{flags:?}: {e}");
        };
        refused(
            &["--model", "modern", "--mu", "0.02"],
            "--mu is a setting of SDLM",
        );
        refused(&["--optimizer", "sgd", "--momentum", "0.5"], "not sgd");
        refused(&["--mu", "-1"], "--mu must be a positive finite number");
        refused(&["--lr", "-1"], "--lr must be a positive finite number");
        refused(&["--lr", "NaN"], "--lr must be a positive finite number");
        refused(&["--momentum", "1"], "--momentum must be in [0, 1)");
        refused(&["--schedule", "1=0.1", "--lr", "0.1"], "leave out --lr");
    }

    /// Checkpoints store a versioned `RunConfig`; one that stored the flags
    /// (lenet 0.1.0 before) is refused with the way out, not misread.
    #[test]
    fn checkpoints_carry_a_run_config_and_old_ones_are_refused_by_name() {
        let run = args(&["--model", "modern", "--seed", "7"]).run_config().unwrap();
        let model = LeNet5::new(run.model.clone(), run.seed).unwrap();
        let trainer = run.recipe.trainer(&model).unwrap();
        let json = serde_json::to_string(&run).unwrap();
        let ck = Checkpoint::capture(&model, &trainer, run.seed, json);
        assert_eq!(run_of_checkpoint(&ck, Path::new("ck.bin")).unwrap(), run);
        let old = r#"{"model":"classic","kernels":"parallel","optimizer":"sdlm","mu":"1=1.0,9=0.02"}"#;
        let ck = Checkpoint::capture(&model, &trainer, run.seed, old.into());
        let e = run_of_checkpoint(&ck, Path::new("ck.bin"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("before its run settings were versioned") && e.contains("lenet export"),
            "{e}"
        );
        let mut newer = run.clone();
        newer.version = 99;
        let ck = Checkpoint::capture(&model, &trainer, run.seed, serde_json::to_string(&newer).unwrap());
        let e = run_of_checkpoint(&ck, Path::new("ck.bin"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("version 99"), "{e}");
    }

    #[test]
    fn init_names_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_init("fan-in").unwrap(), Init::FanIn { scale: 2.4 });
        assert_eq!(parse_init("torch").unwrap(), Init::Torch);
        assert_eq!(parse_init("eblearn").unwrap(), Init::Eblearn);
        assert_eq!(parse_init("normal:0.1").unwrap(), Init::Normal { std: 0.1 });
        for bad in ["lush", "normal:", "normal:-1", "normal:nan", "eblearn:1"] {
            let e = parse_init(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
