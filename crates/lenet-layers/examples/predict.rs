//! Loads the shipped model and predicts a picture of a digit in a few lines.
//!
//! `cargo run --release -p lenet-layers --example predict`

use lenet_layers::LeNet5;
use ndarray::Array4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/lenet5-classic.safetensors"
    );
    let mut net = LeNet5::load(path.as_ref())?;

    // A "1" drawn the way MNIST's are: a bright vertical stroke on black, 28x28
    // centred on the network's 32x32 canvas, scaled the paper's way (background
    // -0.1, ink 1.175).
    let x = Array4::from_shape_fn((1, 1, 32, 32), |(_, _, r, c)| {
        if (6..26).contains(&r) && (15..18).contains(&c) {
            1.175
        } else {
            -0.1
        }
    });
    let scores = net.predict(x.view())?; // [1, 10] RBF penalties: smaller is better
    let class = net.classify(x.view())?[0];
    println!("penalties: {:.2}", scores.row(0));
    println!("predicted digit: {class}");
    Ok(())
}
