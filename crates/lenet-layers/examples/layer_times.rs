//! Where a training step's time goes, layer by layer: each layer of LeNet-5 timed
//! alone on a fixed input, its forward pass and its backward pass (with the input
//! gradient, and without it as the first layer runs), the best of 7 rounds of 100
//! calls, on a rayon pool of the given size.
//!
//! ```sh
//! cargo run --release -p lenet-layers --example layer_times -- [THREADS] [BATCH] [classic|modern] [LAYER]
//! ```
//!
//! Defaults: 1 thread, batch 16 (one half of a training batch of 32, as
//! `LeNet5::train_step` runs it), classic, every layer. With `LAYER` (a name of
//! the first column, such as `c3`) only that layer is timed, so that a profiler
//! run on the example sees no other.
use std::time::Instant;

use lenet_layers::{Layer, LeNet5, ModelConfig, INPUT_LEN};

/// Best time of one call of `f`, in microseconds.
fn best_us(f: &mut dyn FnMut()) -> f64 {
    for _ in 0..30 {
        f();
    }
    (0..7)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..100 {
                f();
            }
            started.elapsed().as_secs_f64() / 100.0 * 1e6
        })
        .fold(f64::INFINITY, f64::min)
}

/// A whole number from 1 to `max` from the command line, or `default` when absent.
fn count(arg: Option<String>, name: &str, default: usize, max: usize) -> Result<usize, String> {
    match arg {
        None => Ok(default),
        Some(s) => match s.parse() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "{name} must be a whole number from 1 to {max}, not {s:?}"
            )),
        },
    }
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let threads = count(args.next(), "THREADS", 1, 256)?;
    let batch = count(args.next(), "BATCH", 16, 65_536)?;
    let config = match args.next().as_deref() {
        None | Some("classic") => ModelConfig::classic(),
        Some("modern") => ModelConfig::modern(),
        Some(other) => return Err(format!("unknown model {other:?} (classic, modern)")),
    };
    let net = LeNet5::new(config, 7).map_err(|e| e.to_string())?;
    let mut layers: Vec<Box<dyn Layer>> = net.layers().iter().map(|l| l.boxed_clone()).collect();
    let only = args.next();
    if let Some(name) = &only {
        if !layers.iter().any(|l| l.name() == name) {
            let names: Vec<&str> = layers.iter().map(|l| l.name()).collect();
            return Err(format!("no layer {name:?} (layers: {})", names.join(", ")));
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    pool.install(|| {
        // activations of one forward pass on a fixed, image-like input
        let x: Vec<f32> = (0..batch * INPUT_LEN)
            .map(|i| (i * 7919 % 255) as f32 / 255.0 - 0.1)
            .collect();
        let mut acts = vec![x];
        for layer in &mut layers {
            let mut y = vec![0.0; batch * layer.out_len()];
            layer.forward(batch, &acts[acts.len() - 1], &mut y);
            acts.push(y);
        }
        println!(
            "batch {batch}, {threads} thread(s), {}: microseconds per call",
            tensor_ops::isa()
        );
        println!(
            "{:>8} {:>9} {:>10} {:>18}",
            "layer", "forward", "backward", "backward, no dx"
        );
        let (mut forward, mut backward) = (0.0, 0.0);
        for (i, layer) in layers.iter_mut().enumerate() {
            if only.as_ref().is_some_and(|name| *name != layer.name()) {
                continue;
            }
            let (x, y) = (&acts[i], &acts[i + 1]);
            let mut out = y.clone();
            let f = best_us(&mut || layer.forward(batch, x, &mut out));
            let dy: Vec<f32> = y.iter().map(|v| 0.01 * v).collect();
            let mut dx = vec![0.0; x.len()];
            let b = best_us(&mut || layer.backward(batch, x, y, &dy, Some(&mut dx)));
            let b0 = best_us(&mut || layer.backward(batch, x, y, &dy, None));
            // the first layer's input gradient is never needed
            let b_used = if i == 0 { b0 } else { b };
            forward += f;
            backward += b_used;
            println!("{:>8} {f:9.1} {b:10.1} {b0:18.1}", layer.name());
        }
        if only.is_none() {
            println!(
                "{:>8} {forward:9.1} {backward:10.1}   (the first layer without dx: {:.0} images/s)",
                "total",
                batch as f64 / (forward + backward) * 1e6
            );
        }
    });
    Ok(())
}
