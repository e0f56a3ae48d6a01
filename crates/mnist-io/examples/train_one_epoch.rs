//! Trains LeNet-5 for one epoch with the paper's recipe, as `lenet train` does,
//! on the first N MNIST training images, and reports the test error.
//!
//! `cargo run --release -p mnist-io --features train --example train_one_epoch -- [DIR] [N]`
//! (defaults `data/mnist` and 10000; `cargo xtask fetch-mnist` puts MNIST there).

use lenet_layers::{LeNet5, ModelConfig};
use lenet_optim::{EvalSets, Recipe, Silent};
use mnist_io::{DatasetKind, Distortion, TrainSet, TrainTest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| mnist_io::DEFAULT_DATA_DIR.into());
    let n: usize = args.next().map_or(Ok(10_000), |s| s.parse())?;
    let data = TrainTest::load(dir.as_ref(), DatasetKind::Mnist)?;
    let train_images = data.train.limit(n);
    let train = TrainSet::shuffled(&train_images, 1, Distortion::None)?;
    let test = TrainSet::in_order(&data.test)?;

    let mut model = LeNet5::new(ModelConfig::classic(), 1)?;
    let mut trainer = Recipe::paper_sdlm().with_epochs(1).trainer(&model)?;
    let eval = EvalSets {
        valid: None,
        test: Some(&test),
    };
    trainer.run(&mut model, &train, eval, &mut Silent)?;
    let m = &trainer.progress.history[0];
    println!(
        "1 epoch on {n} images: training error {:.2}%, test error {:.2}%, {:.0} images/s",
        100.0 * m.train_error,
        100.0 * m.test_error.unwrap_or(f64::NAN),
        m.images_per_s
    );
    Ok(())
}
