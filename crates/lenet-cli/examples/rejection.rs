//! How well a trained LeNet-5 says "none of these": the share of non-digits it
//! rejects at the confidence threshold that keeps 99% of the MNIST test digits.
//! Confidence is, for an RBF network, minus its smallest penalty (the distance of
//! F6 to the nearest digit bitmap: the MAP criterion's "none of these" class wins
//! when every penalty is large), and for a softmax network its largest class
//! probability (which always shares 1 among the ten digits).
//!
//! The non-digits, drawn here from a fixed seed and brought to 28x28 the way MNIST
//! was (`mnist_io::preprocess::to_mnist`):
//! - letters: the 52 Latin letters of DejaVu Sans Mono at three sizes (156);
//! - scribbles: three random thick strokes each (1,000);
//! - noise: uniform random pixels (1,000).
//!
//! ```sh
//! cargo run --release -p lenet-cli --example rejection -- data/mnist MODEL.safetensors [MODEL ...]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measuring script: stop at the first surprise

use ab_glyph::{Font, FontRef, ScaleFont};
use lenet_layers::{model_file, LeNet5};
use mnist_io::{load_split, preprocess::to_mnist, Dataset, DatasetKind, InputSpec, Split};

const CANVAS: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (data, models) = args.split_first().expect("usage: rejection DATA_DIR MODEL...");
    let test = load_split(data.as_ref(), DatasetKind::Mnist, Split::Test).unwrap();
    let sets = [
        ("letters", letters()),
        ("scribbles", scribbles(1000)),
        ("noise", noise(1000)),
    ];
    for (name, set) in &sets {
        let ink = set.pixels().iter().filter(|&&p| p > 128).count() as f64 / set.len() as f64;
        eprintln!(
            "{name}: {} images, {ink:.0} inked pixels each on average",
            set.len()
        );
    }
    println!("| model | threshold (confidence) | test digits kept | error on kept digits | letters rejected | scribbles rejected | noise rejected |");
    println!("|---|---|---|---|---|---|---|");
    for path in models {
        let mut model = model_file::load(path.as_ref()).unwrap();
        let (conf, right) = confidences(&mut model, &test);
        let mut sorted = conf.clone();
        sorted.sort_by(f32::total_cmp);
        let threshold = sorted[sorted.len() / 100]; // keeps the top 99%
        let kept: Vec<usize> = (0..conf.len()).filter(|&i| conf[i] >= threshold).collect();
        let kept_errors = kept.iter().filter(|&&i| !right[i]).count();
        let mut row = format!(
            "| {path} | {threshold:.4} | {:.2}% | {:.2}% |",
            100.0 * kept.len() as f64 / conf.len() as f64,
            100.0 * kept_errors as f64 / kept.len() as f64
        );
        for (_, set) in &sets {
            let (c, _) = confidences(&mut model, set);
            let rejected = c.iter().filter(|&&v| v < threshold).count();
            row += &format!(" {:.1}% |", 100.0 * rejected as f64 / c.len() as f64);
        }
        println!("{row}");
    }
}

/// Each image's confidence (see the top of the file), and whether the class is its label.
fn confidences(model: &mut LeNet5, ds: &Dataset) -> (Vec<f32>, Vec<bool>) {
    let rbf = model.config().loss.lower_is_better();
    let spec = InputSpec::default();
    let mut conf = Vec::with_capacity(ds.len());
    let mut right = Vec::with_capacity(ds.len());
    let indices: Vec<usize> = (0..ds.len()).collect();
    for part in indices.chunks(500) {
        let x = spec.batch(ds, part).unwrap();
        for (p, &i) in model.predictions(&x).iter().zip(part) {
            conf.push(if rbf {
                -p.scores.iter().copied().fold(f32::INFINITY, f32::min)
            } else {
                p.probabilities.iter().copied().fold(0.0, f32::max)
            });
            right.push(p.class == ds.label(i) as usize);
        }
    }
    (conf, right)
}

/// The images of `canvases` (each CANVAS x CANVAS) as MNIST-style digits, label 0.
fn as_dataset(canvases: Vec<Vec<u8>>) -> Dataset {
    let n = canvases.len();
    let pixels: Vec<u8> = canvases
        .iter()
        .flat_map(|c| to_mnist(c, CANVAS, CANVAS).unwrap())
        .collect();
    Dataset::from_parts(pixels, vec![0; n], 28, 28).unwrap()
}

fn letters() -> Dataset {
    let font = FontRef::try_from_slice(include_bytes!("../assets/DejaVuSansMono.ttf")).unwrap();
    let mut canvases = Vec::new();
    for size in [36.0, 44.0, 52.0] {
        for ch in ('A'..='Z').chain('a'..='z') {
            let scaled = font.as_scaled(size);
            let glyph = scaled.scaled_glyph(ch);
            let mut canvas = vec![0u8; CANVAS * CANVAS];
            if let Some(outline) = font.outline_glyph(glyph.clone()) {
                let b = outline.px_bounds();
                let (ox, oy) = (
                    (CANVAS as f32 - b.width()) / 2.0,
                    (CANVAS as f32 - b.height()) / 2.0,
                );
                outline.draw(|x, y, c| {
                    let (x, y) = ((x as f32 + ox) as usize, (y as f32 + oy) as usize);
                    if x < CANVAS && y < CANVAS {
                        canvas[y * CANVAS + x] = (c * 255.0) as u8;
                    }
                });
            }
            canvases.push(canvas);
        }
    }
    as_dataset(canvases)
}

/// A small seeded generator (xorshift), so every run draws the same images.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

fn scribbles(n: usize) -> Dataset {
    let mut next = rng(2026);
    let mut at = move |below: usize| (next() % below as u64) as usize;
    let canvases = (0..n)
        .map(|_| {
            let mut canvas = vec![0u8; CANVAS * CANVAS];
            for _ in 0..3 {
                let (x0, y0, x1, y1) = (at(CANVAS), at(CANVAS), at(CANVAS), at(CANVAS));
                let width = 2 + at(3) as i64;
                for t in 0..=100 {
                    let x = x0 as i64 + (x1 as i64 - x0 as i64) * t / 100;
                    let y = y0 as i64 + (y1 as i64 - y0 as i64) * t / 100;
                    for dy in -width..=width {
                        for dx in -width..=width {
                            let (px, py) = (x + dx, y + dy);
                            if (0..CANVAS as i64).contains(&px) && (0..CANVAS as i64).contains(&py) {
                                canvas[py as usize * CANVAS + px as usize] = 255;
                            }
                        }
                    }
                }
            }
            canvas
        })
        .collect();
    as_dataset(canvases)
}

fn noise(n: usize) -> Dataset {
    let mut next = rng(7);
    let pixels: Vec<u8> = (0..n * 28 * 28).map(|_| (next() % 256) as u8).collect();
    Dataset::from_parts(pixels, vec![0; n], 28, 28).unwrap()
}
