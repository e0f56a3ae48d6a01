//! The layer abstraction: explicit forward, backward and second-derivative passes.
//!
//! Caches are passed explicitly: the model keeps every layer's input `x` and
//! output `y` and hands them back to `backward`; a layer keeps only what cannot be
//! recomputed cheaply (max pooling's argmax) and its scratch buffers.

use tensor_ops::interleaved::{deinterleave, interleave, Lanes};
use tensor_ops::AlignedVec;

use crate::param::Param;

/// One step of the network, on a batch of `batch` samples laid out back to back.
pub trait Layer: Send + BoxedClone {
    /// Name as in the model file and the reference data (`c1`, `s2`, `c1.act`, ...).
    fn name(&self) -> &str;

    /// Values per sample going in.
    fn in_len(&self) -> usize;

    /// Values per sample coming out.
    fn out_len(&self) -> usize;

    /// Per-sample output shape (for files and pictures), e.g. `[6, 28, 28]` or `[84]`.
    fn out_shape(&self) -> Vec<usize>;

    /// `y = layer(x)`; `x` is `[batch, in_len]`, `y` is `[batch, out_len]`.
    fn forward(&mut self, batch: usize, x: &[f32], y: &mut [f32]);

    /// [`Layer::forward`] on up to 16 samples interleaved value by value
    /// ([`tensor_ops::interleaved`]): `x [in_len, 16]` into `y [out_len, 16]`, the
    /// first `count` lanes holding samples. [`crate::LeNet5::scores_into`] runs
    /// large batches this way, interleaved from the input to the scores. The layers
    /// with an interleaved kernel run it (whatever their `Algo`: the model decides
    /// when to take this path); the others keep this default, which de-interleaves
    /// the samples, runs [`Layer::forward`] on them and interleaves its output.
    fn forward_interleaved(&mut self, x: &[Lanes], y: &mut [Lanes], count: usize) {
        let mut samples = vec![0.0; count * self.in_len()];
        deinterleave(x, &mut samples);
        let mut out = vec![0.0; count * self.out_len()];
        self.forward(count, &samples, &mut out);
        interleave(&out, y);
    }

    /// From `dy = dE/dy`: sets every parameter's `grad` and, if asked, `dx = dE/dx`.
    fn backward(&mut self, batch: usize, x: &[f32], y: &[f32], dy: &[f32], dx: Option<&mut [f32]>);

    /// [`Layer::backward`], then a step of plain gradient descent for each
    /// parameter, `value -= lr * rate * grad` ([`tensor_ops::update::descend`];
    /// `rates`: one per [`Layer::params`], each as long as its tensor). `dx` comes
    /// from the values before the step. The fully connected layers (C5 and F6)
    /// override it with kernels that take their one-sample step on the way back
    /// and never store the gradient: after this call a parameter's `grad` is not
    /// defined. The values are the same bits as `backward` then `descend`.
    #[allow(clippy::too_many_arguments)]
    fn backward_descend(
        &mut self,
        batch: usize,
        x: &[f32],
        y: &[f32],
        dy: &[f32],
        dx: Option<&mut [f32]>,
        lr: f32,
        rates: &[AlignedVec],
    ) {
        self.backward(batch, x, y, dy, dx);
        assert_eq!(rates.len(), self.params().len(), "one rate tensor per parameter");
        for (p, rate) in self.params_mut().iter_mut().zip(rates) {
            tensor_ops::update::descend(&mut p.value, &p.grad, rate, lr);
        }
    }

    /// From `d2y` (diagonal Gauss-Newton `d2E/dy2`): sets every parameter's `hess`
    /// and, if asked, `d2x`.
    fn backward_second(&mut self, batch: usize, x: &[f32], y: &[f32], d2y: &[f32], d2x: Option<&mut [f32]>);

    /// Trainable tensors (empty for parameter-free layers).
    fn params(&self) -> &[Param] {
        &[]
    }

    /// Trainable tensors, for optimizers and loading.
    fn params_mut(&mut self) -> &mut [Param] {
        &mut []
    }

    /// Fixed (untrained) tensors that belong in the model file, e.g. the RBF centres.
    fn fixed_params(&self) -> &[Param] {
        &[]
    }

    /// Fixed tensors, mutably (for loading).
    fn fixed_params_mut(&mut self) -> &mut [Param] {
        &mut []
    }

    /// Number of inputs feeding the unit that value `index` of parameter `param`
    /// belongs to (the `F` of the paper's init rule; biases count like weights).
    fn fan_in(&self, _param: usize, _index: usize) -> usize {
        1
    }

    /// Is this an activation (whose input is the previous layer's pre-activation)?
    fn is_activation(&self) -> bool {
        false
    }
}

/// A copy of a layer behind a `Box<dyn Layer>` (parameters and scratch buffers),
/// for every layer that is `Clone`: [`crate::LeNet5`] runs copies of itself on
/// several threads at inference.
pub trait BoxedClone {
    /// A boxed copy of `self`.
    fn boxed_clone(&self) -> Box<dyn Layer>;
}

impl<T: Layer + Clone + 'static> BoxedClone for T {
    fn boxed_clone(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
}
