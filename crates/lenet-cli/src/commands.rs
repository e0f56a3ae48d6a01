//! `lenet eval`, `predict`, `inspect` and `export`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use lenet_layers::{model_file, LeNet5, Prediction, INPUT_LEN};
use lenet_optim::checkpoint;
use mnist_io::{Dataset, InputSpec};
use serde::Serialize;

use crate::dataset::load_test_or_fetch;
use crate::plots::{self, Tile};
use mnist_io::digit::decode_digit;

/// The shipped models, by the name `--model` takes for them.
pub const SHIPPED_MODELS: [(&str, &str); 2] = [
    ("classic", "models/lenet5-classic.safetensors"),
    ("modern", "models/lenet5-modern.safetensors"),
];

/// `--model`, `--preset`, `--threads`: how a command gets its network.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The network: classic or modern (the shipped models in models/), or the path of a
    /// model file (safetensors; write ./classic for a file of that name)
    #[arg(long, default_value = "classic", value_name = "classic|modern|PATH", value_parser = model_source)]
    pub model: ModelSource,
    /// Refuse a model file of another preset than this one
    #[arg(long, value_parser = crate::choices::one_of(&crate::choices::PRESETS))]
    pub preset: Option<lenet_layers::Preset>,
    /// Worker threads (1 to 256) [default: all cores]
    #[arg(long, value_parser = crate::limits::threads)]
    pub threads: Option<usize>,
}

/// What `--model` names: a shipped model, or a model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// One of [`SHIPPED_MODELS`], by its file in the repository.
    Shipped(&'static str),
    /// A model file.
    File(PathBuf),
}

/// `--model`'s value parser.
fn model_source(text: &str) -> Result<ModelSource> {
    Ok(match SHIPPED_MODELS.iter().find(|(name, _)| *name == text) {
        Some((_, file)) => ModelSource::Shipped(file),
        None => ModelSource::File(PathBuf::from(text)),
    })
}

impl ModelArgs {
    /// The model file `--model` names: a shipped model's file (from the working
    /// directory, or else from the source tree the binary was built from), or the path.
    pub fn path(&self) -> PathBuf {
        match &self.model {
            ModelSource::Shipped(file) => {
                let here = PathBuf::from(file);
                let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(file);
                if here.exists() || !built.exists() {
                    here
                } else {
                    built
                }
            }
            ModelSource::File(path) => path.clone(),
        }
    }

    /// Loads the model (and sizes the thread pool).
    pub fn load(&self) -> Result<LeNet5> {
        crate::set_threads(self.threads)?;
        let path = self.path();
        let model = model_file::load(&path).map_err(|e| match e {
            // a checkpoint is not a model file, but holds one
            lenet_layers::ModelError::Format { .. } if checkpoint::looks_like(&path) => anyhow::anyhow!(
                "{} is a training checkpoint, not a model file; write its model with \
                 `lenet export --checkpoint {} --out model.safetensors`",
                path.display(),
                path.display()
            ),
            e => anyhow::Error::new(e).context("loading the model"),
        })?;
        if let Some(want) = self.preset {
            if model.config().base_preset() != Some(want) {
                bail!(
                    "{}: the model is {}, not a {want} network",
                    path.display(),
                    model.config().describe()
                );
            }
        }
        Ok(model)
    }
}

/// Predictions for images `indices` of `ds`, `batch` at a time.
pub fn predict_dataset(
    model: &mut LeNet5,
    ds: &Dataset,
    indices: &[usize],
    batch: usize,
) -> Result<Vec<Prediction>> {
    predict_dataset_in(model, ds, indices, batch, &mut Vec::new())
}

/// [`predict_dataset`] with the caller's input buffer `x` (resized to one batch),
/// so that repeated calls reuse it.
fn predict_dataset_in(
    model: &mut LeNet5,
    ds: &Dataset,
    indices: &[usize],
    batch: usize,
    x: &mut Vec<f32>,
) -> Result<Vec<Prediction>> {
    let spec = InputSpec::default();
    let batch = batch.max(1);
    x.resize(batch * INPUT_LEN, 0.0);
    let mut out = Vec::with_capacity(indices.len());
    for part in indices.chunks(batch) {
        let x = &mut x[..part.len() * INPUT_LEN];
        mnist_io::fill_inputs_parallel(&spec, ds, part, x)?;
        out.extend(model.predictions(x));
    }
    Ok(out)
}

// ---------------------------------------------------------------- eval

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Directory with MNIST (fetched there when missing)
    #[arg(long, env = "LENET_DATA_DIR", default_value = mnist_io::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Print one JSON object instead of tables
    #[arg(long)]
    pub json: bool,
    /// Write confusion.png and misclassified.png into this directory
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Images per forward pass (1 to 65536)
    #[arg(long, default_value_t = 1000, value_parser = crate::limits::batch_size)]
    pub batch_size: usize,
}

#[derive(Serialize)]
struct EvalReport {
    accuracy: f64,
    error_rate: f64,
    n: usize,
    errors: usize,
    per_class: Vec<f64>,
    confusion: Vec<[usize; 10]>,
    /// Inference time over the test set (input preparation and forward passes),
    /// after one untimed warm-up batch.
    seconds: f64,
    images_per_s: f64,
    batch_size: usize,
    threads: usize,
    /// The instruction set the kernels ran on.
    isa: tensor_ops::Isa,
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let mut model = args.model.load()?;
    let test = load_test_or_fetch(&args.data_dir, args.json)?;
    if test.is_empty() {
        bail!("the test set in {} holds no images", args.data_dir.display());
    }
    let indices: Vec<usize> = (0..test.len()).collect();
    // One untimed batch first: the process's one-time costs (the thread pool,
    // the network copies of each thread, first touches of code and buffers: 4-9
    // ms, measured) are not inference throughput. PyTorch's side of the
    // benchmark is warm the same way (its rounds run in one process).
    // The timed pass reuses the warm-up's input buffer.
    let (preds, seconds) = crate::on_pool(|| -> Result<_> {
        let mut x = Vec::new();
        let warm_up = &indices[..args.batch_size.min(indices.len())];
        predict_dataset_in(&mut model, &test, warm_up, args.batch_size, &mut x)?;
        let started = std::time::Instant::now();
        let preds = predict_dataset_in(&mut model, &test, &indices, args.batch_size, &mut x)?;
        Ok((preds, started.elapsed().as_secs_f64()))
    })?;
    let mut confusion = [[0usize; 10]; 10];
    for (p, &label) in preds.iter().zip(test.labels()) {
        confusion[label as usize][p.class] += 1;
    }
    let errors = preds
        .iter()
        .zip(test.labels())
        .filter(|(p, &l)| p.class != l as usize)
        .count();
    let n = test.len();
    let per_class: Vec<f64> = (0..10)
        .map(|c| confusion[c][c] as f64 / confusion[c].iter().sum::<usize>().max(1) as f64)
        .collect();
    let report = EvalReport {
        accuracy: 1.0 - errors as f64 / n as f64,
        error_rate: errors as f64 / n as f64,
        n,
        errors,
        per_class,
        confusion: confusion.to_vec(),
        seconds,
        images_per_s: n as f64 / seconds.max(1e-9),
        batch_size: args.batch_size,
        threads: rayon::current_num_threads(),
        isa: tensor_ops::isa(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "test set: {n} images, {errors} errors: accuracy {:.2}%, error {:.2}%",
            100.0 * report.accuracy,
            100.0 * report.error_rate
        );
        println!(
            "inference: {:.0} images/s (batch {}, {} threads, {})",
            report.images_per_s, report.batch_size, report.threads, report.isa
        );
        println!("\nper class accuracy:");
        for (c, a) in report.per_class.iter().enumerate() {
            println!("  {c}: {:.2}%", 100.0 * a);
        }
        println!("\nconfusion (rows: true class, columns: predicted):");
        println!(
            "       {}",
            (0..10).map(|c| format!("{c:>5}")).collect::<String>()
        );
        for (t, row) in confusion.iter().enumerate() {
            println!(
                "  {t:>3}  {}",
                row.iter().map(|v| format!("{v:>5}")).collect::<String>()
            );
        }
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        plots::confusion_png(&dir.join("confusion.png"), &confusion)?;
        let wrong: Vec<(usize, &Prediction)> = preds
            .iter()
            .enumerate()
            .filter(|(i, p)| p.class != test.label(*i) as usize)
            .take(100)
            .collect();
        let images: Vec<Vec<f32>> = wrong
            .iter()
            .map(|(i, _)| test.image(*i).iter().map(|&v| v as f32).collect())
            .collect();
        let tiles: Vec<Tile> = wrong
            .iter()
            .zip(&images)
            .map(|((i, p), img)| Tile {
                values: img,
                rows: 28,
                cols: 28,
                caption: format!("{}->{}", test.label(*i), p.class),
            })
            .collect();
        let title = format!(
            "misclassified test digits (true->predicted), first {} of {errors}",
            tiles.len()
        );
        plots::gallery(
            &dir.join("misclassified.png"),
            &title,
            &tiles,
            10,
            2,
            Some((0.0, 255.0)),
            true,
        )?;
        if !args.json {
            println!("\nwrote confusion.png and misclassified.png to {}", dir.display());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- predict

/// Flags of `lenet predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// PNG or JPEG images of digits (any size, either polarity)
    pub images: Vec<PathBuf>,
    /// Predict MNIST test image number N instead
    #[arg(long, value_name = "N")]
    pub idx_index: Option<usize>,
    /// Directory with MNIST, for --idx-index
    #[arg(long, env = "LENET_DATA_DIR", default_value = mnist_io::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Print one JSON object per image
    #[arg(long)]
    pub json: bool,
}

/// Reads an image file as MNIST-style 28x28 bytes (see [`mnist_io::digit::decode_digit`]).
/// Only a regular file of at most [`mnist_io::digit::MAX_IMAGE_BYTES`] is read.
pub fn read_digit(path: &Path) -> Result<Vec<u8>> {
    let bytes = lenet_fs::read_capped(path, mnist_io::digit::MAX_IMAGE_BYTES).map_err(|e| match e {
        lenet_fs::FsError::TooLarge { len, limit, .. } => anyhow::anyhow!(
            "{}: {len} bytes or more is too large for an image of a digit (limit {limit} bytes)",
            path.display()
        ),
        other => anyhow::Error::new(other),
    })?;
    decode_digit(&bytes).with_context(|| path.display().to_string())
}

pub fn predict(args: PredictArgs) -> Result<()> {
    let mut model = args.model.load()?;
    let mut inputs: Vec<(String, Vec<u8>, Option<u8>)> = Vec::new();
    if let Some(n) = args.idx_index {
        let test = load_test_or_fetch(&args.data_dir, args.json)?;
        if n >= test.len() {
            bail!(
                "--idx-index {n} is out of range: the test set has {} images (0..{})",
                test.len(),
                test.len() - 1
            );
        }
        inputs.push((format!("test[{n}]"), test.image(n).to_vec(), Some(test.label(n))));
    }
    for path in &args.images {
        inputs.push((path.display().to_string(), read_digit(path)?, None));
    }
    if inputs.is_empty() {
        bail!("nothing to predict: give image files or --idx-index N");
    }
    for (name, pixels, label) in inputs {
        let ds = Dataset::from_parts(pixels, vec![label.unwrap_or(0)], 28, 28)?;
        let p = predict_dataset(&mut model, &ds, &[0], 1)?.remove(0);
        if args.json {
            #[derive(Serialize)]
            struct Out<'a> {
                file: &'a str,
                class: usize,
                scores: &'a [f32],
                probabilities: &'a [f32],
                /// RBF + MAP only: the "none of these" class's share
                #[serde(skip_serializing_if = "Option::is_none")]
                rejection: Option<f32>,
                #[serde(skip_serializing_if = "Option::is_none")]
                label: Option<u8>,
            }
            let out = Out {
                file: &name,
                class: p.class,
                scores: &p.scores,
                probabilities: &p.probabilities,
                rejection: rejection(&p.probabilities, &model),
                label,
            };
            println!("{}", serde_json::to_string(&out)?);
        } else {
            let kind = if model.config().loss.lower_is_better() {
                "RBF penalties (lower is better)"
            } else {
                "logits"
            };
            let truth = label.map(|l| format!(" (label {l})")).unwrap_or_default();
            println!("{name}: {}{truth}", p.class);
            println!(
                "  {kind}: {}",
                p.scores
                    .iter()
                    .map(|s| format!("{s:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            println!(
                "  probabilities: {}",
                p.probabilities
                    .iter()
                    .map(|s| format!("{s:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            if let Some(r) = rejection(&p.probabilities, &model) {
                println!("  none of these: {r:.3} (the MAP criterion's rejection class, penalty j; the ten above and this sum to 1)");
            }
        }
    }
    Ok(())
}

/// With the MAP criterion the ten class probabilities leave room for an eleventh,
/// "none of these" (penalty j): what they do not cover. `None` for other losses.
fn rejection(probabilities: &[f32], model: &LeNet5) -> Option<f32> {
    matches!(model.config().loss, lenet_layers::Loss::Map { .. })
        .then(|| (1.0 - probabilities.iter().sum::<f32>()).max(0.0))
}

// ---------------------------------------------------------------- inspect

fn tile(values: &[f32], rows: usize, cols: usize, caption: String) -> Tile<'_> {
    Tile {
        values,
        rows,
        cols,
        caption,
    }
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Which MNIST test image
    #[arg(long, value_name = "N")]
    pub image: usize,
    /// Directory with MNIST
    #[arg(long, env = "LENET_DATA_DIR", default_value = mnist_io::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Where the PNGs go
    #[arg(long)]
    pub out: PathBuf,
}

pub fn inspect(args: InspectArgs) -> Result<()> {
    let mut model = args.model.load()?;
    let test = load_test_or_fetch(&args.data_dir, false)?;
    if args.image >= test.len() {
        bail!(
            "--image {} is out of range: the test set has {} images",
            args.image,
            test.len()
        );
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let x = InputSpec::default().batch(&test, &[args.image])?;
    let pred = model.predictions(&x).remove(0);
    let out = &args.out;
    plots::gallery(
        &out.join("input.png"),
        "input (32x32)",
        &[tile(&x, 32, 32, String::new())],
        1,
        6,
        None,
        false,
    )?;

    let acts = model.named_activations();
    let mut written = vec!["input.png".to_string()];
    for (name, shape, data) in &acts {
        let layer = name.trim_start_matches("act.").replace('.', "-");
        let file = format!("{layer}.png");
        let title = format!("{name} {:?}", &shape[1..]);
        match shape.len() {
            4 => {
                let (c, h, w) = (shape[1], shape[2], shape[3]);
                let tiles: Vec<Tile> = (0..c)
                    .map(|m| tile(&data[m * h * w..(m + 1) * h * w], h, w, format!("map {m}")))
                    .collect();
                let zoom = (112 / h.max(1)).max(2);
                plots::gallery(&out.join(&file), &title, &tiles, c.min(8), zoom, None, false)?;
            }
            _ => {
                let n = shape[1];
                let (rows, cols) = if n == 84 {
                    (12, 7)
                } else if n == 120 {
                    (12, 10)
                } else {
                    (1, n)
                };
                let mut tiles = vec![tile(data, rows, cols, layer.clone())];
                let centers = model
                    .tensors()
                    .find(|p| p.name == "output.centers")
                    .map(|p| p.value.clone());
                if let (84, Some(c)) = (n, &centers) {
                    tiles.push(tile(
                        &c[pred.class * 84..(pred.class + 1) * 84],
                        12,
                        7,
                        format!("bitmap {}", pred.class),
                    ));
                }
                plots::gallery(
                    &out.join(&file),
                    &title,
                    &tiles,
                    2,
                    12,
                    if n == 84 { Some((-1.8, 1.8)) } else { None },
                    false,
                )?;
            }
        }
        written.push(file);
    }
    if let Some(c) = model.tensors().find(|p| p.name == "output.centers") {
        let tiles: Vec<Tile> = (0..10)
            .map(|d| tile(&c.value[d * 84..(d + 1) * 84], 12, 7, d.to_string()))
            .collect();
        plots::gallery(
            &out.join("rbf-bitmaps.png"),
            "RBF output prototypes",
            &tiles,
            10,
            8,
            Some((-1.0, 1.0)),
            true,
        )?;
        written.push("rbf-bitmaps.png".into());
    }
    let kernels = |name: &str| model.params().find(|p| p.name == name).cloned();
    if let Some(w) = kernels("c1.weight") {
        let tiles: Vec<Tile> = (0..6)
            .map(|o| tile(&w.value[o * 25..(o + 1) * 25], 5, 5, format!("{o}")))
            .collect();
        plots::gallery(
            &out.join("c1-kernels.png"),
            "C1 kernels",
            &tiles,
            6,
            12,
            None,
            false,
        )?;
        written.push("c1-kernels.png".into());
    }
    if let Some(w) = kernels("c3.weight") {
        // 16 rows (C3 maps) x 6 columns (S2 maps); blank where the table has no connection
        let blank = [0.0f32; 25];
        let (lo, hi) = w
            .value
            .iter()
            .fold((0.0f32, 0.0f32), |(l, h), &v| (l.min(v), h.max(v)));
        let tiles: Vec<Tile> = (0..96)
            .map(|k| {
                let connected = w.mask.as_ref().is_none_or(|m| m[k * 25] != 0.0);
                let values = if connected {
                    &w.value[k * 25..(k + 1) * 25]
                } else {
                    &blank[..]
                };
                tile(values, 5, 5, String::new())
            })
            .collect();
        let r = lo.abs().max(hi.abs()).max(1e-6);
        plots::gallery(
            &out.join("c3-kernels.png"),
            "C3 kernels (row: C3 map, column: S2 map)",
            &tiles,
            6,
            8,
            Some((-r, r)),
            false,
        )?;
        written.push("c3-kernels.png".into());
    }
    println!(
        "test image {} (label {}): predicted {}; wrote {} to {}",
        args.image,
        test.label(args.image),
        pred.class,
        written.join(", "),
        out.display()
    );
    Ok(())
}

// ---------------------------------------------------------------- export

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A training checkpoint (checkpoint-epoch-N.bin)
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The model file to write (.safetensors)
    #[arg(long)]
    pub out: PathBuf,
}

pub fn export(args: ExportArgs) -> Result<()> {
    let ck = checkpoint::load(&args.checkpoint)
        .with_context(|| format!("reading {}", args.checkpoint.display()))?;
    let model = ck.model(&args.checkpoint)?;
    model_file::save_with(&model, &args.out, Some(&ck.run_config))
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {} ({} model after {})",
        args.out.display(),
        model.config().describe(),
        crate::train::count(ck.progress.history.len(), "epoch")
    );
    Ok(())
}
