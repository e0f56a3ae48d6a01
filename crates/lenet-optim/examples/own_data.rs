//! Brings its own data to the trainer: a `TrainData` over synthetic images (a
//! bar whose position is the class), trained with `lenet train`'s recipe for
//! two epochs. MNIST comes in the same way through `mnist_io::TrainSet`
//! (`cargo run --release -p mnist-io --features train --example train_one_epoch`).
//!
//! `cargo run --release -p lenet-optim --example own_data`

use lenet_layers::{LeNet5, ModelConfig, INPUT_LEN, INPUT_SIZE};
use lenet_optim::{DataError, EvalSets, Recipe, Silent, TrainData};

/// `n` images of a vertical bar; the bar of class `c` stands at column 4 + 2c.
struct Bars {
    n: usize,
}

impl TrainData for Bars {
    fn len(&self) -> usize {
        self.n
    }

    /// A fixed permutation per epoch (reversed on odd epochs); epoch 0 is file order.
    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let order: Vec<usize> = (0..self.n).collect();
        if epoch % 2 == 1 {
            order.into_iter().rev().collect()
        } else {
            order
        }
    }

    fn fill(
        &self,
        indices: &[usize],
        _epoch: usize,
        x: &mut [f32],
        labels: &mut [u8],
    ) -> Result<(), DataError> {
        for ((image, label), &i) in x.chunks_exact_mut(INPUT_LEN).zip(labels.iter_mut()).zip(indices) {
            let class = i % 10;
            *label = class as u8;
            let column = 4 + 2 * class + i / 10 % 2; // a pixel of jitter
            for (p, v) in image.iter_mut().enumerate() {
                let (r, c) = (p / INPUT_SIZE, p % INPUT_SIZE);
                *v = if (6..26).contains(&r) && c == column {
                    1.175
                } else {
                    -0.1
                };
            }
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (train, test) = (Bars { n: 2000 }, Bars { n: 200 });
    let mut model = LeNet5::new(ModelConfig::classic(), 1)?;
    let mut trainer = Recipe::paper_sdlm().with_epochs(2).trainer(&model)?;
    let eval = EvalSets {
        valid: None,
        test: Some(&test),
    };
    trainer.run(&mut model, &train, eval, &mut Silent)?;
    for m in &trainer.progress.history {
        println!(
            "epoch {}: training loss {:.3}, test error {:.1}%",
            m.epoch,
            m.train_loss,
            100.0 * m.test_error.unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
