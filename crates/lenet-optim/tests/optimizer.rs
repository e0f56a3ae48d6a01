//! One step of each update rule, checked against its formula by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a bad case should stop loudly

use lenet_layers::{LeNet5, ModelConfig};
use lenet_optim::{HessianMode, Method, Optimizer, OptimizerConfig, Schedule};

const EPS: f32 = 0.01;
const MU: f32 = 0.5;

/// Every gradient 1 and `h` = 0.001 * (index within its tensor + 1), both 0 at
/// C3's unconnected pairs (as the backward passes leave them).
fn model_and_hessian() -> (LeNet5, Vec<Vec<f32>>) {
    let mut model = LeNet5::new(ModelConfig::classic(), 1).unwrap();
    let mut h = Vec::new();
    for p in model.params_mut() {
        let mask = |i: usize| p.mask.as_ref().map_or(1.0, |m| m[i]);
        p.grad = (0..p.len()).map(mask).collect();
        p.value.fill(0.0); // so that before - after is the step, exactly
        h.push((0..p.len()).map(|i| 0.001 * (i + 1) as f32 * mask(i)).collect());
    }
    (model, h)
}

/// `(before - after)` of every value after one SDLM step in `mode`, in `epoch`.
fn sdlm_steps(mode: HessianMode, mu: Schedule, epoch: usize) -> (Vec<String>, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let (mut model, h) = model_and_hessian();
    let config = OptimizerConfig {
        method: Method::Sdlm {
            mu,
            momentum: 0.0,
            samples: 500,
            mode,
        },
        schedule: Schedule::constant(EPS),
    };
    let mut opt = Optimizer::new(config, &model);
    opt.set_hessian(h.clone());
    opt.begin_epoch(epoch);
    let before: Vec<Vec<f32>> = model.params().map(|p| p.value.to_vec()).collect();
    opt.step(&mut model);
    let names = model.params().map(|p| p.name.clone()).collect();
    let steps = model
        .params()
        .zip(&before)
        .map(|(p, b)| b.iter().zip(&p.value).map(|(b, a)| b - a).collect())
        .collect();
    (names, steps, h)
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 * b.abs().max(1e-6)
}

/// Every connected parameter stepped by `EPS / (mu + h)`.
fn assert_per_parameter_steps(mu: f32, (names, steps, h): (Vec<String>, Vec<Vec<f32>>, Vec<Vec<f32>>)) {
    for ((name, step), h) in names.iter().zip(&steps).zip(&h) {
        for (i, (&s, &h)) in step.iter().zip(h).enumerate().filter(|(_, (_, &h))| h != 0.0) {
            assert!(
                close(s, EPS / (mu + h)),
                "{name}[{i}]: step {s}, expected {} (mu {mu})",
                EPS / (mu + h)
            );
        }
    }
}

#[test]
fn sdlm_steps_each_parameter_by_eps_over_mu_plus_its_h() {
    assert_per_parameter_steps(
        MU,
        sdlm_steps(HessianMode::PerParameter, Schedule::constant(MU), 1),
    );
}

#[test]
fn sdlm_takes_each_epochs_mu_from_its_schedule() {
    let mu = Schedule {
        steps: vec![(1, MU), (3, 0.02)],
    };
    for (epoch, expected_mu) in [(1, MU), (2, MU), (3, 0.02), (7, 0.02)] {
        let steps = sdlm_steps(HessianMode::PerParameter, mu.clone(), epoch);
        assert_per_parameter_steps(expected_mu, steps);
    }
}

#[test]
fn tensor_sum_gives_a_layer_one_rate_from_its_weights() {
    let (names, steps, h) = sdlm_steps(HessianMode::TensorSum, Schedule::constant(MU), 1);
    for (t, name) in names.iter().enumerate() {
        let layer = name.split('.').next().unwrap();
        // the layer's first tensor (weight or coeff) sets the rate of all its tensors
        let head = names
            .iter()
            .position(|n| n.starts_with(&format!("{layer}.")))
            .unwrap();
        let expected = EPS / (MU + h[head].iter().sum::<f32>());
        let connected = steps[t].iter().zip(&h[t]).filter(|(_, &h)| h != 0.0);
        assert!(connected.clone().count() > 0);
        for (&s, _) in connected {
            assert!(close(s, expected), "{name}: {s} vs {expected}");
        }
    }
    // and the bias really does take its weight's rate, not its own sum
    let c1_bias = names.iter().position(|n| n == "c1.bias").unwrap();
    let own = EPS / (MU + h[c1_bias].iter().sum::<f32>());
    assert!(!close(steps[c1_bias][0], own));
}

/// `Optimizer::train_step` (which steps the parameters on the way back, without
/// momentum) leaves every parameter with the bits of `LeNet5::train_step` then
/// `Optimizer::step`, step after step: one image (C5 and F6 fused), a few, and a
/// batch that runs as two halves; SDLM with a varied `h`, and SGD.
#[test]
fn stepping_on_the_way_back_is_train_step_then_step() {
    use lenet_layers::INPUT_LEN;
    for (config, method) in [
        (ModelConfig::classic(), "sdlm"),
        (ModelConfig::classic(), "sgd"),
        (ModelConfig::modern(), "sdlm"),
    ] {
        let method = match method {
            "sdlm" => Method::Sdlm {
                mu: Schedule::constant(0.02),
                momentum: 0.0,
                samples: 500,
                mode: HessianMode::PerParameter,
            },
            _ => Method::Sgd,
        };
        let opt_config = OptimizerConfig {
            method,
            schedule: Schedule::constant(0.0005),
        };
        for batch in [1, 3, 16] {
            let mut fused = LeNet5::new(config.clone(), 3).unwrap();
            let mut separate = LeNet5::new(config.clone(), 3).unwrap();
            let mut opt_fused = Optimizer::new(opt_config.clone(), &fused);
            let mut opt_separate = Optimizer::new(opt_config.clone(), &separate);
            let h: Vec<Vec<f32>> = fused
                .params()
                .map(|p| (0..p.len()).map(|i| (i % 7) as f32 * 0.013).collect())
                .collect();
            for opt in [&mut opt_fused, &mut opt_separate] {
                opt.set_hessian(h.clone());
                opt.begin_epoch(1);
            }
            for step in 0..4 {
                let x: Vec<f32> = (0..batch * INPUT_LEN)
                    .map(|i| ((i * 31 + step * 17) % 97) as f32 / 97.0 - 0.1)
                    .collect();
                let labels: Vec<u8> = (0..batch).map(|n| ((n + step) % 10) as u8).collect();
                let stats = opt_fused.train_step(&mut fused, &x, &labels, |_| true);
                assert_eq!(
                    stats,
                    separate.train_step(&x, &labels),
                    "batch {batch}, step {step}"
                );
                opt_separate.step(&mut separate);
                for (a, b) in fused.params().zip(separate.params()) {
                    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert!(
                        bits(&a.value) == bits(&b.value),
                        "{}: batch {batch}, step {step}",
                        a.name
                    );
                }
            }
            // a batch that is not accepted changes nothing
            let before: Vec<Vec<f32>> = fused.params().map(|p| p.value.to_vec()).collect();
            let x = vec![0.25; batch * INPUT_LEN];
            opt_fused.train_step(&mut fused, &x, &vec![1; batch], |_| false);
            assert!(
                fused.params().zip(&before).all(|(p, b)| p.value[..] == b[..]),
                "batch {batch}: rejected"
            );
        }
    }
}
