//! The LeNet-5 network: a list of layers, the buffers between them, and the loss.
//!
//! ```text
//! input [N,1,32,32]
//!  c1   conv 5x5, 1->6        [N,6,28,28]   + act
//!  s2   pool 2x2              [N,6,14,14]   (+ act when subsampling)
//!  c3   conv 5x5, 6->16       [N,16,10,10]  + act   (C3 table optional)
//!  s4   pool 2x2              [N,16,5,5]    (+ act when subsampling)
//!  c5   conv 5x5, 16->120     [N,120]       + act
//!  f6   fc 120->84            [N,84]        + act
//!  output  RBF 84->10 (penalties) | fc 84->10 (logits)
//! ```

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tensor_ops::conv::{ConnTable, ConvShape};
use tensor_ops::interleaved::{deinterleave, interleave, Lanes, LANES};
use tensor_ops::AlignedVec;

use crate::activation::ActivationLayer;
use crate::config::{Init, ModelConfig, Output, Pooling};
use crate::conv::Conv;
use crate::fc::FullyConnected;
use crate::layer::Layer;
use crate::loss::BatchStats;
use crate::param::{Param, ParamRole};
use crate::pool::{AvgPool, MaxPool, Subsampling};
use crate::rbf::Rbf;
use crate::ModelError;

/// Side of the network's square input.
pub const INPUT_SIZE: usize = 32;
/// Values per input image.
pub const INPUT_LEN: usize = INPUT_SIZE * INPUT_SIZE;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Images per forward pass of [`LeNet5::predict`] on large batches: the C1
/// activations of 32 images (600 KB) about fill a core's L2 cache.
pub const PREDICT_CHUNK: usize = 32;

/// One prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The predicted digit.
    pub class: usize,
    /// The raw outputs: RBF penalties (smaller is better) or logits.
    pub scores: Vec<f32>,
    /// Per-class probabilities derived from the scores.
    pub probabilities: Vec<f32>,
}

/// LeNet-5 with its activations kept between forward and backward.
pub struct LeNet5 {
    config: ModelConfig,
    layers: Vec<Box<dyn Layer>>,
    /// `acts[0]` is the input batch, `acts[i + 1]` the output of layer `i`.
    acts: Vec<Vec<f32>>,
    /// Gradient buffers, used in turn walking backward.
    grad: [Vec<f32>; 2],
    /// `dE/dinput` of the last backward pass that asked for it.
    input_grad: Vec<f32>,
    batch: usize,
    /// Copies of the network for [`LeNet5::predict`]'s threads and
    /// [`LeNet5::train_step`]'s second half, kept so that their buffers are reused;
    /// their parameters are refreshed on every call.
    replicas: Vec<LeNet5>,
    /// The two buffers of an interleaved forward pass ([`LeNet5::scores_into`]).
    lanes: [Vec<Lanes>; 2],
}

impl std::fmt::Debug for LeNet5 {
    /// The configuration and the size; the tensors are too many to print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeNet5")
            .field("config", &self.config)
            .field("trainable_params", &self.trainable_params())
            .finish_non_exhaustive()
    }
}

impl LeNet5 {
    /// Builds the network and draws its parameters with `seed`.
    pub fn new(config: ModelConfig, seed: u64) -> Result<Self, ModelError> {
        let mut model = Self::uninit(config)?;
        model.init(seed);
        Ok(model)
    }

    /// Builds the network with all parameters zero (to be loaded).
    pub fn uninit(config: ModelConfig) -> Result<Self, ModelError> {
        config.validate()?;
        let algo = config.algo;
        let act = config.activation;
        let mut layers: Vec<Box<dyn Layer>> = Vec::new();
        let mut push = |layer: Box<dyn Layer>, squash: bool| {
            let (name, shape) = (layer.name().to_string(), layer.out_shape());
            layers.push(layer);
            if squash {
                layers.push(Box::new(ActivationLayer::new(&name, act, shape, algo)));
            }
        };
        let conv = |name: &str, in_c, size, out_c, table: Option<ConnTable>| {
            let g = ConvShape::square(1, in_c, size, out_c, 5);
            Box::new(Conv::new(name, g, table, algo))
        };
        let pool = |name: &str, c, size| -> (Box<dyn Layer>, bool) {
            match config.pooling {
                Pooling::Subsample => (Box::new(Subsampling::new(name, c, size, size, algo)), true),
                Pooling::Avg => (Box::new(AvgPool::new(name, c, size, size, algo)), false),
                Pooling::Avg2018 => (Box::new(AvgPool::new_2018(name, c, size, size, algo)), false),
                Pooling::Max => (Box::new(MaxPool::new(name, c, size, size)), false),
            }
        };
        push(conv("c1", 1, 32, 6, None), true);
        let (s2, sq) = pool("s2", 6, 28);
        push(s2, sq);
        let table = if config.c3_table {
            ConnTable::lenet5_c3()
        } else {
            ConnTable::full(16, 6)
        };
        push(conv("c3", 6, 14, 16, config.c3_table.then_some(table)), true);
        let (s4, sq) = pool("s4", 16, 10);
        push(s4, sq);
        push(conv("c5", 16, 5, 120, None), true);
        push(Box::new(FullyConnected::new("f6", 120, 84, algo)), true);
        match config.output {
            Output::Rbf => push(Box::new(Rbf::lenet("output")), false),
            Output::Softmax => push(Box::new(FullyConnected::new("output", 84, CLASSES, algo)), false),
        }
        let acts = vec![Vec::new(); layers.len() + 1];
        Ok(LeNet5 {
            config,
            layers,
            acts,
            grad: [Vec::new(), Vec::new()],
            input_grad: Vec::new(),
            batch: 0,
            replicas: Vec::new(),
            lanes: Default::default(),
        })
    }

    /// Draws every parameter by the config's init rule.
    pub fn init(&mut self, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let init = self.config.init;
        for layer in &mut self.layers {
            let fan_ins: Vec<Vec<usize>> = layer
                .params()
                .iter()
                .enumerate()
                .map(|(p, param)| (0..param.len()).map(|i| layer.fan_in(p, i)).collect())
                .collect();
            for (param, fan_in) in layer.params_mut().iter_mut().zip(fan_ins) {
                let role = param.role();
                for (v, f) in param.value.iter_mut().zip(fan_in) {
                    *v = match init {
                        Init::FanIn { scale } => rng.random_range(-1.0f32..1.0) * scale / f as f32,
                        Init::Torch => rng.random_range(-1.0f32..1.0) / (f as f32).sqrt(),
                        Init::Eblearn => {
                            // drawn for every value, so the weights are Torch's for the same seed
                            let r = rng.random_range(-1.0f32..1.0);
                            match role {
                                ParamRole::Weight => r / (f as f32).sqrt(),
                                ParamRole::Bias => 0.0,
                                ParamRole::Coeff => 1.0 / (f as f32).sqrt(),
                            }
                        }
                        Init::Normal { std } => std * standard_normal(&mut rng),
                    };
                }
                if let Some(mask) = &param.mask {
                    param.value.iter_mut().zip(mask).for_each(|(v, m)| *v *= m);
                }
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The layers, input to output.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// Every parameter tensor, input to output.
    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.layers.iter().flat_map(|l| l.params().iter())
    }

    /// Every parameter tensor, mutably (for optimizers and loading).
    pub fn params_mut(&mut self) -> impl Iterator<Item = &mut Param> {
        self.layers.iter_mut().flat_map(|l| l.params_mut().iter_mut())
    }

    /// Number of trainable values (60,000 for `classic`).
    pub fn trainable_params(&self) -> usize {
        self.params().map(Param::trainable).sum()
    }

    /// Every tensor of the model file, trained or fixed (the RBF centres), input to output.
    pub fn tensors(&self) -> impl Iterator<Item = &Param> {
        self.layers
            .iter()
            .flat_map(|l| l.params().iter().chain(l.fixed_params()))
    }

    /// Calls `f` on every tensor of the model file, mutably (for loading).
    pub fn visit_tensors_mut(&mut self, mut f: impl FnMut(&mut Param)) {
        for layer in &mut self.layers {
            layer.params_mut().iter_mut().for_each(&mut f);
            layer.fixed_params_mut().iter_mut().for_each(&mut f);
        }
    }

    /// Reads a model file (safetensors, as `lenet train` and `lenet export` write
    /// it); see [`crate::model_file`].
    ///
    /// ```
    /// use lenet_layers::LeNet5;
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/lenet5-classic.safetensors");
    /// let net = LeNet5::load(path.as_ref())?;
    /// assert_eq!(net.config().preset, "classic");
    /// # Ok::<(), lenet_layers::ModelError>(())
    /// ```
    pub fn load(path: &std::path::Path) -> Result<Self, ModelError> {
        crate::model_file::load(path)
    }

    /// Writes the model file atomically (a temporary file, then a rename).
    pub fn save(&self, path: &std::path::Path) -> Result<(), ModelError> {
        crate::model_file::save(self, path)
    }

    /// Forward pass on `x` (`[N, 1, 32, 32]` flattened); returns the outputs `[N, 10]`.
    ///
    /// ```
    /// use lenet_layers::{LeNet5, ModelConfig, INPUT_LEN};
    /// let mut net = LeNet5::new(ModelConfig::classic(), 7).unwrap();
    /// let out = net.forward(&vec![0.0; 2 * INPUT_LEN]);
    /// assert_eq!(out.len(), 2 * 10);
    /// ```
    pub fn forward(&mut self, x: &[f32]) -> &[f32] {
        assert_eq!(
            x.len() % INPUT_LEN,
            0,
            "input is not a whole number of 32x32 images"
        );
        let batch = x.len() / INPUT_LEN;
        self.batch = batch;
        self.acts[0].clear();
        self.acts[0].extend_from_slice(x);
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let (done, rest) = self.acts.split_at_mut(i + 1);
            rest[0].resize(batch * layer.out_len(), 0.0);
            layer.forward(batch, &done[i], &mut rest[0]);
        }
        self.output()
    }

    /// Outputs of the last forward pass, `[N, 10]`.
    pub fn output(&self) -> &[f32] {
        &self.acts[self.layers.len()]
    }

    /// Loss and gradients for the last forward pass: sets every parameter's `grad`
    /// (of the batch-mean loss) and returns the batch's loss and error counts.
    /// With `input_grad`, also keeps `dE/dinput` ([`LeNet5::input_grad`]).
    pub fn backward(&mut self, labels: &[u8], input_grad: bool) -> BatchStats {
        let loss = self.config.loss;
        let at_output = |out: &[f32], g: &mut [f32]| loss.forward_backward(out, labels, g);
        self.propagate(labels, input_grad, Pass::Gradient, at_output, |_| true)
    }

    /// Diagonal Gauss-Newton second derivatives for the last forward pass: sets
    /// every parameter's `hess` (of the batch-mean loss).
    pub fn backward_second(&mut self, labels: &[u8]) {
        let loss = self.config.loss;
        let at_output = |out: &[f32], g: &mut [f32]| loss.second(out, labels, g);
        self.propagate(labels, false, Pass::Second, at_output, |_| true);
    }

    /// Seeds `grad[0]` with the loss's derivative at the output (`at_output`),
    /// then, if `go_on` accepts what that returned, walks the layers backward as
    /// `pass` says.
    fn propagate<R>(
        &mut self,
        labels: &[u8],
        input_grad: bool,
        pass: Pass,
        at_output: impl FnOnce(&[f32], &mut [f32]) -> R,
        go_on: impl FnOnce(&R) -> bool,
    ) -> R {
        assert_eq!(
            labels.len(),
            self.batch,
            "one label per image of the last forward pass"
        );
        // The two gradient buffers only grow (`tensor_ops::scratch`): each layer
        // overwrites the first `len` values of its `dx` (resizing them to each
        // layer's length instead zero-filled megabytes per batch: 5% of a
        // batch-256 step).
        use tensor_ops::scratch as grown;
        let out = &self.acts[self.layers.len()];
        let mut out_len = out.len();
        let result = at_output(out, grown(&mut self.grad[0], out_len));
        if !go_on(&result) {
            return result;
        }
        let batch = self.batch;
        // the parameter tensors after layer i's, walking backward (for the rates)
        // (a descending pass's rates were counted by `train_step_descend`)
        let mut params_after = self.params().count();
        let [g_out, g_in] = &mut self.grad;
        for i in (0..self.layers.len()).rev() {
            let layer = &mut self.layers[i];
            let need_dx = i > 0 || input_grad;
            let in_len = batch * layer.in_len();
            let dx = need_dx.then(|| grown(g_in, in_len));
            let (x, y, dy) = (&self.acts[i], &self.acts[i + 1], &g_out[..out_len]);
            let first_param = params_after - layer.params().len();
            match pass {
                Pass::Gradient => layer.backward(batch, x, y, dy, dx),
                Pass::Second => layer.backward_second(batch, x, y, dy, dx),
                Pass::Descend { lr, rates } => {
                    let rates = &rates[first_param..params_after];
                    layer.backward_descend(batch, x, y, dy, dx, lr, rates);
                }
            }
            params_after = first_param;
            std::mem::swap(g_out, g_in);
            out_len = in_len;
        }
        if input_grad && matches!(pass, Pass::Gradient) {
            self.input_grad.clear();
            self.input_grad.extend_from_slice(&g_out[..out_len]);
        }
        result
    }

    /// `dE/dinput` of the last `backward(.., true)`.
    pub fn input_grad(&self) -> &[f32] {
        &self.input_grad
    }

    /// The activations of the last forward pass by the reference data's names:
    /// `act.<layer>.pre` (before the squashing function) and `act.<layer>.out`,
    /// `act.output.penalties` or `act.output.logits`.
    pub fn named_activations(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let data = &self.acts[i + 1][..];
            let shape: Vec<usize> = std::iter::once(self.batch).chain(layer.out_shape()).collect();
            let followed_by_act = self.layers.get(i + 1).is_some_and(|l| l.is_activation());
            let name = if layer.is_activation() {
                format!("act.{}.out", layer.name().trim_end_matches(".act"))
            } else if followed_by_act {
                format!("act.{}.pre", layer.name())
            } else if layer.name() == "output" {
                match self.config.output {
                    Output::Rbf => "act.output.penalties".to_string(),
                    Output::Softmax => "act.output.logits".to_string(),
                }
            } else {
                format!("act.{}.out", layer.name())
            };
            out.push((name, shape, data));
        }
        out
    }

    /// The scores (`[N, 10]`: RBF penalties or logits) of each image of `x`
    /// (`[N, 1, 32, 32]` flattened), written into `scores`.
    ///
    /// Large batches are cut into chunks, whole chunks shared out over the rayon
    /// threads, each thread with its own copy of the network: no thread waits for
    /// another between layers, and a chunk's activations stay in cache from one
    /// layer to the next (measured: a 1000-image pass through each layer in turn
    /// spent a third of its time in memory traffic and page faults). With the
    /// parallel kernels ([`tensor_ops::interleaved::applies`]) a chunk is a group of
    /// 16 images interleaved value by value from the input to the scores
    /// ([`Layer::forward_interleaved`]): no layer re-arranges its input or output.
    /// With the others, a chunk is [`PREDICT_CHUNK`] images through
    /// [`LeNet5::forward`]. Chunks are fixed, so the results do not depend on the
    /// thread count; the interleaved pass sums every value as `forward` on
    /// [`PREDICT_CHUNK`] images does, so the scores are the same, bit for bit, as
    /// `forward`'s on whole chunks of 32.
    pub fn scores_into(&mut self, x: &[f32], scores: &mut [f32]) {
        use rayon::prelude::*;
        assert_eq!(
            x.len() % INPUT_LEN,
            0,
            "input is not a whole number of 32x32 images"
        );
        let n = x.len() / INPUT_LEN;
        assert_eq!(scores.len(), n * CLASSES, "one row of scores per image");
        let interleaved = tensor_ops::interleaved::applies(self.config.algo, n);
        let chunk = if interleaved { LANES } else { PREDICT_CHUNK };
        let chunks = n.div_ceil(chunk);
        if chunks <= 1 {
            if interleaved {
                self.scores_interleaved(x, scores);
            } else {
                scores.copy_from_slice(self.forward(x));
            }
            return;
        }
        let threads = tensor_ops::threads::threads().min(chunks);
        let mut nets = std::mem::take(&mut self.replicas);
        nets.truncate(threads);
        for net in &mut nets {
            net.copy_values_from(self);
        }
        while nets.len() < threads {
            nets.push(self.replica());
        }
        let per_net = chunks.div_ceil(threads) * chunk;
        x.par_chunks(per_net * INPUT_LEN)
            .zip(scores.par_chunks_mut(per_net * CLASSES))
            .zip(nets.par_iter_mut())
            .for_each(|((part, out), net)| {
                for (c, o) in part
                    .chunks(chunk * INPUT_LEN)
                    .zip(out.chunks_mut(chunk * CLASSES))
                {
                    if interleaved {
                        net.scores_interleaved(c, o);
                    } else {
                        o.copy_from_slice(net.forward(c));
                    }
                }
            });
        self.replicas = nets;
    }

    /// The scores of up to 16 images `x`, interleaved from the input to the
    /// output: each layer's [`Layer::forward_interleaved`] from one of two buffers
    /// into the other.
    fn scores_interleaved(&mut self, x: &[f32], scores: &mut [f32]) {
        let count = x.len() / INPUT_LEN;
        let [input, output] = &mut self.lanes;
        interleave(x, tensor_ops::scratch(input, INPUT_LEN));
        let mut len = INPUT_LEN;
        for layer in &mut self.layers {
            let out_len = layer.out_len();
            layer.forward_interleaved(&input[..len], tensor_ops::scratch(output, out_len), count);
            std::mem::swap(input, output);
            len = out_len;
        }
        deinterleave(&input[..len], scores);
    }

    /// Class, scores and probabilities of each image of `x` (`[N, 1, 32, 32]`
    /// flattened), from [`LeNet5::scores_into`].
    pub fn predictions(&mut self, x: &[f32]) -> Vec<Prediction> {
        use rayon::prelude::*;
        let mut scores = vec![0.0; x.len() / INPUT_LEN * CLASSES];
        self.scores_into(x, &mut scores);
        let loss = self.config.loss;
        // (the rows shared out over the threads from 256 on: on one thread, building
        // the predictions of 1,000 images cost a seventh of their forward pass)
        let per_task = tensor_ops::threads::per_thread(scores.len() / CLASSES, 256);
        scores
            .par_chunks_exact(CLASSES)
            .with_min_len(per_task)
            .map(|row| Prediction {
                class: loss.predict(row),
                scores: row.to_vec(),
                probabilities: loss.probabilities(row),
            })
            .collect()
    }

    /// The class of a row of scores (the smallest RBF penalty or the largest logit).
    pub fn class_of(&self, scores: &[f32]) -> usize {
        self.config.loss.predict(scores)
    }

    /// Forward and backward pass of one training batch: the loss's gradients in every
    /// parameter's `grad` (of the batch-mean loss, as [`LeNet5::forward`] then
    /// [`LeNet5::backward`] give them) and the batch's loss and errors.
    ///
    /// From 16 images on ([`tensor_ops::threads::batch_halves`] decides), the
    /// batch runs as two halves on two copies of
    /// the network side by side (`rayon::join`), and the halves' gradients are
    /// combined, weighted by their sizes: one synchronisation of the threads per
    /// batch instead of one per layer. The split does not depend on the number of
    /// threads (one thread runs the halves in turn), so neither does the result.
    /// Afterwards the activations ([`LeNet5::output`]) are those of the first half.
    ///
    /// ```
    /// use lenet_layers::{LeNet5, ModelConfig, INPUT_LEN};
    /// let mut net = LeNet5::new(ModelConfig::classic(), 7).unwrap();
    /// let stats = net.train_step(&vec![0.5; 32 * INPUT_LEN], &[3; 32]);
    /// assert_eq!(stats.count, 32);
    /// assert!(net.params().all(|p| p.grad.iter().all(|g| g.is_finite())));
    /// ```
    pub fn train_step(&mut self, x: &[f32], labels: &[u8]) -> BatchStats {
        let n = labels.len();
        assert_eq!(x.len(), n * INPUT_LEN, "one label per input image");
        let Some(n0) = tensor_ops::threads::batch_halves(n) else {
            self.forward(x);
            return self.backward(labels, false);
        };
        let n1 = n - n0;
        let mut other = self.replicas.pop().unwrap_or_else(|| self.replica());
        other.copy_values_from(self);
        let ((x0, x1), (l0, l1)) = (x.split_at(n0 * INPUT_LEN), labels.split_at(n0));
        let (mut stats, stats1) = rayon::join(
            || {
                self.forward(x0);
                self.backward(l0, false)
            },
            || {
                other.forward(x1);
                other.backward(l1, false)
            },
        );
        // each half's gradient is of its own mean loss: weight them by their sizes
        // (for equal halves this is (g0 + g1) / 2 exactly)
        for (p, q) in self.params_mut().zip(other.params()) {
            tensor_ops::update::mean_of_parts(&mut p.grad, &q.grad, n0, n1);
        }
        self.replicas.push(other);
        stats.add(stats1);
        stats
    }

    /// A step of plain gradient descent of every parameter tensor from its `grad`:
    /// `value -= lr * rate * grad` ([`tensor_ops::update::descend`]; `rates`: one
    /// per tensor of [`LeNet5::params`], in that order).
    pub fn descend(&mut self, lr: f32, rates: &[AlignedVec]) {
        assert_eq!(
            rates.len(),
            self.params().count(),
            "one rate tensor per parameter tensor"
        );
        for (p, rate) in self.params_mut().zip(rates) {
            tensor_ops::update::descend(&mut p.value, &p.grad, rate, lr);
        }
    }

    /// A training step that updates the parameters: [`LeNet5::train_step`] and,
    /// if `accept` takes the batch's loss and errors, a step of plain gradient
    /// descent of every parameter tensor, `value -= lr * rate * grad` (`rates`:
    /// one per tensor of [`LeNet5::params`], in that order, aligned as the
    /// parameters are; [`tensor_ops::update::descend`]).
    ///
    /// The values are the same bits as `train_step` then `descend` of each
    /// tensor. A batch that does not run as two halves (fewer than 16 images)
    /// steps each layer as soon as its backward pass is done
    /// ([`Layer::backward_descend`]; no layer's backward pass reads the weights
    /// of the layers after it), and at one image C5 and F6 take their step
    /// inside their backward pass without storing their gradient. So afterwards
    /// a parameter's `grad` is not defined.
    ///
    /// ```
    /// use lenet_layers::{AlignedVec, LeNet5, ModelConfig, INPUT_LEN};
    /// let mut net = LeNet5::new(ModelConfig::classic(), 7).unwrap();
    /// let mut twin = LeNet5::new(ModelConfig::classic(), 7).unwrap();
    /// let rates: Vec<AlignedVec> = net.params().map(|p| AlignedVec::filled(p.len(), 1.0)).collect();
    /// let (x, labels) = (vec![0.5; INPUT_LEN], [3]);
    ///
    /// net.train_step_descend(&x, &labels, 0.01, &rates, |stats| stats.loss_sum.is_finite());
    /// twin.train_step(&x, &labels);
    /// for (p, rate) in twin.params_mut().zip(&rates) {
    ///     tensor_ops::update::descend(&mut p.value, &p.grad, rate, 0.01);
    /// }
    /// assert!(net.params().zip(twin.params()).all(|(a, b)| a.value == b.value));
    /// ```
    pub fn train_step_descend(
        &mut self,
        x: &[f32],
        labels: &[u8],
        lr: f32,
        rates: &[AlignedVec],
        accept: impl FnOnce(&BatchStats) -> bool,
    ) -> BatchStats {
        let n = labels.len();
        assert_eq!(x.len(), n * INPUT_LEN, "one label per input image");
        assert_eq!(
            rates.len(),
            self.params().count(),
            "one rate tensor per parameter tensor"
        );
        if tensor_ops::threads::batch_halves(n).is_some() {
            // the halves' gradients are combined before any step
            let stats = self.train_step(x, labels);
            if accept(&stats) {
                self.descend(lr, rates);
            }
            return stats;
        }
        self.forward(x);
        let loss = self.config.loss;
        let at_output = |out: &[f32], g: &mut [f32]| loss.forward_backward(out, labels, g);
        let pass = Pass::Descend { lr, rates };
        self.propagate(labels, false, pass, at_output, accept)
    }

    /// Sets every tensor's values to those of `src`, a network of the same config.
    fn copy_values_from(&mut self, src: &LeNet5) {
        let mut from = src.tensors();
        self.visit_tensors_mut(|t| {
            if let Some(from) = from.next() {
                t.value.copy_from_slice(&from.value);
            }
        });
    }

    /// A copy of the network (layers with their parameters and scratch buffers)
    /// without the activations of the last pass.
    fn replica(&self) -> Self {
        LeNet5 {
            config: self.config.clone(),
            layers: self.layers.iter().map(|l| l.boxed_clone()).collect(),
            acts: vec![Vec::new(); self.acts.len()],
            grad: [Vec::new(), Vec::new()],
            input_grad: Vec::new(),
            batch: 0,
            replicas: Vec::new(),
            lanes: Default::default(),
        }
    }

    /// Loss and errors on `x` without touching gradients, from the scores of
    /// [`LeNet5::scores_into`] (interleaved and shared over the threads for large
    /// batches; the activations of the last [`LeNet5::forward`] are left as they
    /// were).
    pub fn evaluate(&mut self, x: &[f32], labels: &[u8]) -> BatchStats {
        let loss = self.config.loss;
        let mut scores = vec![0.0; labels.len() * CLASSES];
        self.scores_into(x, &mut scores);
        let mut scratch = vec![0.0; scores.len()];
        loss.forward_backward(&scores, labels, &mut scratch)
    }
}

/// What [`LeNet5::propagate`] computes on its way back.
#[derive(Debug, Clone, Copy)]
enum Pass<'a> {
    /// Each parameter's gradient, in its `grad` ([`Layer::backward`]).
    Gradient,
    /// Each parameter's Gauss-Newton second derivative, in its `hess`
    /// ([`Layer::backward_second`]).
    Second,
    /// The gradient, each layer's parameters stepping down it as soon as its
    /// pass is done ([`Layer::backward_descend`]).
    Descend {
        /// The global learning rate.
        lr: f32,
        /// One rate tensor per parameter tensor of the model.
        rates: &'a [AlignedVec],
    },
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}
