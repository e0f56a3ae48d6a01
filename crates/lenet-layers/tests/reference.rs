//! The whole model against PyTorch autograd (f64) on the first 4 MNIST training
//! images: every activation, the loss, every parameter gradient and the input
//! gradient, for `classic` and `modern`, with each kernel variant.
//!
//! The reference is f64; this model computes in f32. Tolerance: each tensor's
//! largest absolute difference must be below 1e-4 of its largest magnitude
//! (activations), 5e-4 (gradients, which accumulate over 4 images and all positions).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a bad case should stop loudly

use std::path::Path;

use lenet_layers::model_file::read_tensor;
use lenet_layers::{Algo, LeNet5, ModelConfig};
use safetensors::SafeTensors;

fn compare(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64)).max(1e-6);
    let worst = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= tol * scale,
        "{what}: max abs diff {worst:e} vs scale {scale:e}"
    );
}

fn check(file: &str, config: ModelConfig) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tensor = |name: &str| {
        let shape = st.tensor(name).unwrap().shape().to_vec();
        read_tensor(&st, name, &shape, &path).unwrap()
    };
    let input = tensor("input");
    let labels: Vec<u8> = tensor("labels").iter().map(|&l| l as u8).collect();
    assert_eq!(labels, vec![5, 0, 4, 1]);

    for algo in Algo::ALL {
        let mut model = LeNet5::uninit(ModelConfig {
            algo,
            ..config.clone()
        })
        .unwrap();
        model.visit_tensors_mut(|p| p.value = tensor(&format!("param.{}", p.name)).into());
        model.forward(&input);
        let acts = model.named_activations();
        for (name, _, data) in &acts {
            compare(&format!("{algo:?} {name}"), data, &tensor(name), 1e-4);
        }
        assert_eq!(
            acts.len(),
            st.names().iter().filter(|n| n.starts_with("act.")).count()
        );
        let stats = model.backward(&labels, true);
        let loss = tensor("loss")[0] as f64;
        assert!(
            (stats.mean_loss() - loss).abs() < 1e-5 * loss.abs().max(1.0),
            "loss {} vs {loss}",
            stats.mean_loss()
        );
        for p in model.params() {
            compare(
                &format!("{algo:?} grad.{}", p.name),
                &p.grad,
                &tensor(&format!("grad.{}", p.name)),
                5e-4,
            );
        }
        compare(
            &format!("{algo:?} grad.input"),
            model.input_grad(),
            &tensor("grad.input"),
            5e-4,
        );
    }
}

#[test]
fn classic_matches_pytorch_autograd() {
    check("lenet5-classic-reference.safetensors", ModelConfig::classic());
}

#[test]
fn modern_matches_pytorch_autograd() {
    check("lenet5-modern-reference.safetensors", ModelConfig::modern());
}
