//! Activation layer: applies a squashing function element-wise. Its input is the
//! previous layer's pre-activation (`act.<layer>.pre`), its output `act.<layer>.out`.

use tensor_ops::Activation;

use crate::layer::Layer;

/// `y = f(a)` element-wise.
pub struct ActivationLayer {
    name: String,
    f: Activation,
    shape: Vec<usize>,
}

impl ActivationLayer {
    /// After layer `of` (named `<of>.act`), over per-sample `shape`.
    pub fn new(of: &str, f: Activation, shape: Vec<usize>) -> Self {
        ActivationLayer {
            name: format!("{of}.act"),
            f,
            shape,
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
    fn forward(&mut self, _batch: usize, a: &[f32], y: &mut [f32]) {
        self.f.forward(a, y);
    }
    fn backward(&mut self, _batch: usize, a: &[f32], y: &[f32], dy: &[f32], da: Option<&mut [f32]>) {
        if let Some(da) = da {
            self.f.backward(a, y, dy, da);
        }
    }
    fn backward_second(&mut self, _batch: usize, a: &[f32], y: &[f32], d2y: &[f32], d2a: Option<&mut [f32]>) {
        if let Some(d2a) = d2a {
            self.f.backward_second(a, y, d2y, d2a);
        }
    }
    fn is_activation(&self) -> bool {
        true
    }
}
