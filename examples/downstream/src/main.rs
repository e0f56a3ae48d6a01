//! A dependent of the lenet5-rs crates built with no flags, using only their
//! public API and no glue of its own:
//! 1. loads the shipped model and predicts an `image::GrayImage` and an `ArrayView4`;
//! 2. trains one epoch with a named recipe on MNIST (the folder given, or
//!    `data/mnist`);
//! 3. calls one kernel, which must run the fastest instruction set the CPU has,
//!    chosen at run time, and agree with the portable path to float rounding.

use std::time::Instant;

use lenet_layers::{LeNet5, ModelConfig};
use lenet_optim::{EvalSets, Recipe, Silent};
use mnist_io::{DatasetKind, Distortion, InputSpec, TrainSet, TrainTest};
use tensor_ops::conv::{self, ConvShape, ConvWorkspace};
use tensor_ops::{isa, set_isa, Algo, Isa};

const SHIPPED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/lenet5-classic.safetensors"
);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::args().nth(1).unwrap_or_else(|| "data/mnist".into());
    let data = TrainTest::load(data_dir.as_ref(), DatasetKind::Mnist)?;

    // 1. inference: a picture as a user draws it (dark ink on white, any size) ...
    let mut net = LeNet5::load(SHIPPED.as_ref())?;
    let seven = data.test.images().index_axis(ndarray::Axis(0), 0).to_owned();
    let drawn = image::GrayImage::from_fn(84, 84, |x, y| {
        image::Luma([255 - seven[[y as usize / 3, x as usize / 3]]])
    });
    let x = mnist_io::digit::input_from_gray(&drawn)?;
    let class = net.classify(x.view())?[0];
    println!(
        "the test set's first digit, redrawn at 84x84: {class} (label {})",
        data.test.label(0)
    );
    assert_eq!(class, 7);
    // ... and a batch as an array
    let batch = InputSpec::default().batch_array(&data.test, &(0..1000).collect::<Vec<_>>())?;
    let classes = net.classify(batch.view())?;
    let right = classes
        .iter()
        .zip(data.test.labels())
        .filter(|(c, l)| **c == **l as usize)
        .count();
    println!("shipped model on the first 1000 test images: {right} right");
    assert!(right >= 980);

    // 2. one epoch of training with `lenet train`'s recipe, on 5000 images
    let train_images = data.train.clone().limit(5000);
    let train = TrainSet::shuffled(&train_images, 1, Distortion::None)?;
    let test = TrainSet::in_order(&data.test)?;
    let mut model = LeNet5::new(ModelConfig::classic(), 1)?;
    let mut trainer = Recipe::paper_sdlm().with_epochs(1).trainer(&model)?;
    trainer.run(
        &mut model,
        &train,
        EvalSets {
            valid: None,
            test: Some(&test),
        },
        &mut Silent,
    )?;
    let test_error = trainer.progress.history[0].test_error.unwrap_or(1.0);
    println!(
        "one epoch on 5000 images (Recipe::paper_sdlm): test error {:.2}%",
        100.0 * test_error
    );
    assert!(test_error < 0.15);

    // 3. one kernel, on the instruction set chosen at run time
    let chosen = isa();
    println!(
        "instruction set chosen at run time: {chosen} (supported: {:?})",
        Isa::supported()
    );
    assert_eq!(
        chosen,
        Isa::best(),
        "a default build must run the best instruction set"
    );
    if Isa::Avx2.is_supported() {
        assert_ne!(
            chosen,
            Isa::Portable,
            "this CPU has AVX2: the portable path is not the fast path"
        );
    }
    let (fast, t_fast) = c3_forward(chosen);
    let (portable, t_portable) = c3_forward(Isa::Portable);
    for (a, b) in fast.iter().zip(&portable) {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "{chosen} {a} vs portable {b}"
        );
    }
    println!(
        "C3 forward, batch 32: {:.1} us on {chosen}, {:.1} us portable ({:.1}x)",
        t_fast * 1e6,
        t_portable * 1e6,
        t_portable / t_fast
    );
    Ok(())
}

/// C3's forward pass at batch 32 under `with`, and the seconds per pass (best of 20).
fn c3_forward(with: Isa) -> (Vec<f32>, f64) {
    set_isa(with).expect("a supported instruction set");
    let s = ConvShape::square(32, 6, 14, 16, 5);
    let x: Vec<f32> = (0..s.x_len()).map(|i| (i as f32 * 0.37).sin()).collect();
    let w: Vec<f32> = (0..s.w_len()).map(|i| (i as f32 * 0.11).cos() * 0.2).collect();
    let b = vec![0.1; s.out_c];
    let mut y = vec![0.0; s.y_len()];
    let mut ws = ConvWorkspace::default();
    let mut best = f64::INFINITY;
    for _ in 0..20 {
        let t = Instant::now();
        conv::forward(Algo::Parallel, &s, None, &x, &w, &b, &mut y, &mut ws);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (y, best)
}
