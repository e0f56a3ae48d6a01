//! Convolution layer (C1, C3, C5): `tensor_ops::conv` with its weights and bias.

use tensor_ops::conv::{self, ConnTable, ConvShape, ConvWorkspace};
use tensor_ops::interleaved::Lanes;
use tensor_ops::{Algo, AlignedVec};

use crate::layer::Layer;
use crate::param::{weight_and_bias, weight_bias_descent, Param};

/// A stride-1 convolution with optional connection table.
#[derive(Clone)]
pub struct Conv {
    name: String,
    /// Geometry with `batch = 1`; the batch is set per call.
    shape: ConvShape,
    table: Option<ConnTable>,
    algo: Algo,
    ws: ConvWorkspace,
    /// `[weight [out_c, in_c, k, k], bias [out_c]]`
    params: Vec<Param>,
}

impl Conv {
    /// A zero-initialised convolution over `in_c x in_h x in_w` inputs.
    pub fn new(name: &str, geometry: ConvShape, table: Option<ConnTable>, algo: Algo) -> Self {
        let s = ConvShape { batch: 1, ..geometry };
        let mut weight = Param::zeros(format!("{name}.weight"), &[s.out_c, s.in_c, s.k, s.k]);
        if let Some(t) = &table {
            let mut mask = vec![1.0; weight.len()];
            t.mask_weights(&mut mask);
            weight.mask = Some(mask);
        }
        let bias = Param::zeros(format!("{name}.bias"), &[s.out_c]);
        Conv {
            name: name.into(),
            shape: s,
            table,
            algo,
            ws: ConvWorkspace::default(),
            params: vec![weight, bias],
        }
    }

    /// The connection table, if any.
    pub fn table(&self) -> Option<&ConnTable> {
        self.table.as_ref()
    }

    /// Number of inputs that feed one output unit of map `o` (for fan-in init).
    pub fn map_fan_in(&self, o: usize) -> usize {
        let maps = (0..self.shape.in_c)
            .filter(|&i| self.table.as_ref().is_none_or(|t| t.is_connected(o, i)))
            .count();
        maps * self.shape.k * self.shape.k
    }

    fn at(&self, batch: usize) -> ConvShape {
        ConvShape { batch, ..self.shape }
    }
}

impl Layer for Conv {
    fn name(&self) -> &str {
        &self.name
    }
    fn in_len(&self) -> usize {
        self.shape.x_len()
    }
    fn out_len(&self) -> usize {
        self.shape.y_len()
    }
    fn out_shape(&self) -> Vec<usize> {
        vec![self.shape.out_c, self.shape.out_h(), self.shape.out_w()]
    }

    fn forward(&mut self, batch: usize, x: &[f32], y: &mut [f32]) {
        let s = self.at(batch);
        let (w, b) = (&self.params[0].value, &self.params[1].value);
        conv::forward(self.algo, &s, self.table.as_ref(), x, w, b, y, &mut self.ws);
    }

    fn forward_interleaved(&mut self, x: &[Lanes], y: &mut [Lanes], count: usize) {
        let (w, b) = (&self.params[0].value, &self.params[1].value);
        let t = self.table.as_ref();
        conv::forward_interleaved(&self.shape, t, x, w, b, y, count, &mut self.ws);
    }

    fn backward(&mut self, batch: usize, x: &[f32], _y: &[f32], dy: &[f32], dx: Option<&mut [f32]>) {
        let s = self.at(batch);
        let (w, b) = self.params.split_at_mut(1);
        let t = self.table.as_ref();
        conv::weight_backward(
            self.algo,
            &s,
            t,
            x,
            dy,
            &mut w[0].grad,
            &mut b[0].grad,
            &mut self.ws,
        );
        if let Some(dx) = dx {
            conv::x_backward(self.algo, &s, t, &w[0].value, dy, dx, &mut self.ws);
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
        let table = self.table.as_ref();
        conv::backward_descend(self.algo, &s, table, x, dy, t, step, dx, &mut self.ws);
    }

    fn backward_second(&mut self, batch: usize, x: &[f32], _y: &[f32], d2y: &[f32], d2x: Option<&mut [f32]>) {
        let s = self.at(batch);
        let (w, b) = self.params.split_at_mut(1);
        let t = self.table.as_ref();
        conv::weight_backward_second(
            self.algo,
            &s,
            t,
            x,
            d2y,
            &mut w[0].hess,
            &mut b[0].hess,
            &mut self.ws,
        );
        if let Some(d2x) = d2x {
            conv::x_backward_second(self.algo, &s, t, &w[0].value, d2y, d2x, &mut self.ws);
        }
    }

    fn fan_in(&self, param: usize, index: usize) -> usize {
        let per_map = self.shape.in_c * self.shape.k * self.shape.k;
        self.map_fan_in(if param == 0 { index / per_map } else { index })
    }

    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
}
