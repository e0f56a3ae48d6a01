//! Activation layer: applies a squashing function element-wise. Its input is the
//! previous layer's pre-activation (`act.<layer>.pre`), its output `act.<layer>.out`.

use tensor_ops::interleaved::{values, values_mut, Lanes};
use tensor_ops::{over_images, Activation, Algo};

use crate::layer::Layer;

/// `y = f(a)` element-wise.
#[derive(Clone)]
pub struct ActivationLayer {
    name: String,
    f: Activation,
    shape: Vec<usize>,
    /// `Parallel`: the batch is split over threads (see [`tensor_ops::over_images`]).
    algo: Algo,
}

impl ActivationLayer {
    /// After layer `of` (named `<of>.act`), over per-sample `shape`.
    pub fn new(of: &str, f: Activation, shape: Vec<usize>, algo: Algo) -> Self {
        ActivationLayer {
            name: format!("{of}.act"),
            f,
            shape,
            algo,
        }
    }

    /// The function.
    pub fn function(&self) -> Activation {
        self.f
    }
}

impl Layer for ActivationLayer {
    fn name(&self) -> &str {
        &self.name
    }
    fn in_len(&self) -> usize {
        self.shape.iter().product()
    }
    fn out_len(&self) -> usize {
        self.in_len()
    }
    fn out_shape(&self) -> Vec<usize> {
        self.shape.clone()
    }
    fn forward(&mut self, batch: usize, a: &[f32], y: &mut [f32]) {
        let (f, n) = (self.f, self.in_len());
        over_images(self.algo, batch, y, n, |i, y| {
            f.forward(&a[i.start * n..i.end * n], y)
        });
    }
    fn forward_interleaved(&mut self, a: &[Lanes], y: &mut [Lanes], _count: usize) {
        // element-wise: the layout does not matter
        self.f.forward(values(a), values_mut(y));
    }
    fn backward(&mut self, batch: usize, a: &[f32], y: &[f32], dy: &[f32], da: Option<&mut [f32]>) {
        let (f, n) = (self.f, self.in_len());
        if let Some(da) = da {
            over_images(self.algo, batch, da, n, |i, da| {
                let r = i.start * n..i.end * n;
                f.backward(&a[r.clone()], &y[r.clone()], &dy[r], da)
            });
        }
    }
    fn backward_second(&mut self, batch: usize, a: &[f32], y: &[f32], d2y: &[f32], d2a: Option<&mut [f32]>) {
        let (f, n) = (self.f, self.in_len());
        if let Some(d2a) = d2a {
            over_images(self.algo, batch, d2a, n, |i, d2a| {
                let r = i.start * n..i.end * n;
                f.backward_second(&a[r.clone()], &y[r.clone()], &d2y[r], d2a)
            });
        }
    }
    fn is_activation(&self) -> bool {
        true
    }
}
