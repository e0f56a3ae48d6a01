//! Stride-1 2-D convolution with zero padding and an optional connection table
//! (which input maps feed each output map — LeNet's C3).
//!
//! Tensors (all row-major slices):
//! - `x`  input            `[N, C_in, H, W]`
//! - `w`  weights          `[C_out, C_in, K, K]` (zeros where the table has no connection)
//! - `b`  bias             `[C_out]`
//! - `y`  output           `[N, C_out, H_out, W_out]`, `H_out = H + 2 pad - K + 1`
//!
//! `y[n,o,p,q] = b[o] + sum_{i connected to o} sum_{u,v} w[o,i,u,v] * x[n,i,p+u-pad,q+v-pad]`
//!
//! The im2col variants unfold each image into a patch matrix
//! `cols_n [C_in*K*K, H_out*W_out]` (one column per output pixel), so that
//! - forward is `y_n = W cols_n + b`,
//! - `x_backward` is `dcols_n = W^T dy_n`, folded back (col2im; for unpadded
//!   5x5 kernels the same sums go straight into `dx`, without `dcols_n`),
//! - `weight_backward` is `dW = sum_n dy_n cols_n^T`.
//!
//! Each task unfolds one image at a time into a buffer that stays in cache; the
//! weight gradient unfolds again rather than keep a whole batch's patches (several
//! MB at batch 32) from the forward pass.
//!
//! When the kernel covers the whole input (C5), the layer is fully connected and
//! runs as one matrix product over the batch ([`crate::fc`]).
//!
//! The parallel variant, for a batch of at least 8 images, uses the `lanes` kernel
//! instead (eight images in the vector lanes, direct loops, no patch matrix; see
//! `conv/lanes.rs`); for smaller batches it splits the im2col products over images
//! (forward, x_backward) or over two fixed halves of the batch (weight_backward).
//! One image (C1 and C3 at batch 1) runs the `direct` kernels' forward pass,
//! and C3's weight gradient (output rows or output maps in the vector lanes, the
//! same sums as im2col's product; see `conv/direct.rs`). An unpadded
//! convolution's weight gradient by dot products (C1) reads `K` shifted copies
//! of each input map instead of the patch matrix.
//! Every output value is summed in the same order whatever the number of threads,
//! so results do not depend on it.

use rayon::prelude::*;

use crate::gemm::{gemm, MatRef};
use crate::interleaved::Lanes;
use crate::simd::{with_isa, Simd};
use crate::update::{Descent, WeightBias};
use crate::{scratch, squared, Algo, Method, Plan};

mod direct;
mod lanes;

/// Images per group of the lanes kernel (the parallel variant's direct
/// convolution): one value of 16 images per AVX-512 register, two AVX2 registers.
pub const LANES_GROUP: usize = crate::interleaved::LANES;
/// Fewest images for which the parallel variant uses the lanes kernel (half a
/// group); below, im2col + GEMM.
pub const LANES_MIN_BATCH: usize = crate::interleaved::MIN_BATCH;

/// Geometry of a batched stride-1 convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Images in the batch (N).
    pub batch: usize,
    /// Input channels (C_in).
    pub in_c: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels (C_out).
    pub out_c: usize,
    /// Kernel side (square kernels).
    pub k: usize,
    /// Zero padding on each side.
    pub pad: usize,
}

impl ConvShape {
    /// A convolution of square `size x size` maps by `k x k` kernels, unpadded (all
    /// of LeNet-5's).
    ///
    /// ```
    /// let c3 = tensor_ops::ConvShape::square(32, 6, 14, 16, 5);
    /// assert_eq!((c3.out_h(), c3.out_w(), c3.pad), (10, 10, 0));
    /// ```
    pub fn square(batch: usize, in_c: usize, size: usize, out_c: usize, k: usize) -> Self {
        ConvShape {
            batch,
            in_c,
            in_h: size,
            in_w: size,
            out_c,
            k,
            pad: 0,
        }
    }

    /// Output height. Panics if the kernel is larger than the padded input.
    pub fn out_h(&self) -> usize {
        assert!(
            self.in_h + 2 * self.pad >= self.k,
            "kernel larger than padded input"
        );
        self.in_h + 2 * self.pad + 1 - self.k
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        assert!(
            self.in_w + 2 * self.pad >= self.k,
            "kernel larger than padded input"
        );
        self.in_w + 2 * self.pad + 1 - self.k
    }
    /// Length of `x`.
    pub fn x_len(&self) -> usize {
        self.batch * self.in_c * self.in_h * self.in_w
    }
    /// Length of `y`.
    pub fn y_len(&self) -> usize {
        self.batch * self.out_c * self.out_h() * self.out_w()
    }
    /// Length of `w`.
    pub fn w_len(&self) -> usize {
        self.out_c * self.in_c * self.k * self.k
    }
    /// Floating-point operations of one forward pass (2 per multiply-add), counting
    /// only connected channel pairs. Each backward pass costs the same.
    pub fn flops(&self, table: Option<&ConnTable>) -> u64 {
        let pairs = table.map_or(self.in_c * self.out_c, ConnTable::count) as u64;
        2 * self.batch as u64 * pairs * (self.k * self.k * self.out_h() * self.out_w()) as u64
    }
    fn patch_len(&self) -> usize {
        self.in_c * self.k * self.k
    }
    fn out_hw(&self) -> usize {
        self.out_h() * self.out_w()
    }
}

/// LeNet-5's C3 connection table (the paper's Table I): the S2 maps (of 6) that
/// feed each of C3's 16 maps.
pub const LENET5_C3: [&[usize]; 16] = [
    &[0, 1, 2],
    &[1, 2, 3],
    &[2, 3, 4],
    &[3, 4, 5],
    &[4, 5, 0],
    &[5, 0, 1],
    &[0, 1, 2, 3],
    &[1, 2, 3, 4],
    &[2, 3, 4, 5],
    &[3, 4, 5, 0],
    &[4, 5, 0, 1],
    &[5, 0, 1, 2],
    &[0, 1, 3, 4],
    &[1, 2, 4, 5],
    &[0, 2, 3, 5],
    &[0, 1, 2, 3, 4, 5],
];

/// Which input maps feed each output map (`out_c x in_c` booleans).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnTable {
    out_c: usize,
    in_c: usize,
    connected: Vec<bool>,
}

impl ConnTable {
    /// [`LENET5_C3`] as a table: 16 output maps from 6 inputs, 60 connections.
    ///
    /// ```
    /// assert_eq!(tensor_ops::ConnTable::lenet5_c3().count(), 60);
    /// ```
    pub fn lenet5_c3() -> Self {
        let mut connected = vec![false; 16 * 6];
        for (o, list) in LENET5_C3.iter().enumerate() {
            for &i in *list {
                connected[o * 6 + i] = true;
            }
        }
        ConnTable {
            out_c: 16,
            in_c: 6,
            connected,
        }
    }

    /// From one list of input maps per output map. `None` if an index is out of range.
    ///
    /// ```
    /// let t = tensor_ops::ConnTable::from_lists(3, &[&[0, 1], &[2]]).unwrap();
    /// assert!(t.is_connected(0, 1) && !t.is_connected(1, 0));
    /// assert_eq!(t.count(), 3);
    /// ```
    pub fn from_lists(in_c: usize, lists: &[&[usize]]) -> Option<Self> {
        let mut connected = vec![false; lists.len() * in_c];
        for (o, list) in lists.iter().enumerate() {
            for &i in *list {
                if i >= in_c {
                    return None;
                }
                connected[o * in_c + i] = true;
            }
        }
        Some(ConnTable {
            out_c: lists.len(),
            in_c,
            connected,
        })
    }

    /// Every output map connected to every input map.
    pub fn full(out_c: usize, in_c: usize) -> Self {
        ConnTable {
            out_c,
            in_c,
            connected: vec![true; out_c * in_c],
        }
    }

    /// Is input map `i` connected to output map `o`?
    pub fn is_connected(&self, o: usize, i: usize) -> bool {
        self.connected[o * self.in_c + i]
    }

    /// Number of connected pairs.
    pub fn count(&self) -> usize {
        self.connected.iter().filter(|&&c| c).count()
    }

    /// Number of output maps.
    pub fn out_c(&self) -> usize {
        self.out_c
    }

    /// Number of input maps.
    pub fn in_c(&self) -> usize {
        self.in_c
    }

    /// Zeroes the `K x K` blocks of a weight (or weight-gradient) tensor
    /// `[out_c, in_c, K, K]` whose pair is not connected.
    pub fn mask_weights(&self, w: &mut [f32]) {
        let kk = w.len() / (self.out_c * self.in_c);
        for (block, &c) in w.chunks_exact_mut(kk).zip(&self.connected) {
            if !c {
                block.fill(0.0);
            }
        }
    }
}

/// Scratch buffers and caches of the im2col, lanes and dense variants, sized on
/// first use and then reused.
#[derive(Debug, Default, Clone)]
pub struct ConvWorkspace {
    /// One image's patch matrix per task.
    cols: Vec<f32>,
    /// The one image (shape and values) whose patch matrix `cols` holds, if it
    /// holds exactly one: at batch 1 the weight gradient then reuses the forward
    /// pass's patches instead of unfolding the same image again. Compared by value,
    /// so a changed input is never taken for the cached one.
    cols_image: Option<(ConvShape, Vec<f32>)>,
    /// One image's patch-matrix gradient per task.
    dcols: Vec<f32>,
    sq: Vec<f32>,
    /// Partial weight gradients of the parallel blocks of images.
    dw_parts: Vec<f32>,
    /// The lanes kernel's interleaved inputs and outputs, one per task.
    x_lanes: Vec<Lanes>,
    y_lanes: Vec<Lanes>,
    /// The lanes kernel's per-lane partial weight gradients, one per block.
    dw_lanes: Vec<Lanes>,
    /// The kernel flipped, channels swapped, for the lanes input gradient.
    w_flipped: Vec<f32>,
    /// A dense convolution's (C5's) packed weights.
    dense: crate::fc::FcWorkspace,
}

fn check(s: &ConvShape, table: Option<&ConnTable>) {
    if let Some(t) = table {
        assert_eq!(
            (t.out_c, t.in_c),
            (s.out_c, s.in_c),
            "connection table does not match the shape"
        );
    }
}

/// How a convolution of shape `s` runs for `algo` (all three passes): the one
/// place that picks the algorithm and the thread split.
/// - `Naive`: the naive loops.
/// - `Im2col`: im2col + GEMM on the calling thread.
/// - `Parallel`: the lanes kernel (batch in vector lanes, one task per group of
///   images) for batches of at least one group, except when the kernel covers
///   the whole input (C5), which is one dense matrix product; for one image
///   and an unpadded 5 x 5 kernel with 16 output maps or rows of 16 output values
///   or more (C3 and C1 at batch 1) the direct kernel, on the calling thread
///   (`conv/direct.rs`'s `form`); otherwise
///   im2col + GEMM, split over the threads from two images on
///   ([`crate::threads::splits`]).
///
/// The shape alone decides, never the CPU or the thread count.
pub fn plan(algo: Algo, s: &ConvShape) -> Plan {
    match algo {
        Algo::Naive => Plan::NAIVE,
        Algo::Parallel if direct::form(s).is_some() => Plan {
            method: Method::Direct,
            split: false,
        },
        Algo::Parallel if lanes::applies(s) && !im2col::is_dense(s) => Plan {
            method: Method::Lanes,
            split: true,
        },
        Algo::Im2col | Algo::Parallel => Plan::gemm(algo, s.batch),
    }
}

fn connected(table: Option<&ConnTable>, o: usize, i: usize) -> bool {
    table.is_none_or(|t| t.is_connected(o, i))
}

/// Input map `i`'s column of the table, for a loop over the output maps: `o` is
/// connected to `i` where `flags[o * stride]` (without a table, one `true` at
/// stride 0). [`connected`] in a hot loop recomputed the index and reloaded the
/// table's width at every map (C3's input gradient at batch 1 with AVX2: 10.3 ->
/// 7.5 us with this and the maps' slices from `chunks_exact`).
fn column(table: Option<&ConnTable>, i: usize) -> (&[bool], usize) {
    match table {
        Some(t) => (&t.connected[i..], t.in_c),
        None => (&[true], 0),
    }
}

// ======================================================================
// Dispatch: each pass runs the plan of `plan`.
// ======================================================================

/// `y = conv(x, w) + b`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    algo: Algo,
    s: &ConvShape,
    table: Option<&ConnTable>,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    ws: &mut ConvWorkspace,
) {
    check(s, table);
    assert_eq!(
        (x.len(), w.len(), b.len(), y.len()),
        (s.x_len(), s.w_len(), s.out_c, s.y_len())
    );
    let Plan { method, split } = plan(algo, s);
    match method {
        Method::Naive => naive::forward(s, table, x, w, b, y),
        Method::Lanes => lanes::forward(s, table, x, w, b, y, ws),
        Method::Gemm => im2col::forward(s, x, w, b, y, ws, split),
        Method::Direct => direct::forward(s, table, x, w, b, y),
    }
}

/// [`forward`] on up to 16 images interleaved value by value
/// ([`crate::interleaved`]): `x [C_in, H, W, 16]` into `y [C_out, H_out, W_out,
/// 16]`, of which the first `count` lanes hold images (`s.batch` is not used).
/// The lanes kernel's sums, or for a kernel that covers its whole input (C5) the
/// fully connected product's ([`crate::fc::forward_interleaved`]): the same
/// values, bit for bit, as [`forward`] with [`Algo::Parallel`] on a batch of 32.
///
/// ```
/// use tensor_ops::conv::{self, ConvShape, ConvWorkspace};
/// use tensor_ops::interleaved::{interleave, Lanes};
///
/// // C1 on 3 images: [1, 32, 32] -> [6, 28, 28] each
/// let s = ConvShape::square(1, 1, 32, 6, 5);
/// let images: Vec<f32> = (0..3 * s.x_len()).map(|i| (i % 7) as f32).collect();
/// let mut x = vec![Lanes::ZERO; s.x_len()];
/// interleave(&images, &mut x);
/// let (w, b) = (vec![0.04; s.w_len()], vec![0.5; 6]);
/// let mut y = vec![Lanes::ZERO; s.y_len()];
/// conv::forward_interleaved(&s, None, &x, &w, &b, &mut y, 3, &mut ConvWorkspace::default());
/// // the first output of image 1: its 5 x 5 window's pixels times 0.04, plus 0.5
/// let window: f32 = (0..5).flat_map(|r| (0..5).map(move |c| ((1024 + r * 32 + c) % 7) as f32)).sum();
/// assert!((y[0].0[1] - (0.5 + 0.04 * window)).abs() < 1e-5);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn forward_interleaved(
    s: &ConvShape,
    table: Option<&ConnTable>,
    x: &[Lanes],
    w: &[f32],
    b: &[f32],
    y: &mut [Lanes],
    count: usize,
    ws: &mut ConvWorkspace,
) {
    let one = ConvShape { batch: 1, ..*s };
    check(&one, table);
    assert_eq!(
        (x.len(), w.len(), b.len(), y.len()),
        (one.x_len(), one.w_len(), one.out_c, one.y_len())
    );
    if im2col::is_dense(&one) {
        let fc = im2col::dense_shape(&one);
        return crate::fc::forward_interleaved(&fc, x, w, b, y, count);
    }
    lanes::forward_interleaved(&one, table, x, w, b, y, count, ws)
}

/// `dx = dE/dx` from `dy = dE/dy`.
pub fn x_backward(
    algo: Algo,
    s: &ConvShape,
    table: Option<&ConnTable>,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    ws: &mut ConvWorkspace,
) {
    check(s, table);
    assert_eq!((w.len(), dy.len(), dx.len()), (s.w_len(), s.y_len(), s.x_len()));
    let Plan { method, split } = plan(algo, s);
    match method {
        Method::Naive => naive::x_backward(s, table, w, dy, dx),
        Method::Lanes => lanes::x_backward(s, table, w, dy, dx, ws),
        // the direct kernel's input gradient is im2col's (`conv/direct.rs`)
        Method::Gemm | Method::Direct => im2col::x_backward(s, table, w, dy, dx, ws, split),
    }
}

/// `dw = dE/dw`, `db = dE/db` from the input `x` and `dy = dE/dy` (overwritten, not
/// accumulated). Unconnected blocks of `dw` are zero.
#[allow(clippy::too_many_arguments)]
pub fn weight_backward(
    algo: Algo,
    s: &ConvShape,
    table: Option<&ConnTable>,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    ws: &mut ConvWorkspace,
) {
    check(s, table);
    assert_eq!(
        (x.len(), dy.len(), dw.len(), db.len()),
        (s.x_len(), s.y_len(), s.w_len(), s.out_c)
    );
    let Plan { method, split } = plan(algo, s);
    match method {
        Method::Naive => naive::weight_backward(s, table, x, dy, dw, db),
        Method::Lanes => lanes::weight_backward(s, table, x, dy, dw, db, ws),
        Method::Gemm => im2col::weight_backward(s, x, dy, dw, db, ws, split),
        Method::Direct => direct::weight_backward(s, x, dy, dw, db, ws),
    }
    // the matrix products (im2col's and the direct kernels') sum every pair of
    // maps, connected or not: zero the unconnected blocks
    if let (Some(t), Method::Gemm | Method::Direct) = (table, method) {
        t.mask_weights(dw);
    }
}

/// [`weight_backward`] and, if asked, [`x_backward`], then the descent `step` of
/// `w` and `b` ([`crate::update::descend`]): `dx` from the weights before the
/// step. A kernel that covers its whole input (C5) is a fully connected layer,
/// which takes its one-sample step on the way back
/// ([`crate::fc::backward_descend`]: the gradients not stored, the same bits);
/// every other convolution runs the passes one after the other, with the
/// gradients in `dw` and `db`.
#[allow(clippy::too_many_arguments)]
pub fn backward_descend(
    algo: Algo,
    s: &ConvShape,
    table: Option<&ConnTable>,
    x: &[f32],
    dy: &[f32],
    mut t: WeightBias,
    step: Descent,
    dx: Option<&mut [f32]>,
    ws: &mut ConvWorkspace,
) {
    check(s, table);
    let Plan { method, split } = plan(algo, s);
    // (a table would mask the gradient of a dense kernel: the separate passes)
    if method == Method::Gemm && table.is_none() && im2col::is_dense(s) {
        let fc_plan = im2col::dense_plan(split);
        return crate::fc::backward_descend_with(fc_plan, &im2col::dense_shape(s), x, dy, t, step, dx);
    }
    weight_backward(algo, s, table, x, dy, t.dw, t.db, ws);
    if let Some(dx) = dx {
        x_backward(algo, s, table, t.w, dy, dx, ws);
    }
    step.apply(&mut t);
}

/// Gauss-Newton second derivatives to the input: `d2x = sum w^2 * d2y`.
pub fn x_backward_second(
    algo: Algo,
    s: &ConvShape,
    table: Option<&ConnTable>,
    w: &[f32],
    d2y: &[f32],
    d2x: &mut [f32],
    ws: &mut ConvWorkspace,
) {
    check(s, table);
    let Plan { method, split } = plan(algo, s);
    if method == Method::Gemm && im2col::is_dense(s) {
        // C5: the fully connected pass squares each weight where it uses it
        let fc_plan = im2col::dense_plan(split);
        return crate::fc::x_backward_second_with(fc_plan, &im2col::dense_shape(s), w, d2y, d2x, &mut ws.sq);
    }
    let mut sq = std::mem::take(&mut ws.sq);
    x_backward(algo, s, table, squared(&mut sq, w), d2y, d2x, ws);
    ws.sq = sq;
}

/// Gauss-Newton second derivatives to the weights: `d2w = sum x^2 * d2y`, `d2b = sum d2y`.
#[allow(clippy::too_many_arguments)]
pub fn weight_backward_second(
    algo: Algo,
    s: &ConvShape,
    table: Option<&ConnTable>,
    x: &[f32],
    d2y: &[f32],
    d2w: &mut [f32],
    d2b: &mut [f32],
    ws: &mut ConvWorkspace,
) {
    let mut sq = std::mem::take(&mut ws.sq);
    weight_backward(algo, s, table, squared(&mut sq, x), d2y, d2w, d2b, ws);
    ws.sq = sq;
}

// ======================================================================
// Naive: the specification. Unconnected pairs cost nothing.
// ======================================================================
mod naive {
    use super::*;

    /// Calls `f(y_index, x_index, w_index)` for every multiply-add of the
    /// convolution: every output value `y[n,o,p,q]`, every connected input map `i`,
    /// every kernel tap `(u, v)` that lands inside the (unpadded) input. The three
    /// passes are this one loop nest with different arithmetic in `f`.
    fn for_each_tap(s: &ConvShape, t: Option<&ConnTable>, mut f: impl FnMut(usize, usize, usize)) {
        let (oh, ow, k) = (s.out_h(), s.out_w(), s.k);
        for n in 0..s.batch {
            for o in 0..s.out_c {
                for i in (0..s.in_c).filter(|&i| connected(t, o, i)) {
                    for p in 0..oh {
                        for q in 0..ow {
                            let y_index = ((n * s.out_c + o) * oh + p) * ow + q;
                            for u in 0..k {
                                // input row read through tap u, if inside the image
                                let Some(r) = (p + u).checked_sub(s.pad).filter(|&r| r < s.in_h) else {
                                    continue;
                                };
                                for v in 0..k {
                                    let Some(c) = (q + v).checked_sub(s.pad).filter(|&c| c < s.in_w) else {
                                        continue;
                                    };
                                    let x_index = ((n * s.in_c + i) * s.in_h + r) * s.in_w + c;
                                    let w_index = ((o * s.in_c + i) * k + u) * k + v;
                                    f(y_index, x_index, w_index);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `y = b + sum w * x`
    pub fn forward(s: &ConvShape, t: Option<&ConnTable>, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
        let map = s.out_h() * s.out_w();
        for (j, y_map) in y.chunks_exact_mut(map).enumerate() {
            y_map.fill(b[j % s.out_c]);
        }
        for_each_tap(s, t, |yi, xi, wi| y[yi] += w[wi] * x[xi]);
    }

    /// `dx = sum w * dy` over every output that read x
    pub fn x_backward(s: &ConvShape, t: Option<&ConnTable>, w: &[f32], dy: &[f32], dx: &mut [f32]) {
        dx.fill(0.0);
        for_each_tap(s, t, |yi, xi, wi| dx[xi] += w[wi] * dy[yi]);
    }

    /// `dw = sum x * dy` over every position the weight was used at; `db = sum dy`
    pub fn weight_backward(
        s: &ConvShape,
        t: Option<&ConnTable>,
        x: &[f32],
        dy: &[f32],
        dw: &mut [f32],
        db: &mut [f32],
    ) {
        dw.fill(0.0);
        db.fill(0.0);
        let map = s.out_h() * s.out_w();
        for (j, dy_map) in dy.chunks_exact(map).enumerate() {
            db[j % s.out_c] += dy_map.iter().sum::<f32>();
        }
        for_each_tap(s, t, |yi, xi, wi| dw[wi] += dy[yi] * x[xi]);
    }
}

// ======================================================================
// im2col + GEMM (one thread, or split across rayon threads).
// ======================================================================
mod im2col {
    use super::*;

    /// Number of images per parallel task: the batch split evenly over the threads.
    fn images_per_task(batch: usize) -> usize {
        crate::threads::per_thread(batch, 1)
    }

    /// Is the convolution a fully-connected layer in disguise (C5: the kernel covers
    /// the whole unpadded input)? Then the patch matrix of an image is the image.
    pub(super) fn is_dense(s: &ConvShape) -> bool {
        s.pad == 0 && s.k == s.in_h && s.k == s.in_w
    }

    /// The fully connected layer a dense convolution is: `[N, patch] -> [N, C_out]`.
    pub(super) fn dense_shape(s: &ConvShape) -> crate::fc::FcShape {
        crate::fc::FcShape {
            batch: s.batch,
            in_f: s.patch_len(),
            out_f: s.out_c,
        }
    }

    /// Does the weight gradient's product run by rows of the transposed patch
    /// matrix (short sums: fewer output pixels than four times the patch), rather
    /// than as dot products?
    pub(super) fn sums_by_rows(s: &ConvShape) -> bool {
        s.out_hw() < 4 * s.patch_len()
    }

    /// Its plan: a matrix product, split over the threads as this call is.
    pub(super) fn dense_plan(parallel: bool) -> Plan {
        Plan {
            method: Method::Gemm,
            split: parallel,
        }
    }

    /// Calls `f(row, p, r, q0..q1, c0)` for every run of the patch matrix that comes
    /// from the input: patch-matrix row `row` = `(i, u, v)`, output row `p`, input
    /// row `r = p + u - pad` (skipped when outside the image), output columns
    /// `q0..q1` reading input columns `c0..c0 + (q1 - q0)` of map `i`. Columns outside
    /// `q0..q1` read padding.
    #[inline(always)]
    fn for_each_run(s: &ConvShape, mut f: impl FnMut(usize, usize, usize, std::ops::Range<usize>, usize)) {
        let (oh, ow, k, pad) = (s.out_h(), s.out_w(), s.k, s.pad);
        for i in 0..s.in_c {
            for u in 0..k {
                for v in 0..k {
                    let row = (i * k + u) * k + v;
                    let q0 = pad.saturating_sub(v).min(ow);
                    let q1 = (s.in_w + pad).saturating_sub(v).min(ow).max(q0);
                    for p in 0..oh {
                        let r = (p + u).wrapping_sub(pad);
                        if r < s.in_h {
                            f(row, p, (i * s.in_h + r) * s.in_w, q0..q1, q0 + v - pad);
                        }
                    }
                }
            }
        }
    }

    /// Unfolds one image `[C_in, H, W]` into its patch matrix `[C_in*K*K, H_out*W_out]`:
    /// row `(i, u, v)` holds `x[i, p+u-pad, q+v-pad]` for every output pixel `(p, q)`,
    /// so each row is made of contiguous runs of an input row.
    #[inline(always)]
    fn unfold(s: &ConvShape, x_img: &[f32], cols: &mut [f32]) {
        let (hw, ow) = (s.out_hw(), s.out_w());
        // LeNet's C1 and C3: sizes known at compile time make every run a few
        // vector moves with no loop and no length checks (measured: unfold was
        // 14% of a training step with the general loop below)
        match (s.pad, s.k, ow) {
            (0, 5, 28) => return unfold_valid::<5, 28>(s, x_img, cols),
            (0, 5, 10) => return unfold_valid::<5, 10>(s, x_img, cols),
            _ => {}
        }
        if s.pad > 0 {
            cols.fill(0.0); // the padding; without it every value is written below
        }
        for_each_run(s, |row, p, x_row, q, c0| {
            let n = q.len();
            copy_run(&mut cols[row * hw + p * ow..][q], &x_img[x_row + c0..][..n]);
        });
    }

    /// Calls `f(at_cols, at_x)` for every run of `OW` values of the patch matrix of
    /// a convolution without padding and with a `K x K` kernel: `cols[at_cols..]`
    /// (row `(i, u, v)`, output row `p`) holds `x[at_x..]` (map `i`, row `p + u`,
    /// from column `v`). The fixed-size twin of [`for_each_run`], for
    /// [`unfold_valid`].
    #[inline(always)]
    fn for_each_valid_run<const K: usize, const OW: usize>(s: &ConvShape, mut f: impl FnMut(usize, usize)) {
        let (oh, in_w, hw) = (s.out_h(), s.in_w, s.out_hw());
        for i in 0..s.in_c {
            for u in 0..K {
                for v in 0..K {
                    let row = (i * K + u) * K + v;
                    for p in 0..oh {
                        f(row * hw + p * OW, (i * s.in_h + u + p) * in_w + v);
                    }
                }
            }
        }
    }

    /// [`unfold`] without padding, for a `K x K` kernel and `OW` output columns.
    #[inline(always)]
    fn unfold_valid<const K: usize, const OW: usize>(s: &ConvShape, x_img: &[f32], cols: &mut [f32]) {
        for_each_valid_run::<K, OW>(s, |at_cols, at_x| {
            cols[at_cols..at_cols + OW].copy_from_slice(&x_img[at_x..at_x + OW]);
        });
    }

    /// `dst.copy_from_slice(src)` for the short runs of `unfold` (10 to 28 values),
    /// as 8-wide copies (the last one overlapping) instead of a call to `memcpy`,
    /// which costs more than the copy at these lengths.
    #[inline(always)]
    fn copy_run(dst: &mut [f32], src: &[f32]) {
        const W: usize = 8;
        let n = dst.len();
        if n < W {
            dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v);
            return;
        }
        let mut i = 0;
        while i + W <= n {
            dst[i..i + W].copy_from_slice(&src[i..i + W]);
            i += W;
        }
        if i < n {
            dst[n - W..].copy_from_slice(&src[n - W..n]);
        }
    }

    /// Folds a patch-matrix gradient back onto one image (the adjoint of `unfold`).
    #[inline(always)]
    fn fold(s: &ConvShape, dcols: &[f32], dx_img: &mut [f32]) {
        let (hw, ow) = (s.out_hw(), s.out_w());
        dx_img.fill(0.0);
        for_each_run(s, |row, p, x_row, q, c0| {
            let n = q.len();
            let src = &dcols[row * hw + p * ow..][q];
            dx_img[x_row + c0..][..n]
                .iter_mut()
                .zip(src)
                .for_each(|(d, &g)| *d += g);
        });
    }

    /// `dcols = W^T dy` folded into `dx` as [`fold`] folds it, for one image
    /// of an unpadded convolution with a `K x K` kernel, without the patch matrix:
    /// the same values, bit for bit. Each patch-matrix value `dcols[(i, u, v), (p,
    /// q)]` is the chain of multiply-adds over the output maps that `gemm` computes
    /// (in order of `o`, from zero), here for a whole input row at once (input
    /// columns in the lanes, `dy`'s row shifted by `v` against zero padding); it is
    /// added to `dx[i, p + u, q + v]` in the fold's order of `(u, v)`, which for a
    /// given input row `p + u` means output rows `p` from the last down. (C3 at
    /// batch 1, one thread, AVX-512, alternating builds: 9.1-9.7 us with the patch
    /// matrix, 5.1-6.2 us without.)
    #[inline(always)]
    fn product_fold_valid<S: Simd, const K: usize>(
        s_: S,
        s: &ConvShape,
        t: Option<&ConnTable>,
        w: &[f32],
        dy: &[f32],
        dx: &mut [f32],
    ) {
        let (lanes, oc, ic, oh, ow) = (S::W, s.out_c, s.in_c, s.out_h(), s.out_w());
        let blocks = s.in_w.div_ceil(lanes);
        let mut scratch = crate::ThreadScratch::take();
        let pad = PaddedRows {
            dy_row: K - 1 + blocks * lanes,
            dx_row: blocks * lanes,
        };
        // dy_pad [oc, oh, K - 1 zeros | ow values | zeros to the last block's end],
        // dx_pad [ic, in_h, blocks * lanes]
        let (dy_pad, dx_pad) = scratch
            .get(oc * oh * pad.dy_row + ic * s.in_h * pad.dx_row)
            .split_at_mut(oc * oh * pad.dy_row);
        dy_pad.fill(0.0);
        for (padded, row) in dy_pad.chunks_exact_mut(pad.dy_row).zip(dy.chunks_exact(ow)) {
            copy_run(&mut padded[K - 1..K - 1 + ow], row);
        }
        dx_pad.fill(0.0);
        for i in 0..ic {
            // enough chains side by side to hide the multiply-add's latency, within
            // the registers: AVX-512, 5 kernel columns x 5 rows of one lane block
            // (25 of its 32); AVX2 and portable with rows of two lane blocks (C3's
            // 14 columns), one kernel column x 5 rows of both blocks, each weight
            // broadcast once for both (C3's input gradient at batch 1, AVX2:
            // 12.6-13.1 -> 10.3-10.4 us against 2, 2 and 1 kernel columns of one
            // block); otherwise 2, 2 and 1 kernel columns of one block (5 x 2 of
            // AVX2's 16)
            if lanes < 16 && blocks == 2 {
                for p in (0..oh).rev() {
                    for v in 0..K {
                        product_fold_block::<S, K, 1, 2>(s_, &pad, s, t, w, dy_pad, dx_pad, (i, 0, p, v));
                    }
                }
                continue;
            }
            for b in 0..blocks {
                for p in (0..oh).rev() {
                    if lanes == 16 {
                        product_fold_block::<S, K, K, 1>(s_, &pad, s, t, w, dy_pad, dx_pad, (i, b, p, 0));
                    } else {
                        let mut v = 0;
                        while v + 2 <= K {
                            product_fold_block::<S, K, 2, 1>(s_, &pad, s, t, w, dy_pad, dx_pad, (i, b, p, v));
                            v += 2;
                        }
                        if v < K {
                            product_fold_block::<S, K, 1, 1>(s_, &pad, s, t, w, dy_pad, dx_pad, (i, b, p, v));
                        }
                    }
                }
            }
        }
        for (row, padded) in dx.chunks_exact_mut(s.in_w).zip(dx_pad.chunks_exact(pad.dx_row)) {
            copy_run(row, &padded[..s.in_w]);
        }
    }

    /// Row lengths of [`product_fold_valid`]'s padded buffers.
    struct PaddedRows {
        dy_row: usize,
        dx_row: usize,
    }

    /// [`product_fold_valid`] for output row `p`, input map `i`, kernel columns
    /// `v0..v0 + VN` of lane blocks `b0..b0 + BN`: the `K x VN x BN` chains of every
    /// `(u, v)` and block, then their adds into `dx` rows `p + u`, `v` ascending.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn product_fold_block<S: Simd, const K: usize, const VN: usize, const BN: usize>(
        s_: S,
        pad: &PaddedRows,
        s: &ConvShape,
        t: Option<&ConnTable>,
        w: &[f32],
        dy_pad: &[f32],
        dx_pad: &mut [f32],
        (i, b0, p, v0): (usize, usize, usize, usize),
    ) {
        let (lanes, oh) = (S::W, s.out_h());
        // acc[j][b][u], lane l: dcols[(i, u, v0 + j), (p, (b0 + b) * lanes + l - v0 - j)]
        let mut acc = [[[s_.splat(0.0); K]; BN]; VN];
        // dy_pad's row p from block b0, kernel column v0 + VN - 1 on
        let dy_at = p * pad.dy_row + b0 * lanes + K - v0 - VN;
        // each output map's padded dy and weights
        let maps = dy_pad
            .chunks_exact(oh * pad.dy_row)
            .zip(w.chunks_exact(s.in_c * K * K));
        let (flags, stride) = column(t, i);
        for (o, (dy_map, w_map)) in maps.enumerate() {
            // an unconnected map's weights are zero: its terms would leave each
            // chain as it is (a sum that is still zero is +0, and the fold adds it
            // to +0), so they are skipped, as the naive loops skip them
            if !flags[o * stride] {
                continue;
            }
            let dy_o = &dy_map[dy_at..][..VN - 1 + BN * lanes];
            // w[o, i, u, v0 + j] at u * K + j
            let w_o = &w_map[i * K * K + v0..][..(K - 1) * K + VN];
            for (j, acc) in acc.iter_mut().enumerate() {
                let d: [S::R; BN] = std::array::from_fn(|b| s_.load(&dy_o[VN - 1 - j + b * lanes..]));
                for u in 0..K {
                    let w_tap = s_.splat(w_o[u * K + j]);
                    for (acc, &d) in acc.iter_mut().zip(&d) {
                        acc[u] = s_.mul_add(w_tap, d, acc[u]);
                    }
                }
            }
        }
        for u in 0..K {
            for b in 0..BN {
                let at = (i * s.in_h + p + u) * pad.dx_row + (b0 + b) * lanes;
                let mut sum = s_.load(&dx_pad[at..]);
                for acc in &acc {
                    sum = s_.add(sum, acc[b][u]);
                }
                s_.store(sum, &mut dx_pad[at..]);
            }
        }
    }

    pub fn forward(
        s: &ConvShape,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        y: &mut [f32],
        ws: &mut ConvWorkspace,
        parallel: bool,
    ) {
        let (hw, patch, oc) = (s.out_hw(), s.patch_len(), s.out_c);
        if is_dense(s) {
            // y [N, C_out] = x [N, patch] * W^T
            return crate::fc::forward_with(dense_plan(parallel), &dense_shape(s), x, w, b, y, &mut ws.dense);
        }
        let img = s.in_c * s.in_h * s.in_w;
        // per image, into the task's one patch buffer (small enough to stay in
        // cache): unfold, then y_n [C_out, HW] = W [C_out, patch] * cols_n [patch, HW] + b
        let task = |x: &[f32], cols: &mut [f32], y: &mut [f32]| {
            with_isa!(_s => {
                for (x_img, y_img) in x.chunks_exact(img).zip(y.chunks_exact_mut(oc * hw)) {
                    unfold(s, x_img, cols);
                    for (y_map, &bias) in y_img.chunks_exact_mut(hw).zip(b) {
                        y_map.fill(bias);
                    }
                    gemm(
                        MatRef::new(w, oc, patch),
                        MatRef::new(cols, patch, hw),
                        1.0,
                        y_img,
                        hw,
                    );
                }
            })
        };
        if !parallel {
            task(x, scratch(&mut ws.cols, patch * hw), y);
            return remember_cols(ws, s, x);
        }
        ws.cols_image = None;
        let per = images_per_task(s.batch);
        let cols = scratch(&mut ws.cols, s.batch.div_ceil(per) * patch * hw);
        x.par_chunks(per * img)
            .zip(cols.par_chunks_mut(patch * hw))
            .zip(y.par_chunks_mut(per * oc * hw))
            .for_each(|((x, c), y)| task(x, c, y));
    }

    /// Records that `ws.cols` holds the patches of `x` if `x` is one image, else
    /// that it holds no single image's.
    fn remember_cols(ws: &mut ConvWorkspace, s: &ConvShape, x: &[f32]) {
        if s.batch != 1 {
            ws.cols_image = None;
            return;
        }
        let (shape, image) = ws.cols_image.get_or_insert_with(|| (*s, Vec::new()));
        *shape = *s;
        image.clear();
        image.extend_from_slice(x);
    }

    /// Does `ws.cols` hold the patches of the one image `x` of shape `s`?
    fn cols_hold(ws: &ConvWorkspace, s: &ConvShape, x: &[f32]) -> bool {
        // bit for bit (a float comparison, value by value, cost 3% of C3's batch-1
        // backward pass)
        matches!(&ws.cols_image, Some((shape, image)) if shape == s && crate::same_bits(image, x))
    }

    pub fn x_backward(
        s: &ConvShape,
        table: Option<&ConnTable>,
        w: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        ws: &mut ConvWorkspace,
        parallel: bool,
    ) {
        let (hw, patch, oc) = (s.out_hw(), s.patch_len(), s.out_c);
        if is_dense(s) {
            return crate::fc::x_backward_with(dense_plan(parallel), &dense_shape(s), w, dy, dx);
        }
        let img = s.in_c * s.in_h * s.in_w;
        // per image: dcols_n [patch, HW] = W^T [patch, C_out] * dy_n [C_out, HW], folded into dx_n
        let task = |dy: &[f32], dcols: &mut [f32], dx: &mut [f32]| {
            with_isa!(s_ => {
                for (dy_img, dx_img) in dy.chunks_exact(oc * hw).zip(dx.chunks_exact_mut(img)) {
                    if s.pad == 0 && s.k == 5 {
                        product_fold_valid::<_, 5>(s_, s, table, w, dy_img, dx_img);
                        continue;
                    }
                    gemm(
                        MatRef::new(w, oc, patch).t(),
                        MatRef::new(dy_img, oc, hw),
                        0.0,
                        dcols,
                        hw,
                    );
                    fold(s, dcols, dx_img);
                }
            })
        };
        if !parallel {
            return task(dy, scratch(&mut ws.dcols, patch * hw), dx);
        }
        let per = images_per_task(s.batch);
        let dcols = scratch(&mut ws.dcols, s.batch.div_ceil(per) * patch * hw);
        dy.par_chunks(per * oc * hw)
            .zip(dcols.par_chunks_mut(patch * hw))
            .zip(dx.par_chunks_mut(per * img))
            .for_each(|((dy, dc), dx)| task(dy, dc, dx));
    }

    /// Length of [`shifted_weight_product`]'s rows buffer: `[C_in, K, H, W_out]`.
    fn shifted_len(s: &ConvShape) -> usize {
        s.in_c * s.k * s.in_h * s.out_w()
    }

    /// `dw_t [patch, C_out] = cols_n dy_n^T + beta dw_t` for one image of an
    /// unpadded convolution, without its patch matrix. Row `(i, u, v)` of the
    /// patch matrix is `x[i, p + u, q + v]` over the output pixels `(p, q)`: the
    /// rows of map `i` shifted left by `v` and cut to `W_out` columns, `rows[i,
    /// v]`, read from row `u` on. So `C_in * K` shifted copies of the image (K
    /// times fewer values than the patch matrix: C1's 5 x 32 x 28 against 25 x 784)
    /// stand for it, and each `(i, v)` is one product into every `K`-th row of
    /// `dw_t`. The same dot products as with the patch matrix (the product of
    /// `dy_n` and the patch matrix's transpose, transposed): the same bits.
    #[inline(always)]
    fn shifted_weight_product(
        s: &ConvShape,
        x_img: &[f32],
        rows: &mut [f32],
        dy_n: MatRef,
        beta: f32,
        dw_t: &mut [f32],
    ) {
        let (k, in_h, in_w, ow, oc) = (s.k, s.in_h, s.in_w, s.out_w(), s.out_c);
        // rows [C_in, K, H, W_out]: rows[i, v, r, q] = x[i, r, q + v]
        for (iv, shifted) in rows.chunks_exact_mut(in_h * ow).enumerate() {
            let (i, v) = (iv / k, iv % k);
            for (r, row) in shifted.chunks_exact_mut(ow).enumerate() {
                copy_run(row, &x_img[(i * in_h + r) * in_w + v..][..ow]);
            }
        }
        for i in 0..s.in_c {
            for v in 0..k {
                let from = (i * k + v) * in_h * ow;
                // [K, HW]: row u is rows[i, v] from row u on
                let a = MatRef {
                    data: &rows[from..from + (k - 1) * ow + s.out_hw()],
                    rows: k,
                    cols: s.out_hw(),
                    rs: ow,
                    cs: 1,
                };
                // rows (i, u, v) of dw_t for u = 0..K: every K-th row from (i, 0, v)
                let at = (i * k * k + v) * oc;
                gemm(a, dy_n.t(), beta, &mut dw_t[at..], k * oc);
            }
        }
    }

    pub fn weight_backward(
        s: &ConvShape,
        x: &[f32],
        dy: &[f32],
        dw: &mut [f32],
        db: &mut [f32],
        ws: &mut ConvWorkspace,
        parallel: bool,
    ) {
        let (hw, patch, oc) = (s.out_hw(), s.patch_len(), s.out_c);
        if is_dense(s) {
            return crate::fc::weight_backward_with(dense_plan(parallel), &dense_shape(s), x, dy, dw, db);
        }
        // dW [C_out, patch] = sum_n dy_n [C_out, HW] * cols_n^T [HW, patch],
        // db [C_out] = sum_n sum_HW dy_n; each image unfolded again into the task's
        // patch buffer (rewriting a cached buffer costs less than keeping the whole
        // batch's patches from the forward pass, which do not fit in cache).
        //
        // Two forms of the product, by shape: with long sums (C1: 784 output
        // pixels, 25 weights per map) dot products of dy's rows with the patch
        // matrix's rows; with short ones (C3: 100 pixels, 150 weights per map) the
        // patch matrix transposed, [HW, patch], and dy's values broadcast against
        // its rows (measured: C3's backward pass at batch 1 from 34.5 to 20.4 us,
        // docs/benchmarks.md).
        let (wl, img, y_img) = (oc * patch, s.in_c * s.in_h * s.in_w, oc * hw);
        let by_rows = sums_by_rows(s);
        // dot products of an unpadded convolution: from the shifted rows instead
        // of the patch matrix, and into dW transposed
        let shifted = !by_rows && s.pad == 0;
        let task_len = if by_rows {
            2 * patch * hw
        } else if shifted {
            shifted_len(s) + wl
        } else {
            patch * hw
        };
        let task = |images: std::ops::Range<usize>,
                    cols: &mut [f32],
                    dw: &mut [f32],
                    db: &mut [f32],
                    unfolded: bool| {
            with_isa!(s_ => {
                if shifted {
                    let (rows, dw_t) = cols.split_at_mut(shifted_len(s));
                    for (k, n) in images.clone().enumerate() {
                        let dy_n = MatRef::new(&dy[n * y_img..][..y_img], oc, hw);
                        let beta = if k == 0 { 0.0 } else { 1.0 };
                        shifted_weight_product(s, &x[n * img..][..img], rows, dy_n, beta, dw_t);
                    }
                    crate::gemm::transpose(s_, dw_t, (patch, oc), dw);
                } else {
                    let (cols, cols_t) = cols.split_at_mut(patch * hw);
                    for (k, n) in images.clone().enumerate() {
                        if !unfolded {
                            unfold(s, &x[n * img..][..img], cols);
                        }
                        let dy_n = MatRef::new(&dy[n * y_img..][..y_img], oc, hw);
                        let beta = if k == 0 { 0.0 } else { 1.0 };
                        if by_rows {
                            crate::gemm::transpose(s_, cols, (patch, hw), cols_t);
                            gemm(dy_n, MatRef::new(cols_t, hw, patch), beta, dw, patch);
                        } else {
                            gemm(dy_n, MatRef::new(cols, patch, hw).t(), beta, dw, patch);
                        }
                    }
                }
                for (o, g) in db.iter_mut().enumerate() {
                    *g = images
                        .clone()
                        .map(|n| crate::sum8(&dy[n * y_img + o * hw..][..hw]))
                        .sum();
                }
            })
        };
        // In parallel: the batch in GEMM_SPLIT fixed blocks of images, each summed
        // into its own partial gradient by full-height GEMMs (measured 1.6x faster
        // for C3 than splitting dW's rows), then the partials added in block order:
        // the same sums in the same order whatever the thread count.
        let blocks = if parallel && s.batch >= 2 {
            crate::GEMM_SPLIT
        } else {
            1
        };
        let per = s.batch.div_ceil(blocks);
        if blocks == 1 {
            if shifted {
                return task(0..s.batch, scratch(&mut ws.cols, task_len), dw, db, false);
            }
            // one image whose patches the forward pass left in `cols`: not unfolded again
            let unfolded = cols_hold(ws, s, x);
            task(0..s.batch, scratch(&mut ws.cols, task_len), dw, db, unfolded);
            if !unfolded {
                remember_cols(ws, s, x);
            }
            return;
        }
        ws.cols_image = None;
        let cols = scratch(&mut ws.cols, blocks * task_len);
        let parts = scratch(&mut ws.dw_parts, blocks * (wl + oc));
        parts
            .par_chunks_mut(wl + oc)
            .zip(cols.par_chunks_mut(task_len))
            .enumerate()
            .for_each(|(t, (part, cols))| {
                let images = (t * per).min(s.batch)..((t + 1) * per).min(s.batch);
                let (pw, pb) = part.split_at_mut(wl);
                task(images, cols, pw, pb, false);
            });
        let (first, rest) = parts.split_at(wl + oc);
        dw.copy_from_slice(&first[..wl]);
        db.copy_from_slice(&first[wl..]);
        for part in rest.chunks_exact(wl + oc) {
            dw.iter_mut().zip(&part[..wl]).for_each(|(d, &p)| *d += p);
            db.iter_mut().zip(&part[wl..]).for_each(|(d, &p)| *d += p);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// The patch matrix's product and fold, as computed before
        /// [`product_fold_valid`], and that function give the same bits: the
        /// models trained before it are trained again.
        #[test]
        fn product_fold_is_the_product_then_the_fold() {
            // C3, C1's geometry, and odd sizes (two AVX2 lane blocks, a partial one)
            for (in_c, size, out_c) in [(6, 14, 16), (1, 32, 6), (3, 19, 4), (2, 5, 3)] {
                let s = ConvShape::square(1, in_c, size, out_c, 5);
                let value = |i: usize, m: usize| ((i * m % 1009) as f32 - 504.0) / 97.0;
                let w: Vec<f32> = (0..s.w_len()).map(|i| value(i, 37)).collect();
                let dy: Vec<f32> = (0..s.y_len()).map(|i| value(i, 53)).collect();
                let (mut by_cols, mut fused) = (vec![0.0; s.x_len()], vec![1.0; s.x_len()]);
                let mut dcols = vec![0.0; s.patch_len() * s.out_hw()];
                with_isa!(s_ => {
                    gemm(
                        MatRef::new(&w, out_c, s.patch_len()).t(),
                        MatRef::new(&dy, out_c, s.out_hw()),
                        0.0,
                        &mut dcols,
                        s.out_hw(),
                    );
                    fold(&s, &dcols, &mut by_cols);
                    product_fold_valid::<_, 5>(s_, &s, None, &w, &dy, &mut fused);
                });
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fused), bits(&by_cols), "{s:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x3 input, a 2x2 kernel: every output worked out by hand.
    #[test]
    fn hand_computed_3x3() {
        let s = ConvShape {
            batch: 1,
            in_c: 1,
            in_h: 3,
            in_w: 3,
            out_c: 1,
            k: 2,
            pad: 0,
        };
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let w = [1.0, 0.0, 0.0, -1.0]; // x[p,q] - x[p+1,q+1]
        let mut y = [0.0; 4];
        let mut ws = ConvWorkspace::default();
        forward(Algo::Naive, &s, None, &x, &w, &[0.5], &mut y, &mut ws);
        assert_eq!(
            y,
            [1.0 - 5.0 + 0.5, 2.0 - 6.0 + 0.5, 4.0 - 8.0 + 0.5, 5.0 - 9.0 + 0.5]
        );

        // dy = 1 everywhere: dx counts how often each input is used, with the kernel's sign
        let mut dx = [0.0; 9];
        x_backward(Algo::Naive, &s, None, &w, &[1.0; 4], &mut dx, &mut ws);
        assert_eq!(dx, [1.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, -1.0, -1.0]);

        // dw[u,v] = sum of the 2x2 window of x starting at (u,v)
        let (mut dw, mut db) = ([0.0; 4], [0.0; 1]);
        weight_backward(Algo::Naive, &s, None, &x, &[1.0; 4], &mut dw, &mut db, &mut ws);
        assert_eq!(dw, [12.0, 16.0, 24.0, 28.0]);
        assert_eq!(db, [4.0]);
    }

    #[test]
    fn padding_one_keeps_the_size() {
        let s = ConvShape {
            batch: 1,
            in_c: 1,
            in_h: 3,
            in_w: 3,
            out_c: 1,
            k: 3,
            pad: 1,
        };
        let x = [1.0; 9];
        let mut w = [0.0; 9];
        w[4] = 2.0; // centre tap only
        let mut y = [0.0; 9];
        forward(
            Algo::Naive,
            &s,
            None,
            &x,
            &w,
            &[0.0],
            &mut y,
            &mut ConvWorkspace::default(),
        );
        assert_eq!(y, [2.0; 9]);
        let w_sum = [1.0; 9];
        forward(
            Algo::Naive,
            &s,
            None,
            &x,
            &w_sum,
            &[0.0],
            &mut y,
            &mut ConvWorkspace::default(),
        );
        assert_eq!(y, [4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0]); // corners see 4 inputs
    }

    #[test]
    fn unconnected_pairs_get_zero_weight_gradient() {
        let s = ConvShape {
            batch: 2,
            in_c: 2,
            in_h: 4,
            in_w: 4,
            out_c: 2,
            k: 3,
            pad: 0,
        };
        let t = ConnTable::from_lists(2, &[&[0], &[0, 1]]).unwrap();
        let x: Vec<f32> = (0..s.x_len()).map(|i| (i as f32).sin()).collect();
        let dy: Vec<f32> = (0..s.y_len()).map(|i| (i as f32).cos()).collect();
        for algo in Algo::ALL {
            let (mut dw, mut db) = (vec![1.0; s.w_len()], vec![0.0; 2]);
            weight_backward(
                algo,
                &s,
                Some(&t),
                &x,
                &dy,
                &mut dw,
                &mut db,
                &mut ConvWorkspace::default(),
            );
            assert!(dw[9..18].iter().all(|&g| g == 0.0), "{algo:?}");
            assert!(dw[..9].iter().any(|&g| g != 0.0));
        }
    }

    /// At batch 1 the weight gradient reuses the forward pass's patches only when
    /// its input is the same image: another image (or the same one changed in
    /// place) is unfolded again.
    #[test]
    fn weight_gradient_reuses_patches_only_of_the_same_image() {
        let s = ConvShape::square(1, 2, 8, 3, 3);
        let x: Vec<f32> = (0..s.x_len()).map(|i| (i as f32 * 0.37).sin()).collect();
        let other: Vec<f32> = x.iter().map(|v| v * 2.0 - 0.5).collect();
        let w: Vec<f32> = (0..s.w_len()).map(|i| (i as f32 * 0.11).cos()).collect();
        let dy: Vec<f32> = (0..s.y_len()).map(|i| (i as f32 * 0.23).sin()).collect();
        let grads = |forward_x: &[f32], backward_x: &[f32]| {
            let mut ws = ConvWorkspace::default();
            let mut y = vec![0.0; s.y_len()];
            forward(Algo::Im2col, &s, None, forward_x, &w, &[0.0; 3], &mut y, &mut ws);
            let (mut dw, mut db) = (vec![0.0; s.w_len()], vec![0.0; 3]);
            weight_backward(Algo::Im2col, &s, None, backward_x, &dy, &mut dw, &mut db, &mut ws);
            dw
        };
        let (mut want, mut db) = (vec![0.0; s.w_len()], vec![0.0; 3]);
        naive::weight_backward(&s, None, &other, &dy, &mut want, &mut db);
        for got in [grads(&x, &other), grads(&other, &other)] {
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
    }
}
