//! Whole-model checks: numeric vs analytic gradient of the loss for every parameter
//! tensor, parameter counts, and the model file (round trip and every bad file).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a bad case should stop loudly

use std::collections::HashMap;
use std::path::Path;

use lenet_layers::model_file::{self, from_bytes, to_bytes};
use lenet_layers::{Algo, Init, LeNet5, ModelConfig, ModelError, ParamRole, INPUT_LEN};
use safetensors::{Dtype, SafeTensors};

fn images(n: usize, seed: u32) -> Vec<f32> {
    // smooth blobs in [-0.1, 1.175], like padded digits, plus a little noise so that
    // no two pre-activations sit on the same ReLU or max-pooling kink
    (0..n * INPUT_LEN)
        .map(|i| {
            let (img, r, c) = (i / INPUT_LEN, (i % INPUT_LEN) / 32, i % 32);
            let v = ((r as f32 * 0.3 + seed as f32 + img as f32).sin() * (c as f32 * 0.25).cos()).max(0.0);
            let noise = ((i as u32).wrapping_mul(2654435761) >> 16) as f32 / 65536.0;
            -0.1 + 1.175 * v + 0.1 * noise
        })
        .collect()
}

/// Central differences of the batch-mean loss for a spread of ~40 entries of every
/// tensor, against `backward`. The network computes in f32 (the loss is summed in
/// f64), so a difference quotient carries rounding noise of about
/// 1e-7 x |outputs| / eps; the check is therefore on each tensor's relative L2
/// error over its sampled entries, which must be below 3% (eps = 3e-2; 1e-3 for the
/// modern model, whose ReLU and max-pooling kinks forbid a large eps: where a kink
/// lies within eps, the matching one-sided difference is used). Precision to 5e-4 is shown by the
/// comparison with PyTorch's f64 autograd in `reference.rs`.
fn gradcheck(config: ModelConfig, eps: f32, tol: f64) {
    let x = images(3, 1);
    let labels = [3u8, 7, 1];
    let mut model = LeNet5::new(
        ModelConfig {
            algo: Algo::Naive,
            ..config
        },
        11,
    )
    .unwrap();
    model.forward(&x);
    model.backward(&labels, false);
    let analytic: Vec<(String, Vec<f32>)> = model
        .params()
        .map(|p| (p.name.clone(), p.grad.to_vec()))
        .collect();
    for (t, (name, grad)) in analytic.iter().enumerate() {
        let scale = grad.iter().fold(0.0f32, |m, g| m.max(g.abs())) as f64;
        assert!(scale > 0.0, "{name}: gradient is all zero");
        let step = (grad.len() / 40).max(1);
        let (mut err2, mut norm2) = (0.0f64, 0.0f64);
        for i in (0..grad.len()).step_by(step) {
            let loss_at = |model: &mut LeNet5, delta: f32| {
                model.params_mut().nth(t).unwrap().value[i] += delta;
                let l = model.evaluate(&x, &labels).mean_loss();
                model.params_mut().nth(t).unwrap().value[i] -= delta;
                l
            };
            let (up, mid, down) = (
                loss_at(&mut model, eps),
                loss_at(&mut model, 0.0),
                loss_at(&mut model, -eps),
            );
            // Central difference; at a ReLU or max-pooling kink within eps, one of the
            // one-sided differences is the derivative the analytic gradient must match.
            let e = eps as f64;
            let numeric = [(up - down) / (2.0 * e), (up - mid) / e, (mid - down) / e]
                .into_iter()
                .min_by(|a, b| (a - grad[i] as f64).abs().total_cmp(&(b - grad[i] as f64).abs()))
                .unwrap_or(f64::NAN);
            let masked = model
                .params()
                .nth(t)
                .unwrap()
                .mask
                .as_ref()
                .is_some_and(|m| m[i] == 0.0);
            if masked {
                assert_eq!(grad[i], 0.0, "{name}[{i}] is not a parameter");
                continue;
            }
            err2 += (numeric - grad[i] as f64).powi(2);
            norm2 += (grad[i] as f64).powi(2);
        }
        let rel = (err2 / norm2.max(1e-30)).sqrt();
        assert!(
            rel < tol,
            "{name}: relative L2 error {rel:e} of numeric vs analytic gradient"
        );
    }
}

#[test]
fn classic_gradients_match_finite_differences() {
    gradcheck(ModelConfig::classic(), 3e-2, 3e-2);
}

#[test]
fn modern_gradients_match_finite_differences() {
    gradcheck(ModelConfig::modern(), 1e-3, 3e-2);
}

#[test]
fn seed2018_gradients_match_finite_differences() {
    gradcheck(ModelConfig::seed2018(), 3e-2, 3e-2);
}

/// The NumPy original's second-derivative bug (average pooling spreading `d2E/dy2`
/// with 1/4 instead of 1/16) scales `h` by 4 per pooling layer passed: C5 and F6
/// unchanged, C3 x 4, C1 x 16. Gradients and outputs are those of `Avg`.
#[test]
fn seed2018_pooling_bug_scales_h_by_four_per_pool() {
    let x = images(3, 5);
    let labels = [1u8, 7, 3];
    let mut fixed = ModelConfig::seed2018();
    fixed.pooling = lenet_layers::Pooling::Avg;
    let hess = |config: ModelConfig| {
        let mut m = LeNet5::new(config, 11).unwrap();
        m.forward(&x);
        m.backward_second(&labels);
        m.params()
            .map(|p| (p.name.clone(), p.hess.clone()))
            .collect::<Vec<_>>()
    };
    let (bugged, correct) = (hess(ModelConfig::seed2018()), hess(fixed));
    for ((name, b), (_, c)) in bugged.iter().zip(&correct) {
        let factor = match &name[..2] {
            "c1" => 16.0,
            "c3" => 4.0,
            _ => 1.0,
        };
        for (b, c) in b.iter().zip(c) {
            assert!(
                (b - factor * c).abs() <= 1e-5 * (factor * c).abs() + 1e-12,
                "{name}: {b} vs {factor} x {c}"
            );
        }
        assert!(c.iter().any(|&c| c > 0.0), "{name}: h all zero");
    }
}

#[test]
fn parameter_counts() {
    let classic = LeNet5::new(ModelConfig::classic(), 0).unwrap();
    assert_eq!(classic.trainable_params(), 60_000);
    let per_tensor: Vec<(String, usize)> = classic
        .params()
        .map(|p| (p.name.clone(), p.trainable()))
        .collect();
    let expect = [
        ("c1.weight", 150),
        ("c1.bias", 6),
        ("s2.coeff", 6),
        ("s2.bias", 6),
        ("c3.weight", 1500),
        ("c3.bias", 16),
        ("s4.coeff", 16),
        ("s4.bias", 16),
        ("c5.weight", 48_000),
        ("c5.bias", 120),
        ("f6.weight", 10_080),
        ("f6.bias", 84),
    ];
    assert_eq!(
        per_tensor,
        expect
            .iter()
            .map(|(n, c)| (n.to_string(), *c))
            .collect::<Vec<_>>()
    );
    let modern = LeNet5::new(ModelConfig::modern(), 0).unwrap();
    assert_eq!(modern.trainable_params(), 156 + 2416 + 48_120 + 10_164 + 850);
}

#[test]
fn init_follows_the_fan_in_rule() {
    let model = LeNet5::new(ModelConfig::paper_literal(), 3).unwrap();
    for p in model.params() {
        let fan_in = match p.name.as_str() {
            "c1.weight" | "c1.bias" => 25.0,
            "s2.coeff" | "s2.bias" | "s4.coeff" | "s4.bias" => 4.0,
            "c5.weight" | "c5.bias" => 400.0,
            "f6.weight" | "f6.bias" => 120.0,
            _ => continue, // C3's fan-in differs per map (75, 100 or 150)
        };
        let bound = 2.4 / fan_in;
        assert!(p.value.iter().all(|v| v.abs() <= bound), "{}", p.name);
        assert!(
            p.value.iter().any(|v| v.abs() > 0.5 * bound),
            "{} uses its range",
            p.name
        );
    }
    let same = LeNet5::new(ModelConfig::paper_literal(), 3).unwrap();
    assert!(
        model.params().zip(same.params()).all(|(a, b)| a.value == b.value),
        "same seed, same init"
    );
}

#[test]
fn eblearn_init_is_torchs_weights_with_zero_biases_and_half_coefficients() {
    let with = |init| {
        let config = ModelConfig {
            init,
            ..ModelConfig::classic()
        };
        LeNet5::new(config, 3).unwrap()
    };
    let (eblearn, torch) = (with(Init::Eblearn), with(Init::Torch));
    let mut roles = Vec::new();
    for (e, t) in eblearn.params().zip(torch.params()) {
        match e.role() {
            ParamRole::Weight => assert_eq!(e.value, t.value, "{}", e.name),
            ParamRole::Bias => assert!(e.value.iter().all(|&v| v == 0.0), "{}", e.name),
            ParamRole::Coeff => assert!(e.value.iter().all(|&v| v == 0.5), "{}", e.name),
        }
        roles.push((e.name.as_str(), e.role()));
    }
    assert!(roles.contains(&("s4.coeff", ParamRole::Coeff)));
    assert!(roles.contains(&("f6.bias", ParamRole::Bias)));
    assert!(roles.contains(&("c3.weight", ParamRole::Weight)));
    // Torch's biases are not zero: the test above compares something
    assert!(torch
        .params()
        .any(|p| p.role() == ParamRole::Bias && p.value.iter().any(|&v| v != 0.0)));
}

#[test]
fn model_file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for config in [ModelConfig::classic(), ModelConfig::modern()] {
        let mut model = LeNet5::new(config.clone(), 5).unwrap();
        let path = dir.path().join(format!("{}.safetensors", config.preset));
        model_file::save(&model, &path).unwrap();
        let mut loaded = model_file::load(&path).unwrap();
        assert_eq!(loaded.config(), model.config());
        let x = images(2, 4);
        assert_eq!(model.forward(&x).to_vec(), loaded.forward(&x).to_vec());
        // names, shapes and metadata as documented
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("c3.weight").unwrap().shape(), &[16, 6, 5, 5]);
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["preset"], config.preset);
        let names = st.names();
        assert_eq!(names.contains(&"output.centers"), config.preset == "classic");
        assert_eq!(names.contains(&"s2.coeff"), config.preset == "classic");
        assert_eq!(names.contains(&"output.weight"), config.preset == "modern");
        // the same model gives the same bytes
        let (a, b) = (to_bytes(&model).unwrap(), to_bytes(&loaded).unwrap());
        let first = a.iter().zip(&b).position(|(x, y)| x != y);
        assert!(
            a == b,
            "model file bytes differ: lengths {} {}, first difference at {first:?}: {:?}",
            a.len(),
            b.len(),
            first.map(|i| String::from_utf8_lossy(&a[i.saturating_sub(40)..i + 40]).to_string())
        );
        // nothing left besides the file
        assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp")));
    }
}

/// Rewrites a classic model file with one tensor replaced (or removed, or added).
fn with_tensor(name: &str, replacement: Option<(Dtype, Vec<usize>, Vec<u8>)>, extra: bool) -> Vec<u8> {
    let model = LeNet5::new(ModelConfig::classic(), 5).unwrap();
    let good = to_bytes(&model).unwrap();
    let st = SafeTensors::deserialize(&good).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&good).unwrap();
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    owned.retain(|t| t.0 != name);
    if let Some((dtype, shape, data)) = replacement {
        owned.push((
            if extra {
                format!("{name}.extra")
            } else {
                name.to_string()
            },
            dtype,
            shape,
            data,
        ));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, meta.metadata().clone()).unwrap()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn bad_model_files_are_typed_errors() {
    let p = Path::new("m.safetensors");
    let good = to_bytes(&LeNet5::new(ModelConfig::classic(), 5).unwrap()).unwrap();
    assert!(from_bytes(&good, p).is_ok());

    for cut in [0, 7, 8, 100, good.len() / 2, good.len() - 1] {
        assert!(
            matches!(from_bytes(&good[..cut], p), Err(ModelError::Format { .. })),
            "cut at {cut}"
        );
    }
    assert!(matches!(
        from_bytes(b"not a model at all", p),
        Err(ModelError::Format { .. })
    ));
    let mut huge_header = u64::MAX.to_le_bytes().to_vec();
    huge_header.extend_from_slice(b"{}");
    assert!(matches!(
        from_bytes(&huge_header, p),
        Err(ModelError::Format { .. })
    ));

    let missing = with_tensor("f6.bias", None, false);
    assert!(
        matches!(from_bytes(&missing, p), Err(ModelError::MissingTensor { name, .. }) if name == "f6.bias")
    );
    let wrong_shape = with_tensor(
        "f6.bias",
        Some((Dtype::F32, vec![85], f32_bytes(&[0.0; 85]))),
        false,
    );
    assert!(matches!(
        from_bytes(&wrong_shape, p),
        Err(ModelError::Shape { .. })
    ));
    let wrong_dtype = with_tensor("f6.bias", Some((Dtype::I16, vec![84], vec![0; 168])), false);
    assert!(matches!(
        from_bytes(&wrong_dtype, p),
        Err(ModelError::Dtype { .. })
    ));
    let nan = with_tensor(
        "f6.bias",
        Some((Dtype::F32, vec![84], f32_bytes(&[f32::NAN; 84]))),
        false,
    );
    assert!(matches!(from_bytes(&nan, p), Err(ModelError::BadValues { .. })));
    let extra = with_tensor("f6.bias", Some((Dtype::F32, vec![1], f32_bytes(&[0.0]))), true);
    assert!(matches!(
        from_bytes(&extra, p),
        Err(ModelError::MissingTensor { .. } | ModelError::UnexpectedTensor { .. })
    ));
    let dense_c3 = with_tensor(
        "c3.weight",
        Some((Dtype::F32, vec![16, 6, 5, 5], f32_bytes(&[0.1; 2400]))),
        false,
    );
    assert!(matches!(
        from_bytes(&dense_c3, p),
        Err(ModelError::BadValues { .. })
    ));

    // metadata missing or wrong
    let bare = safetensors::serialize(Vec::<(String, safetensors::tensor::TensorView)>::new(), None).unwrap();
    assert!(matches!(from_bytes(&bare, p), Err(ModelError::Metadata { .. })));
    let bad_meta = safetensors::serialize(
        Vec::<(String, safetensors::tensor::TensorView)>::new(),
        Some(HashMap::from([(
            "config".to_string(),
            "{\"preset\": 3}".to_string(),
        )])),
    )
    .unwrap();
    assert!(matches!(
        from_bytes(&bad_meta, p),
        Err(ModelError::Metadata { .. })
    ));

    // the whole file, not found
    assert!(matches!(
        model_file::load(Path::new("/nonexistent/m.safetensors")),
        Err(ModelError::Io { .. })
    ));
}

/// `predict` on a large batch (chunks over threads, each on a copy of the network)
/// gives the same on any thread count, follows parameter changes made between
/// calls (the copies are refreshed), and runs interleaved with the same sums as
/// `forward` on whole chunks of 32 images: the same bits.
#[test]
fn batched_predict_matches_forward_and_follows_new_parameters() {
    // two chunks of 32, and 5 images
    let x = images(WHOLE + 5, 11);
    for config in [
        ModelConfig::classic(),
        ModelConfig::modern(),
        ModelConfig::seed2018(),
    ] {
        predict_matches_forward(config, &x);
    }
}

/// Images in the whole chunks of [`predict_matches_forward`]'s batch.
const WHOLE: usize = 2 * lenet_layers::PREDICT_CHUNK;

/// [`batched_predict_matches_forward_and_follows_new_parameters`] for one network.
fn predict_matches_forward(config: ModelConfig, x: &[f32]) {
    let preset = config.preset.clone();
    let mut net = LeNet5::new(config, 3).unwrap();
    let on = |threads: usize, net: &mut LeNet5| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| net.predictions(x))
    };
    for seed in [3, 4] {
        net.init(seed);
        let two = on(2, &mut net);
        assert_eq!(two, on(1, &mut net), "{preset} seed {seed}");
        let mut want = Vec::new();
        for chunk in x[..WHOLE * INPUT_LEN].chunks(lenet_layers::PREDICT_CHUNK * INPUT_LEN) {
            want.extend_from_slice(net.forward(chunk));
        }
        let got: Vec<f32> = two.iter().flat_map(|p| p.scores.clone()).collect();
        assert_eq!(got[..WHOLE * 10], want, "{preset} seed {seed}");
        // forward on 5 images runs other kernels (im2col, dot products): the
        // same up to rounding
        let last = net.forward(&x[WHOLE * INPUT_LEN..]);
        for (g, w) in got[WHOLE * 10..].iter().zip(last) {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{preset} seed {seed}: {g} against {w}"
            );
        }
    }
}

/// `train_step` (two halves of the batch on two copies of the network, gradients
/// combined by size) gives the gradients and loss of one forward and backward pass
/// over the whole batch, to rounding, for equal and unequal halves; the same bits
/// on one thread and two; and follows parameter changes between calls.
#[test]
fn train_step_matches_one_pass_over_the_batch() {
    for (config, n) in [(ModelConfig::classic(), 32), (ModelConfig::modern(), 20)] {
        let x = images(n, 5);
        let labels: Vec<u8> = (0..n).map(|i| (i * 7 % 10) as u8).collect();
        let mut net = LeNet5::new(config, 9).unwrap();
        for seed in [9, 10] {
            net.init(seed);
            net.forward(&x);
            let whole = net.backward(&labels, false);
            let want: Vec<Vec<f32>> = net.params().map(|p| p.grad.to_vec()).collect();
            let step = |threads: usize, net: &mut LeNet5| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let stats = pool.install(|| net.train_step(&x, &labels));
                let grads: Vec<Vec<f32>> = net.params().map(|p| p.grad.to_vec()).collect();
                (stats, grads)
            };
            let (stats, got) = step(2, &mut net);
            assert_eq!(got, step(1, &mut net).1, "thread count changed the bits");
            assert_eq!((stats.count, stats.errors), (whole.count, whole.errors));
            assert!((stats.loss_sum - whole.loss_sum).abs() <= 1e-4 * whole.loss_sum.abs().max(1.0));
            for ((g, w), p) in got.iter().zip(&want).zip(net.params()) {
                let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
                let worst = g.iter().zip(w).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    worst <= 1e-4 * scale,
                    "{}: off by {worst:e} (largest {scale:e})",
                    p.name
                );
            }
        }
    }
}

/// The array front door gives the slice methods' numbers, whatever the layout of
/// the input, and refuses input of the wrong shape by name.
#[test]
fn arrays_in_and_out_match_the_slices() {
    use ndarray::{Array4, Axis};
    let mut net = LeNet5::new(ModelConfig::classic(), 5).unwrap();
    let n = 70; // more than two prediction chunks
    let x: Vec<f32> = (0..n * INPUT_LEN)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let preds = net.predictions(&x);
    let arr = Array4::from_shape_vec((n, 1, 32, 32), x.clone()).unwrap();
    let scores = net.predict(arr.view()).unwrap();
    let classes = net.classify(arr.view()).unwrap();
    for (i, p) in preds.iter().enumerate() {
        assert_eq!(scores.row(i).to_vec(), p.scores);
        assert_eq!(classes[i], p.class);
    }
    // a transposed copy viewed back in NCHW order: not in standard layout
    let mut swapped = arr.clone();
    swapped.swap_axes(2, 3);
    let mut t = swapped.as_standard_layout().into_owned();
    t.swap_axes(2, 3);
    assert!(!t.is_standard_layout());
    assert_eq!(net.predict(t.view()).unwrap(), scores);
    // one image goes through the batch-1 kernels, whose sums round differently
    // from the batched ones: compare it with the slice call on the same image
    let one = net
        .forward_array(arr.index_axis(Axis(0), 3).insert_axis(Axis(0)))
        .unwrap();
    let alone = net.predictions(&x[3 * INPUT_LEN..4 * INPUT_LEN]);
    assert_eq!(one.row(0).to_vec(), alone[0].scores);
    let err = net
        .predict(Array4::zeros((2, 3, 32, 32)).view())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[2, 3, 32, 32]"), "{err}");
}

/// The model file with its metadata's `config` JSON rewritten by `edit`.
fn with_config(bytes: &[u8], edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let meta = header["__metadata__"].as_object_mut().unwrap();
    let mut config: serde_json::Value = serde_json::from_str(meta["config"].as_str().unwrap()).unwrap();
    edit(&mut config);
    meta.insert("config".into(), config.to_string().into());
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

/// Finite but absurd values load no model that would answer NaN: weights of
/// 3e38, a MAP j of 1e30, an ELU alpha of 3e38 are refused by name at load.
#[test]
fn models_with_absurd_values_are_refused_at_load() {
    let p = Path::new("m.safetensors");
    let mut net = LeNet5::new(ModelConfig::classic(), 5).unwrap();
    net.params_mut().next().unwrap().value[0] = 3e38;
    let err = from_bytes(&to_bytes(&net).unwrap(), p).unwrap_err().to_string();
    assert!(err.contains("c1.weight") && err.contains("beyond"), "{err}");

    let good = to_bytes(&LeNet5::new(ModelConfig::classic(), 5).unwrap()).unwrap();
    let big_j = with_config(&good, |c| c["loss"]["j"] = 1e30.into());
    let err = from_bytes(&big_j, p).unwrap_err().to_string();
    assert!(err.contains("j is 1000000000000000000000000000000"), "{err}");

    let modern = to_bytes(&LeNet5::new(ModelConfig::modern(), 5).unwrap()).unwrap();
    let elu = with_config(&modern, |c| {
        c["activation"] = serde_json::json!({"kind": "elu", "alpha": 3e38})
    });
    let err = from_bytes(&elu, p).unwrap_err().to_string();
    assert!(err.contains("alpha"), "{err}");
    // the same edit within range loads
    let elu_ok = with_config(&modern, |c| {
        c["activation"] = serde_json::json!({"kind": "elu", "alpha": 1.0})
    });
    assert!(from_bytes(&elu_ok, p).is_ok());
}
