//! Reads an IDX dataset and shows what is in it: counts, the label histogram and
//! the first image as text.
//!
//! `cargo run -p mnist-io --example read_idx -- [DIR]` (default `data/mnist`;
//! `cargo xtask fetch-mnist` puts MNIST there).

use mnist_io::{DatasetKind, Split};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| mnist_io::DEFAULT_DATA_DIR.into());
    let test = mnist_io::load_split(dir.as_ref(), DatasetKind::Mnist, Split::Test)?;
    let images = test.images(); // [n, 28, 28] bytes, no copy
    println!(
        "{} test images of {}x{}",
        images.shape()[0],
        images.shape()[1],
        images.shape()[2]
    );

    let mut counts = [0usize; 10];
    test.labels_array().iter().for_each(|&l| counts[l as usize] += 1);
    println!("images per digit: {counts:?}");

    println!("image 0, label {}:", test.label(0));
    for row in images.index_axis(ndarray::Axis(0), 0).rows() {
        let line: String = row
            .iter()
            .map(|&p| {
                if p > 128 {
                    '#'
                } else if p > 32 {
                    '+'
                } else {
                    '.'
                }
            })
            .collect();
        println!("  {line}");
    }
    Ok(())
}
