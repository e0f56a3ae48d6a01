//! Fully-connected layer (F6, and the modern output layer).

use tensor_ops::fc::{self, FcShape, FcWorkspace};
use tensor_ops::interleaved::Lanes;
use tensor_ops::{Algo, AlignedVec};

use crate::layer::Layer;
use crate::param::{weight_and_bias, weight_bias_descent, Param};

/// `y = x W^T + b`.
#[derive(Clone)]
pub struct FullyConnected {
    name: String,
    in_f: usize,
    out_f: usize,
    algo: Algo,
    sq: Vec<f32>,
    /// The forward pass's packed weights.
    ws: FcWorkspace,
    /// `[weight [out, in], bias [out]]`
    params: Vec<Param>,
}

impl FullyConnected {
    /// A layer named `name` from `in_f` to `out_f` features, weights zero until initialised.
    pub fn new(name: &str, in_f: usize, out_f: usize, algo: Algo) -> Self {
        FullyConnected {
            name: name.into(),
            in_f,
            out_f,
            algo,
            sq: Vec::new(),
            ws: FcWorkspace::default(),
            params: vec![
                Param::zeros(format!("{name}.weight"), &[out_f, in_f]),
                Param::zeros(format!("{name}.bias"), &[out_f]),
            ],
        }
    }

    fn at(&self, batch: usize) -> FcShape {
        FcShape {
            batch,
            in_f: self.in_f,
            out_f: self.out_f,
        }
    }
}

impl Layer for FullyConnected {
    fn name(&self) -> &str {
        &self.name
    }
    fn in_len(&self) -> usize {
        self.in_f
    }
    fn out_len(&self) -> usize {
        self.out_f
    }
    fn out_shape(&self) -> Vec<usize> {
        vec![self.out_f]
    }

    fn forward(&mut self, batch: usize, x: &[f32], y: &mut [f32]) {
        fc::forward(
            self.algo,
            &self.at(batch),
            x,
            &self.params[0].value,
            &self.params[1].value,
            y,
            &mut self.ws,
        );
    }

    fn forward_interleaved(&mut self, x: &[Lanes], y: &mut [Lanes], count: usize) {
        let (w, b) = (&self.params[0].value, &self.params[1].value);
        fc::forward_interleaved(&self.at(1), x, w, b, y, count);
    }

    fn backward(&mut self, batch: usize, x: &[f32], _y: &[f32], dy: &[f32], dx: Option<&mut [f32]>) {
        let s = self.at(batch);
        let (w, b) = self.params.split_at_mut(1);
        fc::weight_backward(self.algo, &s, x, dy, &mut w[0].grad, &mut b[0].grad);
        if let Some(dx) = dx {
            fc::x_backward(self.algo, &s, &w[0].value, dy, dx);
        }
    }

    fn backward_descend(
        &mut self,
        batch: usize,
        x: &[f32],
        _y: &[f32],
        dy: &[f32],
        dx: Option<&mut [f32]>,
        lr: f32,
        rates: &[AlignedVec],
    ) {
        let s = self.at(batch);
        let (t, step) = (weight_and_bias(&mut self.params), weight_bias_descent(lr, rates));
        fc::backward_descend(self.algo, &s, x, dy, t, step, dx);
    }

    fn backward_second(&mut self, batch: usize, x: &[f32], _y: &[f32], d2y: &[f32], d2x: Option<&mut [f32]>) {
        let s = self.at(batch);
        let (w, b) = self.params.split_at_mut(1);
        fc::weight_backward_second(
            self.algo,
            &s,
            x,
            d2y,
            &mut w[0].hess,
            &mut b[0].hess,
            &mut self.sq,
        );
        if let Some(d2x) = d2x {
            fc::x_backward_second(self.algo, &s, &w[0].value, d2y, d2x, &mut self.sq);
        }
    }

    fn fan_in(&self, _param: usize, _index: usize) -> usize {
        self.in_f
    }

    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
}
