//! Calls one kernel: LeNet-5's C1 convolution on a batch of 8 images, with the
//! readable naive loops and with the fastest variant, and compares them.
//!
//! `cargo run --release -p tensor-ops --example conv`

use tensor_ops::conv::{self, ConvShape, ConvWorkspace};
use tensor_ops::{isa, Algo};

fn main() {
    // C1: 1 input map of 32x32, 6 output maps, 5x5 kernels, batch 8 -> [8, 6, 28, 28]
    let shape = ConvShape::square(8, 1, 32, 6, 5);
    let x: Vec<f32> = (0..shape.x_len()).map(|i| (i as f32 * 0.01).sin()).collect();
    let w: Vec<f32> = (0..shape.w_len()).map(|i| (i as f32 * 0.3).cos() * 0.1).collect();
    let b = vec![0.05; shape.out_c];
    let mut ws = ConvWorkspace::default();

    let mut y_naive = vec![0.0; shape.y_len()];
    conv::forward(Algo::Naive, &shape, None, &x, &w, &b, &mut y_naive, &mut ws);
    let mut y_fast = vec![0.0; shape.y_len()];
    conv::forward(Algo::Parallel, &shape, None, &x, &w, &b, &mut y_fast, &mut ws);

    let worst = y_naive
        .iter()
        .zip(&y_fast)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!(
        "C1 forward, output [{}, {}, {}, {}], instruction set {}",
        shape.batch,
        shape.out_c,
        shape.out_h(),
        shape.out_w(),
        isa()
    );
    println!("largest difference between naive and parallel: {worst:e}");
    assert!(worst < 1e-4, "the variants disagree");
}
