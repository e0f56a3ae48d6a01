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
//! The im2col variants unfold the whole batch into a patch matrix
//! `cols [N*H_out*W_out, C_in*K*K]` (one row per output pixel), so that
//! - forward is `Y^T = cols * W^T`,
//! - `x_backward` is `dcols = dY^T * W`, folded back (col2im),
//! - `weight_backward` is `dW = dY * cols`.
//!
//! The parallel variant splits those products over images (forward, x_backward) or
//! over output channels (weight_backward). Every output value is summed in the same
//! order whatever the number of threads, so results do not depend on it.

use rayon::prelude::*;

use crate::gemm::{gemm, MatRef};
use crate::{scratch, squared, Algo};

/// Geometry of a batched stride-1 convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_c: usize,
    /// Kernel side (square kernels).
    pub k: usize,
    /// Zero padding on each side.
    pub pad: usize,
}

impl ConvShape {
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

/// Which input maps feed each output map (`out_c x in_c` booleans).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnTable {
    out_c: usize,
    in_c: usize,
    connected: Vec<bool>,
}

impl ConnTable {
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

/// Scratch buffers of the im2col variants, sized on first use and then reused.
#[derive(Debug, Default, Clone)]
pub struct ConvWorkspace {
    cols: Vec<f32>,
    tmp: Vec<f32>,
    sq: Vec<f32>,
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

/// Does the parallel variant split this call across threads? Not for a single
/// image: handing one small task to the pool costs more than it saves.
fn split(algo: Algo, s: &ConvShape) -> bool {
    algo == Algo::Parallel && s.batch > 1 && rayon::current_num_threads() > 1
}

fn connected(table: Option<&ConnTable>, o: usize, i: usize) -> bool {
    table.is_none_or(|t| t.is_connected(o, i))
}

// ======================================================================
// Dispatch: the one place that picks the algorithm.
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
    match algo {
        Algo::Naive => naive::forward(s, table, x, w, b, y),
        Algo::Im2col | Algo::Parallel => im2col::forward(s, x, w, b, y, ws, split(algo, s)),
    }
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
    match algo {
        Algo::Naive => naive::x_backward(s, table, w, dy, dx),
        Algo::Im2col | Algo::Parallel => im2col::x_backward(s, w, dy, dx, ws, split(algo, s)),
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
    match algo {
        Algo::Naive => naive::weight_backward(s, table, x, dy, dw, db),
        Algo::Im2col | Algo::Parallel => {
            im2col::weight_backward(s, x, dy, dw, db, ws, split(algo, s));
            if let Some(t) = table {
                t.mask_weights(dw);
            }
        }
    }
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

    /// The input position read by output `p` through kernel tap `u`, if inside the image.
    fn src(p: usize, u: usize, pad: usize, len: usize) -> Option<usize> {
        (p + u).checked_sub(pad).filter(|&i| i < len)
    }

    pub fn forward(s: &ConvShape, t: Option<&ConnTable>, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
        let (oh, ow, k) = (s.out_h(), s.out_w(), s.k);
        for n in 0..s.batch {
            for o in 0..s.out_c {
                let y_map = &mut y[(n * s.out_c + o) * oh * ow..][..oh * ow];
                y_map.fill(b[o]);
                for i in (0..s.in_c).filter(|&i| connected(t, o, i)) {
                    let x_map = &x[(n * s.in_c + i) * s.in_h * s.in_w..][..s.in_h * s.in_w];
                    let kernel = &w[(o * s.in_c + i) * k * k..][..k * k];
                    for p in 0..oh {
                        for q in 0..ow {
                            let mut acc = 0.0;
                            for u in 0..k {
                                let Some(r) = src(p, u, s.pad, s.in_h) else {
                                    continue;
                                };
                                for v in 0..k {
                                    let Some(c) = src(q, v, s.pad, s.in_w) else {
                                        continue;
                                    };
                                    acc += kernel[u * k + v] * x_map[r * s.in_w + c];
                                }
                            }
                            y_map[p * ow + q] += acc;
                        }
                    }
                }
            }
        }
    }

    pub fn x_backward(s: &ConvShape, t: Option<&ConnTable>, w: &[f32], dy: &[f32], dx: &mut [f32]) {
        let (oh, ow, k) = (s.out_h(), s.out_w(), s.k);
        dx.fill(0.0);
        for n in 0..s.batch {
            for o in 0..s.out_c {
                let dy_map = &dy[(n * s.out_c + o) * oh * ow..][..oh * ow];
                for i in (0..s.in_c).filter(|&i| connected(t, o, i)) {
                    let dx_map = &mut dx[(n * s.in_c + i) * s.in_h * s.in_w..][..s.in_h * s.in_w];
                    let kernel = &w[(o * s.in_c + i) * k * k..][..k * k];
                    for p in 0..oh {
                        for q in 0..ow {
                            let g = dy_map[p * ow + q];
                            for u in 0..k {
                                let Some(r) = src(p, u, s.pad, s.in_h) else {
                                    continue;
                                };
                                for v in 0..k {
                                    let Some(c) = src(q, v, s.pad, s.in_w) else {
                                        continue;
                                    };
                                    dx_map[r * s.in_w + c] += kernel[u * k + v] * g;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn weight_backward(
        s: &ConvShape,
        t: Option<&ConnTable>,
        x: &[f32],
        dy: &[f32],
        dw: &mut [f32],
        db: &mut [f32],
    ) {
        let (oh, ow, k) = (s.out_h(), s.out_w(), s.k);
        dw.fill(0.0);
        db.fill(0.0);
        for n in 0..s.batch {
            for o in 0..s.out_c {
                let dy_map = &dy[(n * s.out_c + o) * oh * ow..][..oh * ow];
                db[o] += dy_map.iter().sum::<f32>();
                for i in (0..s.in_c).filter(|&i| connected(t, o, i)) {
                    let x_map = &x[(n * s.in_c + i) * s.in_h * s.in_w..][..s.in_h * s.in_w];
                    let dkernel = &mut dw[(o * s.in_c + i) * k * k..][..k * k];
                    for u in 0..k {
                        for v in 0..k {
                            let mut acc = 0.0;
                            for p in 0..oh {
                                let Some(r) = src(p, u, s.pad, s.in_h) else {
                                    continue;
                                };
                                for q in 0..ow {
                                    let Some(c) = src(q, v, s.pad, s.in_w) else {
                                        continue;
                                    };
                                    acc += dy_map[p * ow + q] * x_map[r * s.in_w + c];
                                }
                            }
                            dkernel[u * k + v] += acc;
                        }
                    }
                }
            }
        }
    }
}

// ======================================================================
// im2col + GEMM (one thread, or split across rayon threads).
// ======================================================================
mod im2col {
    use super::*;

    /// Number of images per parallel task: the batch split evenly over the threads.
    fn images_per_task(batch: usize) -> usize {
        batch.div_ceil(rayon::current_num_threads()).max(1)
    }

    /// Unfolds one image `[C_in, H, W]` into its patch rows `[H_out*W_out, C_in*K*K]`.
    fn unfold(s: &ConvShape, x_img: &[f32], cols: &mut [f32]) {
        let (ow, k, pad) = (s.out_w(), s.k, s.pad);
        let patch = s.patch_len();
        for (pix, row) in cols.chunks_exact_mut(patch).enumerate() {
            let (p, q) = (pix / ow, pix % ow);
            for i in 0..s.in_c {
                for u in 0..k {
                    let dst = &mut row[(i * k + u) * k..][..k];
                    let r = (p + u).wrapping_sub(pad);
                    if r >= s.in_h {
                        dst.fill(0.0);
                        continue;
                    }
                    let x_row = &x_img[(i * s.in_h + r) * s.in_w..][..s.in_w];
                    for (v, d) in dst.iter_mut().enumerate() {
                        let c = (q + v).wrapping_sub(pad);
                        *d = if c < s.in_w { x_row[c] } else { 0.0 };
                    }
                }
            }
        }
    }

    /// Folds patch-row gradients back onto one image (the adjoint of `unfold`).
    fn fold(s: &ConvShape, dcols: &[f32], dx_img: &mut [f32]) {
        let (ow, k, pad) = (s.out_w(), s.k, s.pad);
        dx_img.fill(0.0);
        for (pix, row) in dcols.chunks_exact(s.patch_len()).enumerate() {
            let (p, q) = (pix / ow, pix % ow);
            for i in 0..s.in_c {
                for u in 0..k {
                    let r = (p + u).wrapping_sub(pad);
                    if r >= s.in_h {
                        continue;
                    }
                    let src = &row[(i * k + u) * k..][..k];
                    let dx_row = &mut dx_img[(i * s.in_h + r) * s.in_w..][..s.in_w];
                    for (v, &g) in src.iter().enumerate() {
                        let c = (q + v).wrapping_sub(pad);
                        if c < s.in_w {
                            dx_row[c] += g;
                        }
                    }
                }
            }
        }
    }

    /// Patch matrix of the whole batch into `ws.cols`.
    fn unfold_batch<'a>(s: &ConvShape, x: &[f32], cols: &'a mut Vec<f32>, parallel: bool) -> &'a mut [f32] {
        let (img, rows) = (s.in_c * s.in_h * s.in_w, s.out_hw() * s.patch_len());
        let cols = scratch(cols, s.batch * rows);
        if parallel {
            cols.par_chunks_mut(rows)
                .zip(x.par_chunks(img))
                .for_each(|(c, xi)| unfold(s, xi, c));
        } else {
            cols.chunks_mut(rows)
                .zip(x.chunks(img))
                .for_each(|(c, xi)| unfold(s, xi, c));
        }
        cols
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
        let cols = unfold_batch(s, x, &mut ws.cols, parallel);
        // y_t [N*HW, C_out] = cols [N*HW, patch] * W^T [patch, C_out]
        let y_t = scratch(&mut ws.tmp, s.batch * hw * oc);
        let w_t = MatRef::new(w, oc, patch).t();
        let task = |cols: &[f32], y_t: &mut [f32], y: &mut [f32]| {
            let n = y.len() / (oc * hw);
            gemm(MatRef::new(cols, n * hw, patch), w_t, 0.0, y_t, oc);
            // transpose each image's [HW, C_out] to [C_out, HW] and add the bias
            for (y_img, yt_img) in y.chunks_exact_mut(oc * hw).zip(y_t.chunks_exact(oc * hw)) {
                for (o, y_map) in y_img.chunks_exact_mut(hw).enumerate() {
                    for (pix, v) in y_map.iter_mut().enumerate() {
                        *v = yt_img[pix * oc + o] + b[o];
                    }
                }
            }
        };
        if parallel {
            let per = images_per_task(s.batch);
            cols.par_chunks(per * hw * patch)
                .zip(y_t.par_chunks_mut(per * hw * oc))
                .zip(y.par_chunks_mut(per * oc * hw))
                .for_each(|((c, yt), y)| task(c, yt, y));
        } else {
            task(cols, y_t, y);
        }
    }

    pub fn x_backward(
        s: &ConvShape,
        w: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        ws: &mut ConvWorkspace,
        parallel: bool,
    ) {
        let (hw, patch, oc) = (s.out_hw(), s.patch_len(), s.out_c);
        let img = s.in_c * s.in_h * s.in_w;
        // dy_t [N*HW, C_out]: each image's dy transposed
        let dy_t = scratch(&mut ws.tmp, s.batch * hw * oc);
        let dcols = scratch(&mut ws.cols, s.batch * hw * patch);
        let task = |dy: &[f32], dy_t: &mut [f32], dcols: &mut [f32], dx: &mut [f32]| {
            let n = dy.len() / (oc * hw);
            transpose_images(dy, dy_t, oc, hw);
            // dcols [n*HW, patch] = dy_t [n*HW, C_out] * W [C_out, patch]
            gemm(
                MatRef::new(dy_t, n * hw, oc),
                MatRef::new(w, oc, patch),
                0.0,
                dcols,
                patch,
            );
            for (dc, dxi) in dcols.chunks_exact(hw * patch).zip(dx.chunks_exact_mut(img)) {
                fold(s, dc, dxi);
            }
        };
        if parallel {
            let per = images_per_task(s.batch);
            dy.par_chunks(per * oc * hw)
                .zip(dy_t.par_chunks_mut(per * hw * oc))
                .zip(dcols.par_chunks_mut(per * hw * patch))
                .zip(dx.par_chunks_mut(per * img))
                .for_each(|(((dy, dy_t), dc), dx)| task(dy, dy_t, dc, dx));
        } else {
            task(dy, dy_t, dcols, dx);
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
        let cols = unfold_batch(s, x, &mut ws.cols, parallel);
        let dy_t = scratch(&mut ws.tmp, s.batch * hw * oc);
        transpose_images(dy, dy_t, oc, hw);
        let (dy_t, cols) = (&*dy_t, &*cols);
        // dW [C_out, patch] = dy_t^T [C_out, N*HW] * cols [N*HW, patch]; in parallel,
        // each task takes a block of output channels (rows of dW) over the whole batch.
        let task = |o0: usize, dw_rows: &mut [f32], db_rows: &mut [f32]| {
            let m = db_rows.len();
            let a = MatRef {
                data: &dy_t[o0..],
                rows: m,
                cols: s.batch * hw,
                rs: 1,
                cs: oc,
            };
            gemm(a, MatRef::new(cols, s.batch * hw, patch), 0.0, dw_rows, patch);
            for (j, g) in db_rows.iter_mut().enumerate() {
                *g = dy_t[o0 + j..].iter().step_by(oc).sum();
            }
        };
        if parallel {
            let rows = oc.div_ceil(rayon::current_num_threads()).max(1);
            dw.par_chunks_mut(rows * patch)
                .zip(db.par_chunks_mut(rows))
                .enumerate()
                .for_each(|(t, (dw, db))| task(t * rows, dw, db));
        } else {
            task(0, dw, db);
        }
    }

    /// `[n, C, HW]` -> `[n*HW, C]`, image by image.
    fn transpose_images(src: &[f32], dst: &mut [f32], c: usize, hw: usize) {
        for (s_img, d_img) in src.chunks_exact(c * hw).zip(dst.chunks_exact_mut(c * hw)) {
            for (ch, map) in s_img.chunks_exact(hw).enumerate() {
                for (pix, &v) in map.iter().enumerate() {
                    d_img[pix * c + ch] = v;
                }
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
}
