//! Fully-connected layer: `y[n, o] = b[o] + sum_i w[o, i] * x[n, i]`.
//!
//! `x [N, In]`, `w [Out, In]`, `b [Out]`, `y [N, Out]`. As GEMMs:
//! forward `Y = X W^T`, `dX = dY W`, `dW = dY^T X`.

use rayon::prelude::*;

use crate::gemm::{gemm, gemm_packed, pack_transposed, packed_len, MatRef};
use crate::interleaved::{get, live_halves, set, Lanes, LANES};
use crate::simd::{with_isa, Simd};
use crate::update::{descended, Descent, WeightBias};
use crate::{rows_per_task, squared, Algo, AlignedVec, Method, Plan};

/// Geometry of a batched fully-connected layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FcShape {
    /// Rows of the batch (N).
    pub batch: usize,
    /// Input features per row.
    pub in_f: usize,
    /// Output features per row.
    pub out_f: usize,
}

impl FcShape {
    /// FLOPs of one forward pass (each backward costs the same).
    pub fn flops(&self) -> u64 {
        2 * (self.batch * self.in_f * self.out_f) as u64
    }
}

/// How a fully connected pass of shape `s` runs for `algo`: the naive loops, or
/// a matrix product, split over the threads by rows ([`crate::threads::GEMM_SPLIT`]
/// blocks) for `Parallel` from two samples on ([`crate::threads::splits`]).
///
/// ```
/// use tensor_ops::fc::{plan, FcShape};
/// use tensor_ops::{Algo, Method};
///
/// let f6 = FcShape { batch: 32, in_f: 120, out_f: 84 };
/// assert_eq!(plan(Algo::Parallel, &f6).method, Method::Gemm);
/// assert!(plan(Algo::Parallel, &f6).split);
/// assert!(!plan(Algo::Parallel, &FcShape { batch: 1, ..f6 }).split);
/// ```
pub fn plan(algo: Algo, s: &FcShape) -> Plan {
    match algo {
        Algo::Naive => Plan::NAIVE,
        Algo::Im2col | Algo::Parallel => Plan::gemm(algo, s.batch),
    }
}

/// Fewest rows per task for which [`forward`] runs the micro-kernel of
/// [`gemm_packed`] on the weights packed into panels ([`FcWorkspace`] keeps them
/// while the weights do not change); below, dot products of rows of `x` and `w`.
/// The two sum in different orders, so this threshold is part of what a training
/// run computes: training at batch 32 (halves of 16 images, tasks of 8 rows) runs
/// dot products. (On an AMD EPYC with AVX-512, one thread, C5's 400 -> 120
/// weights: packing takes 15.5 us, the packed product 4.1 us for 8 rows and 8.1 us
/// for 16, dot products 14.5 and 29 us.)
const PACKED_FROM: usize = 16;

/// Scratch of the fully connected passes, reused from call to call: the weights
/// packed for the forward micro-kernel, with the weights they were packed from.
/// A call with other weights (compared bit for bit, [`crate::same_bits`]) packs
/// them again, so a workspace can never hand out stale panels; while the weights
/// stay the same (inference over many chunks of images, or the tasks of one call),
/// they are packed once.
#[derive(Debug, Default, Clone)]
pub struct FcWorkspace {
    /// The weights `[Out, In]` that `panels` were packed from.
    packed_from: Vec<f32>,
    /// `w^T` in panels for [`gemm_packed`] ([`pack_transposed`]), aligned: the
    /// micro-kernel's loads of a panel's rows then never span two cache lines.
    panels: AlignedVec,
}

impl FcWorkspace {
    /// The panels of `w [out_f, in_f]`, packed again only when `w` changed.
    fn panels(&mut self, w: &[f32], out_f: usize, in_f: usize) -> &[f32] {
        if !crate::same_bits(&self.packed_from, w) {
            self.packed_from.clear();
            self.packed_from.extend_from_slice(w);
            self.panels.resize(packed_len(in_f, out_f), 0.0);
            pack_transposed(w, out_f, in_f, &mut self.panels);
        }
        &self.panels
    }
}

/// `y = x w^T + b`; `ws` keeps the packed weights between calls.
///
/// ```
/// use tensor_ops::fc::{forward, FcShape, FcWorkspace};
/// use tensor_ops::Algo;
///
/// // two samples of 3 features into 2 outputs
/// let s = FcShape { batch: 2, in_f: 3, out_f: 2 };
/// let (x, w, b) = ([1.0, 2.0, 3.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0, 1.0], [0.5, 0.0]);
/// let mut y = [0.0; 4];
/// forward(Algo::Parallel, &s, &x, &w, &b, &mut y, &mut FcWorkspace::default());
/// assert_eq!(y, [1.5, 3.0, 0.5, 0.0]);
/// ```
pub fn forward(
    algo: Algo,
    s: &FcShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    ws: &mut FcWorkspace,
) {
    forward_with(plan(algo, s), s, x, w, b, y, ws)
}

/// [`forward`] as `plan` says (for a caller that has its plan already: a
/// convolution whose kernel covers its whole input).
pub(crate) fn forward_with(
    plan: Plan,
    s: &FcShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    ws: &mut FcWorkspace,
) {
    let (n, i, o) = (s.batch, s.in_f, s.out_f);
    assert_eq!((x.len(), w.len(), b.len(), y.len()), (n * i, o * i, o, n * o));
    if plan.method == Method::Naive {
        for (x_row, y_row) in x.chunks_exact(i).zip(y.chunks_exact_mut(o)) {
            for (out, (w_row, &bias)) in y_row.iter_mut().zip(w.chunks_exact(i).zip(b)) {
                *out = bias + x_row.iter().zip(w_row).map(|(a, b)| a * b).sum::<f32>();
            }
        }
        return;
    }
    // each task's rows decide its kernel; the panels are packed (or found
    // packed) once, before the tasks share them
    let task_rows = if plan.split { rows_per_task(n) } else { n };
    let panels = (task_rows >= PACKED_FROM).then(|| ws.panels(w, o, i));
    let task = |x: &[f32], y: &mut [f32]| {
        let rows = y.len() / o;
        if let Some(panels) = panels.filter(|_| rows >= PACKED_FROM) {
            // 6 x 16 (AVX2) or 8 x 48 (AVX-512) register tiles
            return gemm_packed(x, rows, i, i, panels, o, b, y, o);
        }
        // y = b + x w^T: dot products of rows of x with rows of w
        for y_row in y.chunks_exact_mut(o) {
            y_row.copy_from_slice(b);
        }
        gemm(MatRef::new(x, rows, i), MatRef::new(w, o, i).t(), 1.0, y, o)
    };
    if plan.split {
        x.par_chunks(task_rows * i)
            .zip(y.par_chunks_mut(task_rows * o))
            .for_each(|(x, y)| task(x, y));
    } else {
        task(x, y)
    }
}

/// [`forward`] on up to 16 samples interleaved value by value
/// ([`crate::interleaved`]): `x [In, 16]` into `y [Out, 16]`, of which the first
/// `count` lanes hold samples (`s.batch` is not used). Each sum is added as the
/// packed micro-kernel adds it — from zero, one multiply-add per input in order,
/// then the bias — so the values are [`forward`]'s, bit for bit, on tasks of
/// 16 rows or more.
///
/// ```
/// use tensor_ops::fc::{forward_interleaved, FcShape};
/// use tensor_ops::interleaved::Lanes;
///
/// // 3 inputs -> 2 outputs; lane l holds the sample (l, 1, 0)
/// let s = FcShape { batch: 1, in_f: 3, out_f: 2 };
/// let x = [Lanes(std::array::from_fn(|l| l as f32)), Lanes([1.0; 16]), Lanes::ZERO];
/// let (w, b) = ([1.0, 2.0, 3.0, 0.0, 0.0, 1.0], [0.5, -1.0]);
/// let mut y = [Lanes::ZERO; 2];
/// forward_interleaved(&s, &x, &w, &b, &mut y, 16);
/// assert_eq!((y[0].0[4], y[1].0[4]), (4.0 + 2.0 + 0.5, -1.0));
/// ```
pub fn forward_interleaved(s: &FcShape, x: &[Lanes], w: &[f32], b: &[f32], y: &mut [Lanes], count: usize) {
    let (i, o) = (s.in_f, s.out_f);
    assert_eq!((x.len(), w.len(), b.len(), y.len()), (i, o * i, o, o));
    with_isa!(s => forward_interleaved_on(s, x, w, b, y, count))
}

/// Outputs computed together by [`forward_interleaved`]: their sums in registers,
/// each input value loaded once for all of them.
const INTERLEAVED_ROWS: usize = 8;

#[inline(always)]
fn forward_interleaved_on<S: Simd>(s: S, x: &[Lanes], w: &[f32], b: &[f32], y: &mut [Lanes], count: usize) {
    let in_f = x.len();
    for h in live_halves::<S>(count, LANES) {
        for ((w, b), y) in w
            .chunks(INTERLEAVED_ROWS * in_f)
            .zip(b.chunks(INTERLEAVED_ROWS))
            .zip(y.chunks_mut(INTERLEAVED_ROWS))
        {
            match b.len() {
                8 => interleaved_rows::<S, 8>(s, h, x, w, b, y),
                7 => interleaved_rows::<S, 7>(s, h, x, w, b, y),
                6 => interleaved_rows::<S, 6>(s, h, x, w, b, y),
                5 => interleaved_rows::<S, 5>(s, h, x, w, b, y),
                4 => interleaved_rows::<S, 4>(s, h, x, w, b, y),
                3 => interleaved_rows::<S, 3>(s, h, x, w, b, y),
                2 => interleaved_rows::<S, 2>(s, h, x, w, b, y),
                _ => interleaved_rows::<S, 1>(s, h, x, w, b, y),
            }
        }
    }
}

/// `R` outputs of [`forward_interleaved`], lanes `h..h + S::W`: `w [R, In]`.
#[inline(always)]
fn interleaved_rows<S: Simd, const R: usize>(
    s: S,
    h: usize,
    x: &[Lanes],
    w: &[f32],
    b: &[f32],
    y: &mut [Lanes],
) {
    let in_f = x.len();
    let w_rows: [&[f32]; R] = std::array::from_fn(|r| &w[r * in_f..][..in_f]);
    let mut acc = [s.splat(0.0); R];
    for (i, xv) in x.iter().enumerate() {
        let xv = get(s, xv, h);
        for (a, w_row) in acc.iter_mut().zip(&w_rows) {
            *a = s.mul_add(s.splat(w_row[i]), xv, *a);
        }
    }
    for ((y, a), &b) in y.iter_mut().zip(acc).zip(b) {
        set(s, y, h, s.add(a, s.splat(b)));
    }
}

/// `dx = dy w`.
pub fn x_backward(algo: Algo, s: &FcShape, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    x_backward_with(plan(algo, s), s, w, dy, dx)
}

/// [`x_backward`] as `plan` says.
pub(crate) fn x_backward_with(plan: Plan, s: &FcShape, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (n, i, o) = (s.batch, s.in_f, s.out_f);
    assert_eq!((w.len(), dy.len(), dx.len()), (o * i, n * o, n * i));
    let task = |dy: &[f32], dx: &mut [f32]| {
        if dy.len() == o {
            // one sample (batch 1, the paper's per-pattern updates): a sum of the
            // weight rows scaled by dy, without a GEMM's set-up for a one-row
            // product (a small-matrix driver measured 2-3% of a batch-1 step)
            return one_sample_x_backward(w, dy, dx, |wv| wv);
        }
        gemm(MatRef::new(dy, dy.len() / o, o), MatRef::new(w, o, i), 0.0, dx, i);
    };
    match plan {
        Plan {
            method: Method::Naive,
            ..
        } => {
            dx.fill(0.0);
            for (dy_row, dx_row) in dy.chunks_exact(o).zip(dx.chunks_exact_mut(i)) {
                for (&g, w_row) in dy_row.iter().zip(w.chunks_exact(i)) {
                    dx_row.iter_mut().zip(w_row).for_each(|(d, &wv)| *d += g * wv);
                }
            }
        }
        Plan { split: false, .. } => task(dy, dx),
        Plan { split: true, .. } => {
            let r = rows_per_task(n);
            dy.par_chunks(r * o)
                .zip(dx.par_chunks_mut(r * i))
                .for_each(|(dy, dx)| task(dy, dx));
        }
    }
}

/// `dw = dy^T x`, `db = sum over the batch of dy` (overwritten).
pub fn weight_backward(algo: Algo, s: &FcShape, x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32]) {
    weight_backward_with(plan(algo, s), s, x, dy, dw, db)
}

/// [`weight_backward`] as `plan` says.
pub(crate) fn weight_backward_with(
    plan: Plan,
    s: &FcShape,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let (n, i, o) = (s.batch, s.in_f, s.out_f);
    assert_eq!((x.len(), dy.len(), dw.len(), db.len()), (n * i, n * o, o * i, o));
    // Rows o0.. of dW and db: dW[o0+r, :] = sum_n dy[n, o0+r] x[n, :]
    let task = |o0: usize, dw: &mut [f32], db: &mut [f32]| {
        let m = db.len();
        if n == 1 {
            // one sample: dW is the outer product dy^T x, row by row (through a
            // general GEMM, a product with k = 1 measured 6% of a batch-1 step)
            return with_isa!(_s => {
                for ((dw_row, g_b), &g) in dw.chunks_exact_mut(i).zip(db.iter_mut()).zip(&dy[o0..o0 + m]) {
                    dw_row.iter_mut().zip(x).for_each(|(d, &xv)| *d = g * xv);
                    *g_b = g;
                }
            });
        }
        let dy_t = MatRef {
            data: &dy[o0..],
            rows: m,
            cols: n,
            rs: 1,
            cs: o,
        };
        gemm(dy_t, MatRef::new(x, n, i), 0.0, dw, i);
        // db[r] = -0 + dy[0, o0 + r] + dy[1, o0 + r] + ... in order of the
        // samples (`Iterator::sum`'s order and start), every output's sum
        // advanced a sample at a time by one vector add (one output's sum after
        // the other was a chain of dependent adds: `layer_times -- 1 256 classic
        // c5` under AVX2 on a Zen 3, C5's backward pass without dx 312 -> 290 us)
        with_isa!(_s => {
            db.fill(-0.0);
            for row in dy.chunks_exact(o) {
                db.iter_mut().zip(&row[o0..o0 + m]).for_each(|(g, &d)| *g += d);
            }
        });
    };
    match plan {
        Plan {
            method: Method::Naive,
            ..
        } => {
            dw.fill(0.0);
            db.fill(0.0);
            for (x_row, dy_row) in x.chunks_exact(i).zip(dy.chunks_exact(o)) {
                for ((dw_row, g_b), &g) in dw.chunks_exact_mut(i).zip(db.iter_mut()).zip(dy_row) {
                    *g_b += g;
                    dw_row.iter_mut().zip(x_row).for_each(|(d, &xv)| *d += g * xv);
                }
            }
        }
        Plan { split: false, .. } => task(0, dw, db),
        Plan { split: true, .. } => {
            let r = rows_per_task(o);
            dw.par_chunks_mut(r * i)
                .zip(db.par_chunks_mut(r))
                .enumerate()
                .for_each(|(t, (dw, db))| task(t * r, dw, db));
        }
    }
}

/// [`weight_backward`] and [`x_backward`], then the descent `step` of `w` and `b`
/// ([`crate::update::descend`]): `dx = dy w` with the weights before the step.
///
/// For one sample (the paper's per-pattern updates) the three passes are one
/// ([`plan`] permitting: not the naive loops): each weight row is read once,
/// for `dx` and for its step, and its gradient `dy[o] * x` is never stored, so
/// `dw` and `db` are left as they were. Each value is computed as the separate
/// passes compute it, so the weights and `dx` are the same bits either way. (C5's
/// 48,000 weights are 188 KiB: the separate passes stream them through the cache
/// three times and their gradient twice.) For larger batches, or naive, the
/// passes run one after the other, with the gradients in `dw` and `db`.
///
/// ```
/// use tensor_ops::fc::{backward_descend, FcShape};
/// use tensor_ops::update::{Descent, WeightBias};
/// use tensor_ops::Algo;
///
/// // one sample of 2 features into 1 output
/// let s = FcShape { batch: 1, in_f: 2, out_f: 1 };
/// let (x, dy) = ([1.0, 2.0], [0.5]);
/// let (mut w, mut b, mut dx) = ([1.0, -1.0], [0.0], [0.0; 2]);
/// let step = Descent { lr: 0.1, weight_rate: &[1.0, 1.0], bias_rate: &[2.0] };
/// let (mut dw, mut db) = ([0.0; 2], [0.0]);
/// let t = WeightBias { w: &mut w, b: &mut b, dw: &mut dw, db: &mut db };
/// backward_descend(Algo::Parallel, &s, &x, &dy, t, step, Some(&mut dx));
/// assert_eq!(dx, [0.5, -0.5]); // from the weights before the step
/// assert_eq!(w, [1.0 - 0.1 * 0.5, -1.0 - 0.1 * 1.0]);
/// assert_eq!(b, [0.0 - 0.1 * 2.0 * 0.5]);
/// ```
pub fn backward_descend(
    algo: Algo,
    s: &FcShape,
    x: &[f32],
    dy: &[f32],
    t: WeightBias,
    step: Descent,
    dx: Option<&mut [f32]>,
) {
    backward_descend_with(plan(algo, s), s, x, dy, t, step, dx)
}

/// [`backward_descend`] as `plan` says.
pub(crate) fn backward_descend_with(
    plan: Plan,
    s: &FcShape,
    x: &[f32],
    dy: &[f32],
    mut t: WeightBias,
    step: Descent,
    dx: Option<&mut [f32]>,
) {
    let (n, i, o) = (s.batch, s.in_f, s.out_f);
    assert_eq!(
        (
            x.len(),
            dy.len(),
            t.w.len(),
            t.b.len(),
            step.weight_rate.len(),
            step.bias_rate.len()
        ),
        (n * i, n * o, o * i, o, o * i, o)
    );
    if n != 1 || plan.method == Method::Naive {
        weight_backward_with(plan, s, x, dy, t.dw, t.db);
        if let Some(dx) = dx {
            x_backward_with(plan, s, t.w, dy, dx);
        }
        return step.apply(&mut t);
    }
    // one sample: for each output o, in order, dx += dy[o] w[o, :] (as
    // `x_backward` sums), then w[o, :] steps by its gradient dy[o] x (as
    // `weight_backward` computes it) and b[o] by dy[o]
    // without a caller's `dx` (a first layer), the input gradient is still
    // summed, into scratch, so that one loop serves both
    let mut scratch;
    let dx = match dx {
        Some(dx) => dx,
        None => {
            scratch = crate::ThreadScratch::take();
            scratch.get(i)
        }
    };
    assert_eq!(dx.len(), i);
    dx.fill(0.0);
    with_isa!(s_ => {
        let mut o0 = 0;
        while o0 + DESCENT_ROWS <= o {
            descend_rows::<_, DESCENT_ROWS>(s_, &mut t, &step, (o0, i), x, &dy[o0..], dx);
            o0 += DESCENT_ROWS;
        }
        while o0 < o {
            descend_rows::<_, 1>(s_, &mut t, &step, (o0, i), x, &dy[o0..], dx);
            o0 += 1;
        }
    })
}

/// Weight rows [`backward_descend`] takes at once at one sample: each `dx` value
/// is loaded and stored once per 4 rows instead of once per row (C5's pass, 120 x
/// 400 weights, one thread: 7.6 -> 6.5 us, docs/benchmarks.md).
const DESCENT_ROWS: usize = 4;

/// Rows `o0..o0 + R` of [`backward_descend`] at one sample, `i` inputs each: for
/// each input `j`, `dx[j] += dy[o] * w[o, j]` for the rows in order (the order
/// in which `x_backward` sums them), and each `w[o, j]` stepped by `dy[o] * x[j]`
/// after it was read; then the rows' biases. The inputs go by registers, the
/// last one ending with the row and storing only the lanes not done before (a
/// loop left to the compiler ran F6's last 8 of 120 inputs in scalar code: this
/// form takes F6's pass from 1.7 to 1.2 us and C5's from 5.1 to 3.7-4.0,
/// docs/benchmarks.md); rows shorter than a register go value by value.
#[inline(always)]
fn descend_rows<S: Simd, const R: usize>(
    s_: S,
    t: &mut WeightBias,
    step: &Descent,
    (o0, i): (usize, usize),
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) {
    let g: [f32; R] = std::array::from_fn(|k| dy[k]);
    // w, rate: [R, i]
    let w = &mut t.w[o0 * i..][..R * i];
    let rate = &step.weight_rate[o0 * i..][..R * i];
    let (x, dx) = (&x[..i], &mut dx[..i]);
    let lanes = S::W;
    let mut j = 0;
    while j + lanes <= i {
        descend_register(s_, (w, rate, step.lr), &g, (j, i), x, dx, 0);
        j += lanes;
    }
    if j < i && i >= lanes {
        // the last columns in the lanes of a register that ends with the row,
        // stored only there
        descend_register(s_, (w, rate, step.lr), &g, (i - lanes, i), x, dx, j + lanes - i);
    } else {
        for j in j..i {
            let mut d = dx[j];
            for (k, &g) in g.iter().enumerate() {
                let old = w[k * i + j];
                d += g * old;
                w[k * i + j] = descended(old, g * x[j], rate[k * i + j], step.lr);
            }
            dx[j] = d;
        }
    }
    let biases = t.b[o0..][..R].iter_mut().zip(&step.bias_rate[o0..][..R]);
    for ((b, &r), &g) in biases.zip(&g) {
        *b = descended(*b, g, r, step.lr);
    }
}

/// One register of columns `j0..j0 + W` of [`descend_rows`] (lanes from `first`
/// on stored): for each column `dx[j] += g[k] * w[k, j]` for the rows `k` in
/// order, and each `w[k, j]` stepped by `g[k] * x[j]` after it was read, as
/// [`descended`] computes it.
#[inline(always)]
fn descend_register<S: Simd, const R: usize>(
    s_: S,
    (w, rate, lr): (&mut [f32], &[f32], f32),
    g: &[f32; R],
    (j0, i): (usize, usize),
    x: &[f32],
    dx: &mut [f32],
    first: usize,
) {
    let (x_reg, lr) = (s_.load(&x[j0..]), s_.splat(lr));
    let store = |r: S::R, v: &mut [f32]| {
        if first == 0 {
            s_.store(r, v)
        } else {
            s_.store_window(r, v, first, S::W)
        }
    };
    let mut d = s_.load(&dx[j0..]);
    for (k, &g) in g.iter().enumerate() {
        let g = s_.splat(g);
        let at = k * i + j0;
        let old = s_.load(&w[at..]);
        d = s_.add(d, s_.mul(g, old));
        let step = s_.mul(s_.mul(lr, s_.load(&rate[at..])), s_.mul(g, x_reg));
        store(s_.sub(old, step), &mut w[at..]);
    }
    store(d, &mut dx[j0..]);
}

/// [`x_backward_with`]'s product at one sample, of `weight(w)` for each weight
/// `w`: `dx = sum over the rows o of dy[o] * weight(w[o, :])`, row by row.
#[inline(always)]
fn one_sample_x_backward(w: &[f32], dy: &[f32], dx: &mut [f32], weight: impl Fn(f32) -> f32) {
    with_isa!(_s => {
        dx.fill(0.0);
        for (&g, w_row) in dy.iter().zip(w.chunks_exact(dx.len())) {
            dx.iter_mut().zip(w_row).for_each(|(d, &wv)| *d += g * weight(wv));
        }
    })
}

/// Gauss-Newton second derivatives to the input: `d2x = d2y w^2`. `sq` is scratch.
pub fn x_backward_second(
    algo: Algo,
    s: &FcShape,
    w: &[f32],
    d2y: &[f32],
    d2x: &mut [f32],
    sq: &mut Vec<f32>,
) {
    x_backward_second_with(plan(algo, s), s, w, d2y, d2x, sq)
}

/// [`x_backward_second`] as `plan` says. At one sample (except for the naive
/// loops) each weight is squared where the product uses it, so the 192 KB of
/// C5's weights are read once and their squares never stored: the same bits as
/// the product of the stored squares (each square rounded, then multiplied).
pub(crate) fn x_backward_second_with(
    plan: Plan,
    s: &FcShape,
    w: &[f32],
    d2y: &[f32],
    d2x: &mut [f32],
    sq: &mut Vec<f32>,
) {
    if s.batch == 1 && plan.method != Method::Naive {
        assert_eq!(
            (w.len(), d2y.len(), d2x.len()),
            (s.out_f * s.in_f, s.out_f, s.in_f)
        );
        return one_sample_x_backward(w, d2y, d2x, |wv| wv * wv);
    }
    x_backward_with(plan, s, squared(sq, w), d2y, d2x);
}

/// Gauss-Newton second derivatives to the weights: `d2w = d2y^T x^2`, `d2b = sum d2y`.
#[allow(clippy::too_many_arguments)]
pub fn weight_backward_second(
    algo: Algo,
    s: &FcShape,
    x: &[f32],
    d2y: &[f32],
    d2w: &mut [f32],
    d2b: &mut [f32],
    sq: &mut Vec<f32>,
) {
    weight_backward(algo, s, squared(sq, x), d2y, d2w, d2b);
}
