//! Pooling layers: LeNet's trainable subsampling (S2, S4), and plain average and
//! max pooling (the departures).

use tensor_ops::interleaved::Lanes;
use tensor_ops::pool::{self, PoolShape};
use tensor_ops::{over_images, subsample, Algo};

use crate::layer::Layer;
use crate::param::Param;

fn shape_at(s: PoolShape, batch: usize) -> PoolShape {
    PoolShape { batch, ..s }
}

/// Runs the per-image kernel `f(shape, x, out)` over the batch, split by
/// [`over_images`]: `x` holds the layer's input (`in_per` values per image) and
/// `out` what `f` writes (`out_per` per image).
fn split_batch(
    algo: Algo,
    s: PoolShape,
    batch: usize,
    x: &[f32],
    out: &mut [f32],
    (in_per, out_per): (usize, usize),
    f: impl Fn(&PoolShape, &[f32], &mut [f32]) + Sync,
) {
    over_images(algo, batch, out, out_per, |i, out| {
        f(&shape_at(s, i.len()), &x[i.start * in_per..i.end * in_per], out)
    });
}

/// A kernel that sums a per-map gradient pair (coefficient, bias) over a batch.
type MapGradients = fn(&PoolShape, &[f32], &[f32], &mut [f32], &mut [f32]);

/// `f(shape, x, dy, dcoeff, dbias)` over the batch: where
/// [`tensor_ops::threads::sums_in_halves`] says so, on two fixed halves of the
/// batch side by side (the second half's sums in `scratch`), added in order, so
/// that the result does not depend on the thread count.
fn map_gradients(
    algo: Algo,
    s: PoolShape,
    (x, dy): (&[f32], &[f32]),
    (dcoeff, dbias): (&mut [f32], &mut [f32]),
    scratch: &mut Vec<f32>,
    f: MapGradients,
) {
    if !tensor_ops::threads::sums_in_halves(algo, s.batch) {
        return f(&s, x, dy, dcoeff, dbias);
    }
    let first = s.batch / 2;
    let (x1, x2) = x.split_at(first * s.x_len() / s.batch);
    let (dy1, dy2) = dy.split_at(first * s.y_len() / s.batch);
    scratch.resize(2 * s.c, 0.0);
    let (c2, b2) = scratch.split_at_mut(s.c);
    rayon::join(
        || f(&shape_at(s, first), x1, dy1, dcoeff, dbias),
        || f(&shape_at(s, s.batch - first), x2, dy2, c2, b2),
    );
    dcoeff.iter_mut().zip(c2).for_each(|(g, h)| *g += *h);
    dbias.iter_mut().zip(b2).for_each(|(g, h)| *g += *h);
}

/// Per-sample geometry shared by the three pooling layers.
macro_rules! pool_geometry {
    () => {
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
            vec![self.shape.c, self.shape.out_h(), self.shape.out_w()]
        }
    };
}

/// Sum of each 2x2 window x trainable coefficient + trainable bias, per map.
#[derive(Clone)]
pub struct Subsampling {
    name: String,
    shape: PoolShape,
    algo: Algo,
    /// `[coeff [c], bias [c]]`
    params: Vec<Param>,
    /// The second half-batch's coefficient and bias gradients.
    half_sums: Vec<f32>,
}

impl Subsampling {
    /// Over `c` maps of `h x w`; coefficients and biases start at zero.
    pub fn new(name: &str, c: usize, h: usize, w: usize, algo: Algo) -> Self {
        Subsampling {
            name: name.into(),
            shape: PoolShape { batch: 1, c, h, w },
            algo,
            params: vec![
                Param::zeros(format!("{name}.coeff"), &[c]),
                Param::zeros(format!("{name}.bias"), &[c]),
            ],
            half_sums: Vec::new(),
        }
    }
}

impl Layer for Subsampling {
    pool_geometry!();

    fn forward(&mut self, batch: usize, x: &[f32], y: &mut [f32]) {
        let (coeff, bias) = (&self.params[0].value, &self.params[1].value);
        let per = (self.shape.x_len(), self.shape.y_len());
        split_batch(self.algo, self.shape, batch, x, y, per, |s, x, y| {
            subsample::forward(s, x, coeff, bias, y)
        });
    }

    fn forward_interleaved(&mut self, x: &[Lanes], y: &mut [Lanes], _count: usize) {
        let (coeff, bias) = (&self.params[0].value, &self.params[1].value);
        subsample::forward_interleaved(&self.shape, x, coeff, bias, y);
    }

    fn backward(&mut self, batch: usize, x: &[f32], _y: &[f32], dy: &[f32], dx: Option<&mut [f32]>) {
        let s = shape_at(self.shape, batch);
        let (c, b) = self.params.split_at_mut(1);
        let grads = (&mut c[0].grad[..], &mut b[0].grad[..]);
        map_gradients(
            self.algo,
            s,
            (x, dy),
            grads,
            &mut self.half_sums,
            subsample::weight_backward,
        );
        if let Some(dx) = dx {
            let coeff = &c[0].value;
            // dy is this layer's output side: per image y_len in, x_len out
            let per = (self.shape.y_len(), self.shape.x_len());
            split_batch(self.algo, self.shape, batch, dy, dx, per, |s, dy, dx| {
                subsample::x_backward(s, coeff, dy, dx)
            });
        }
    }

    fn backward_second(&mut self, batch: usize, x: &[f32], _y: &[f32], d2y: &[f32], d2x: Option<&mut [f32]>) {
        let s = shape_at(self.shape, batch);
        let (c, b) = self.params.split_at_mut(1);
        let hess = (&mut c[0].hess[..], &mut b[0].hess[..]);
        map_gradients(
            self.algo,
            s,
            (x, d2y),
            hess,
            &mut self.half_sums,
            subsample::weight_backward_second,
        );
        if let Some(d2x) = d2x {
            let coeff = &c[0].value;
            let per = (self.shape.y_len(), self.shape.x_len());
            split_batch(self.algo, self.shape, batch, d2y, d2x, per, |s, d2y, d2x| {
                subsample::x_backward_second(s, coeff, d2y, d2x)
            });
        }
    }

    fn fan_in(&self, _param: usize, _index: usize) -> usize {
        4
    }

    fn params(&self) -> &[Param] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }
}

/// 2x2 average pooling, no parameters.
#[derive(Clone)]
pub struct AvgPool {
    name: String,
    shape: PoolShape,
    algo: Algo,
    /// Reproduce the NumPy original's second-derivative pass (weights 1/4 not squared).
    bug_2018: bool,
}

impl AvgPool {
    /// A layer named `name` over `c` maps of `h` x `w`.
    pub fn new(name: &str, c: usize, h: usize, w: usize, algo: Algo) -> Self {
        AvgPool {
            name: name.into(),
            shape: PoolShape { batch: 1, c, h, w },
            algo,
            bug_2018: false,
        }
    }

    /// Average pooling whose `backward_second` repeats the NumPy original's bug:
    /// it spreads `d2E/dy2` with the gradient's weights 1/4 instead of their squares.
    pub fn new_2018(name: &str, c: usize, h: usize, w: usize, algo: Algo) -> Self {
        AvgPool {
            bug_2018: true,
            ..Self::new(name, c, h, w, algo)
        }
    }
}

impl Layer for AvgPool {
    pool_geometry!();

    fn forward(&mut self, batch: usize, x: &[f32], y: &mut [f32]) {
        let per = (self.shape.x_len(), self.shape.y_len());
        split_batch(self.algo, self.shape, batch, x, y, per, pool::avg_forward);
    }
    fn forward_interleaved(&mut self, x: &[Lanes], y: &mut [Lanes], _count: usize) {
        pool::avg_forward_interleaved(&self.shape, x, y);
    }
    fn backward(&mut self, batch: usize, _x: &[f32], _y: &[f32], dy: &[f32], dx: Option<&mut [f32]>) {
        if let Some(dx) = dx {
            let per = (self.shape.y_len(), self.shape.x_len());
            split_batch(self.algo, self.shape, batch, dy, dx, per, pool::avg_x_backward);
        }
    }
    fn backward_second(
        &mut self,
        batch: usize,
        _x: &[f32],
        _y: &[f32],
        d2y: &[f32],
        d2x: Option<&mut [f32]>,
    ) {
        let per = (self.shape.y_len(), self.shape.x_len());
        let kernel = if self.bug_2018 {
            pool::avg_x_backward
        } else {
            pool::avg_x_backward_second
        };
        if let Some(d2x) = d2x {
            split_batch(self.algo, self.shape, batch, d2y, d2x, per, kernel);
        }
    }
}

/// 2x2 max pooling; keeps the argmax of its last forward pass.
#[derive(Clone)]
pub struct MaxPool {
    name: String,
    shape: PoolShape,
    argmax: Vec<u8>,
}

impl MaxPool {
    /// A layer named `name` over `c` maps of `h` x `w`.
    pub fn new(name: &str, c: usize, h: usize, w: usize) -> Self {
        MaxPool {
            name: name.into(),
            shape: PoolShape { batch: 1, c, h, w },
            argmax: Vec::new(),
        }
    }
}

impl Layer for MaxPool {
    pool_geometry!();

    fn forward(&mut self, batch: usize, x: &[f32], y: &mut [f32]) {
        self.argmax.resize(y.len(), 0);
        pool::max_forward(&shape_at(self.shape, batch), x, y, &mut self.argmax);
    }
    /// The maxima only: the argmax of the last [`Layer::forward`] stays as it is
    /// (the interleaved pass is for inference).
    fn forward_interleaved(&mut self, x: &[Lanes], y: &mut [Lanes], _count: usize) {
        pool::max_forward_interleaved(&self.shape, x, y);
    }
    fn backward(&mut self, batch: usize, _x: &[f32], _y: &[f32], dy: &[f32], dx: Option<&mut [f32]>) {
        if let Some(dx) = dx {
            pool::max_x_backward(&shape_at(self.shape, batch), &self.argmax[..dy.len()], dy, dx);
        }
    }
    fn backward_second(&mut self, batch: usize, x: &[f32], y: &[f32], d2y: &[f32], d2x: Option<&mut [f32]>) {
        // the winner's weight is 1, and 1^2 = 1: same routing as the gradient
        self.backward(batch, x, y, d2y, d2x);
    }
}
