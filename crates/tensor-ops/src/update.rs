//! Parameter updates: the element-wise steps of gradient descent, run on the
//! instruction set in use (an optimizer applies one to every parameter tensor
//! after every batch: at batch 1, 60,000 times per epoch).
//!
//! Each value is computed as written, a multiply then a subtraction, so the
//! results do not depend on the instruction set. Long tensors are cut into one
//! piece per thread ([`crate::threads::elementwise_piece`]): each value is
//! computed the same way in any piece, so neither does the thread count change
//! them.

use crate::simd::with_isa;
use crate::threads::elementwise;

/// The step of plain gradient descent for one layer's weights and biases: each
/// value moves by `lr * rate * gradient` ([`descend`]), `rate` its own (SDLM's `1 /
/// (mu + h)`, or 1). The passes that update as they go back
/// ([`crate::fc::backward_descend`], [`crate::conv::backward_descend`]) take one.
#[derive(Debug, Clone, Copy)]
pub struct Descent<'a> {
    /// The global learning rate.
    pub lr: f32,
    /// One rate per weight.
    pub weight_rate: &'a [f32],
    /// One rate per bias.
    pub bias_rate: &'a [f32],
}

impl Descent<'_> {
    /// `w -= lr * rate * dw` and `b -= lr * rate * db` ([`descend`] on each).
    pub fn apply(&self, t: &mut WeightBias) {
        descend(t.w, t.dw, self.weight_rate, self.lr);
        descend(t.b, t.db, self.bias_rate, self.lr);
    }
}

/// A layer's weights and biases with their gradients' buffers, as a pass that
/// steps them on the way back takes them (each a flat slice in the layer's
/// layout).
#[derive(Debug)]
pub struct WeightBias<'a> {
    /// The weights, stepped in place.
    pub w: &'a mut [f32],
    /// The biases, stepped in place.
    pub b: &'a mut [f32],
    /// The weights' gradient, where a pass stores it.
    pub dw: &'a mut [f32],
    /// The biases' gradient, where a pass stores it.
    pub db: &'a mut [f32],
}

/// One value of [`descend`], `w - lr * rate * g`: written once, so that a pass
/// that fuses the step into its backward pass computes the same bits.
#[inline(always)]
pub(crate) fn descended(w: f32, g: f32, rate: f32, lr: f32) -> f32 {
    w - lr * rate * g
}

/// `w -= lr * rate * g` element-wise: plain gradient descent with a per-weight
/// rate (SDLM's `1 / (mu + h)`, or 1).
///
/// ```
/// let mut w = [1.0f32, 2.0];
/// tensor_ops::update::descend(&mut w, &[0.5, -1.0], &[1.0, 2.0], 0.1);
/// assert_eq!(w, [1.0 - 0.1 * 1.0 * 0.5, 2.0 + 0.1 * 2.0 * 1.0]);
/// ```
pub fn descend(w: &mut [f32], g: &[f32], rate: &[f32], lr: f32) {
    elementwise([w], [g, rate], |[w], [g, rate]| descend_piece(w, g, rate, lr));
}

fn descend_piece(w: &mut [f32], g: &[f32], rate: &[f32], lr: f32) {
    with_isa!(_s => {
        for ((w, &g), &r) in w.iter_mut().zip(g).zip(rate) {
            *w = descended(*w, g, r, lr);
        }
    })
}

/// `v = momentum * v + rate * g; w -= lr * v` element-wise: gradient descent with
/// momentum (the velocity `v` carried from step to step).
///
/// ```
/// let (mut w, mut v) = ([1.0f32], [0.5f32]);
/// tensor_ops::update::descend_momentum(&mut w, &mut v, &[2.0], &[1.0], 0.1, 0.9);
/// assert_eq!(v, [0.9 * 0.5 + 2.0]);
/// assert_eq!(w, [1.0 - 0.1 * v[0]]);
/// ```
pub fn descend_momentum(w: &mut [f32], v: &mut [f32], g: &[f32], rate: &[f32], lr: f32, momentum: f32) {
    elementwise([w, v], [g, rate], |[w, v], [g, rate]| {
        descend_momentum_piece(w, v, g, rate, lr, momentum)
    });
}

fn descend_momentum_piece(w: &mut [f32], v: &mut [f32], g: &[f32], rate: &[f32], lr: f32, momentum: f32) {
    with_isa!(_s => {
        for (((w, v), &g), &r) in w.iter_mut().zip(v.iter_mut()).zip(g).zip(rate) {
            *v = momentum * *v + r * g;
            *w -= lr * *v;
        }
    })
}

/// `sum += v * weight` element-wise in `f64` (each `v` widened, multiplied by
/// `weight`, then added): the running sums of SDLM's Hessian estimate, one term
/// per chunk of patterns. A multiply then an add, as written, so the sums do not
/// depend on the instruction set.
///
/// ```
/// let mut sum = [1.0f64, 0.5];
/// tensor_ops::update::accumulate_f64(&mut sum, &[0.25, 2.0], 3.0);
/// assert_eq!(sum, [1.75, 6.5]);
/// ```
pub fn accumulate_f64(sum: &mut [f64], v: &[f32], weight: f64) {
    assert_eq!(sum.len(), v.len(), "accumulate_f64: one value per sum");
    with_isa!(_s => {
        for (a, &x) in sum.iter_mut().zip(v) {
            *a += x as f64 * weight;
        }
    })
}

/// `g0 = (g0 * n0 + g1 * n1) / (n0 + n1)` element-wise: the gradient of a batch's
/// mean loss from the gradients of its two parts' mean losses, `n0` and `n1`
/// examples each (for equal parts, `(g0 + g1) / 2` exactly).
///
/// ```
/// let mut g0 = [1.0f32, 4.0];
/// tensor_ops::update::mean_of_parts(&mut g0, &[3.0, 0.0], 3, 1);
/// assert_eq!(g0, [1.5, 3.0]);
/// ```
pub fn mean_of_parts(g0: &mut [f32], g1: &[f32], n0: usize, n1: usize) {
    let (w0, w1, total) = (n0 as f32, n1 as f32, (n0 + n1) as f32);
    elementwise([g0], [g1], |[g0], [g1]| {
        with_isa!(_s => {
            for (g, &h) in g0.iter_mut().zip(g1) {
                *g = (*g * w0 + h * w1) / total;
            }
        })
    });
}
