//! `lenet eval`, `predict`, `inspect` and `export`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use lenet_layers::rbf::{BITMAP_COLS, BITMAP_LEN, BITMAP_ROWS};
use lenet_layers::{model_file, LeNet5, Prediction, CLASSES, INPUT_LEN, INPUT_SIZE};
use lenet_optim::checkpoint;
use mnist_io::{Dataset, InputSpec};
use serde::Serialize;

use crate::dataset::load_test_or_fetch;
use crate::plots::{self, GalleryStyle, Tile};
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
    confusion: Vec<[usize; CLASSES]>,
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
    let (preds, seconds) = timed_predictions(&mut model, &test, args.batch_size)?;
    let report = EvalReport::new(&preds, &test, seconds, args.batch_size);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        report.print();
    }
    if let Some(dir) = &args.plots {
        draw_eval_plots(dir, &report, &preds, &test)?;
        if !args.json {
            println!("\nwrote confusion.png and misclassified.png to {}", dir.display());
        }
    }
    Ok(())
}

/// Every test image's prediction, and the seconds the pass took. One untimed batch
/// first: the process's one-time costs (the thread pool, each thread's network
/// copy, first touches of code and buffers: 4-9 ms, measured) are not inference
/// throughput; PyTorch's side of the benchmark is warm the same way. The timed
/// pass reuses the warm-up's input buffer.
fn timed_predictions(model: &mut LeNet5, test: &Dataset, batch: usize) -> Result<(Vec<Prediction>, f64)> {
    let indices: Vec<usize> = (0..test.len()).collect();
    crate::on_pool(|| -> Result<_> {
        let mut x = Vec::new();
        let warm_up = &indices[..batch.min(indices.len())];
        predict_dataset_in(model, test, warm_up, batch, &mut x)?;
        let started = std::time::Instant::now();
        let preds = predict_dataset_in(model, test, &indices, batch, &mut x)?;
        Ok((preds, started.elapsed().as_secs_f64()))
    })
}

impl EvalReport {
    fn new(preds: &[Prediction], test: &Dataset, seconds: f64, batch_size: usize) -> Self {
        let mut confusion = [[0usize; CLASSES]; CLASSES];
        for (p, &label) in preds.iter().zip(test.labels()) {
            confusion[label as usize][p.class] += 1;
        }
        let n = test.len();
        let errors = n - (0..CLASSES).map(|c| confusion[c][c]).sum::<usize>();
        let per_class = (0..CLASSES)
            .map(|c| confusion[c][c] as f64 / confusion[c].iter().sum::<usize>().max(1) as f64)
            .collect();
        EvalReport {
            accuracy: 1.0 - errors as f64 / n as f64,
            error_rate: errors as f64 / n as f64,
            n,
            errors,
            per_class,
            confusion: confusion.to_vec(),
            seconds,
            images_per_s: n as f64 / seconds.max(1e-9),
            batch_size,
            threads: rayon::current_num_threads(),
            isa: tensor_ops::isa(),
        }
    }

    fn print(&self) {
        println!(
            "test set: {} images, {} errors: accuracy {:.2}%, error {:.2}%",
            self.n,
            self.errors,
            100.0 * self.accuracy,
            100.0 * self.error_rate
        );
        println!(
            "inference: {:.0} images/s (batch {}, {}, {})",
            self.images_per_s,
            self.batch_size,
            crate::train::count(self.threads, "thread"),
            self.isa
        );
        println!("\nper class accuracy:");
        for (c, a) in self.per_class.iter().enumerate() {
            println!("  {c}: {:.2}%", 100.0 * a);
        }
        println!("\nconfusion (rows: true class, columns: predicted):");
        println!(
            "       {}",
            (0..CLASSES).map(|c| format!("{c:>5}")).collect::<String>()
        );
        for (t, row) in self.confusion.iter().enumerate() {
            println!(
                "  {t:>3}  {}",
                row.iter().map(|v| format!("{v:>5}")).collect::<String>()
            );
        }
    }
}

/// `confusion.png`, and `misclassified.png` with the first 100 wrong test digits.
fn draw_eval_plots(dir: &Path, report: &EvalReport, preds: &[Prediction], test: &Dataset) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut confusion = [[0usize; CLASSES]; CLASSES];
    confusion.copy_from_slice(&report.confusion);
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
        .map(|((i, p), img)| {
            tile(
                img,
                test.rows(),
                test.cols(),
                format!("{}->{}", test.label(*i), p.class),
            )
        })
        .collect();
    let title = format!(
        "misclassified test digits (true->predicted), first {} of {}",
        tiles.len(),
        report.errors
    );
    let style = GalleryStyle::grid(10, 2).range(0.0, 255.0).ink_dark();
    plots::gallery(&dir.join("misclassified.png"), &title, &tiles, style)
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
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let x = InputSpec::default().batch(&test, &[args.image])?;
    let pred = model.predictions(&x).remove(0);
    let input = [tile(&x, INPUT_SIZE, INPUT_SIZE, String::new())];
    plots::gallery(
        &out.join("input.png"),
        "input (32x32)",
        &input,
        GalleryStyle::grid(1, 6),
    )?;
    let mut written = vec!["input.png".to_string()];
    written.extend(draw_activations(&model, pred.class, out)?);
    written.extend(draw_parameters(&model, out)?);
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

/// One picture per layer output: maps as images, vectors (C5, F6, the ten
/// outputs) as bar charts, F6 also as the 12x7 picture the RBF unit of the
/// predicted `class` compares with its bitmap. Returns the file names.
fn draw_activations(model: &LeNet5, class: usize, out: &Path) -> Result<Vec<String>> {
    let centers = model.tensors().find(|p| p.name == "output.centers");
    let mut written = Vec::new();
    for (name, shape, data) in model.named_activations() {
        let layer = name.trim_start_matches("act.").replace('.', "-");
        let file = format!("{layer}.png");
        let title = format!("{name} {:?}", &shape[1..]);
        let units = shape[1..].iter().product::<usize>();
        let is_maps = shape.len() == 4 && shape[2] * shape[3] > 1;
        if is_maps {
            let (c, h, w) = (shape[1], shape[2], shape[3]);
            let tiles: Vec<Tile> = (0..c)
                .map(|m| tile(&data[m * h * w..(m + 1) * h * w], h, w, format!("map {m}")))
                .collect();
            let zoom = (MAP_PIXELS / h.max(1)).max(2);
            plots::gallery(
                &out.join(&file),
                &title,
                &tiles,
                GalleryStyle::grid(c.min(8), zoom),
            )?;
        } else if units == CLASSES {
            let digits: Vec<String> = (0..CLASSES).map(|d| d.to_string()).collect();
            let what = if model.config().loss.lower_is_better() {
                "RBF penalty per digit (lower wins)"
            } else {
                "logit per digit (higher wins)"
            };
            plots::bars(&out.join(&file), &format!("{layer}: {what}"), data, Some(&digits))?;
        } else {
            plots::bars(&out.join(&file), &title, data, None)?;
        }
        written.push(file);
        if let (true, Some(c)) = (units == BITMAP_LEN, centers) {
            // F6 as the picture its RBF unit compares with the winning class's bitmap
            let file = format!("{layer}-as-bitmap.png");
            let tiles = [
                tile(data, BITMAP_ROWS, BITMAP_COLS, layer.clone()),
                tile(
                    &c.value[class * BITMAP_LEN..(class + 1) * BITMAP_LEN],
                    BITMAP_ROWS,
                    BITMAP_COLS,
                    format!("bitmap {class}"),
                ),
            ];
            let style = GalleryStyle::grid(2, 12).range(-F6_RANGE, F6_RANGE);
            plots::gallery(&out.join(&file), &title, &tiles, style)?;
            written.push(file);
        }
    }
    Ok(written)
}

/// The RBF prototypes and the C1 and C3 kernels. Returns the file names.
fn draw_parameters(model: &LeNet5, out: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    if let Some(c) = model.tensors().find(|p| p.name == "output.centers") {
        let tiles: Vec<Tile> = (0..CLASSES)
            .map(|d| {
                let bitmap = &c.value[d * BITMAP_LEN..(d + 1) * BITMAP_LEN];
                tile(bitmap, BITMAP_ROWS, BITMAP_COLS, d.to_string())
            })
            .collect();
        let style = GalleryStyle::grid(CLASSES, 8).range(-1.0, 1.0).ink_dark();
        plots::gallery(
            &out.join("rbf-bitmaps.png"),
            "RBF output prototypes",
            &tiles,
            style,
        )?;
        written.push("rbf-bitmaps.png".into());
    }
    let param = |name: &str| model.params().find(|p| p.name == name).cloned();
    let kernel = KERNEL * KERNEL;
    if let Some(w) = param("c1.weight") {
        let maps = w.value.len() / kernel;
        let tiles: Vec<Tile> = (0..maps)
            .map(|o| {
                tile(
                    &w.value[o * kernel..(o + 1) * kernel],
                    KERNEL,
                    KERNEL,
                    format!("{o}"),
                )
            })
            .collect();
        plots::gallery(
            &out.join("c1-kernels.png"),
            "C1 kernels",
            &tiles,
            GalleryStyle::grid(maps, 12),
        )?;
        written.push("c1-kernels.png".into());
    }
    if let Some(w) = param("c3.weight") {
        // one row per C3 map, one column per S2 map; blank where the table has no connection
        let (inputs, kernels) = (C3_INPUTS, w.value.len() / kernel);
        let blank = vec![0.0f32; kernel];
        let r = w.value.iter().fold(1e-6f32, |r, &v| r.max(v.abs()));
        let tiles: Vec<Tile> = (0..kernels)
            .map(|k| {
                let connected = w.mask.as_ref().is_none_or(|m| m[k * kernel] != 0.0);
                let values = if connected {
                    &w.value[k * kernel..(k + 1) * kernel]
                } else {
                    &blank[..]
                };
                tile(values, KERNEL, KERNEL, String::new())
            })
            .collect();
        let title = "C3 kernels (row: C3 map, column: S2 map)";
        let style = GalleryStyle::grid(inputs, 8).range(-r, r);
        plots::gallery(&out.join("c3-kernels.png"), title, &tiles, style)?;
        written.push("c3-kernels.png".into());
    }
    Ok(written)
}

/// Screen pixels a feature map is drawn at (each way).
const MAP_PIXELS: usize = 112;
/// F6's outputs and the bitmaps lie in about +-1.7 (the squashing function's range).
const F6_RANGE: f32 = 1.8;
/// Convolution kernels are KERNEL x KERNEL.
const KERNEL: usize = 5;
/// C3 reads the 6 maps of S2.
const C3_INPUTS: usize = 6;

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
