//! 2x2 pooling with stride 2 over `[N, C, H, W]` -> `[N, C, H/2, W/2]`
//! (an odd last row or column is dropped).
//!
//! - average: `y = (x00 + x01 + x10 + x11) / 4`
//! - max: `y = max(...)`, with the winner's position (0..4, row-major in the window)
//!   kept in `argmax` for the backward pass.

use crate::interleaved::{Lanes, LANES};
use crate::simd::{with_isa, Simd};

/// Geometry of a 2x2, stride-2 pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// Images in the batch.
    pub batch: usize,
    /// Channels (maps per image).
    pub c: usize,
    /// Input height (even).
    pub h: usize,
    /// Input width (even).
    pub w: usize,
}

impl PoolShape {
    /// Output height, `h / 2`.
    pub fn out_h(&self) -> usize {
        self.h / 2
    }
    /// Output width, `w / 2`.
    pub fn out_w(&self) -> usize {
        self.w / 2
    }
    /// Elements of the input, NCHW.
    pub fn x_len(&self) -> usize {
        self.batch * self.c * self.h * self.w
    }
    /// Elements of the output, NCHW.
    pub fn y_len(&self) -> usize {
        self.batch * self.c * self.out_h() * self.out_w()
    }
    /// Number of maps (`batch * c`).
    pub fn maps(&self) -> usize {
        self.batch * self.c
    }
}

/// Calls `f(map, top_row_start, bottom_row_start, out_row_start)` for every output
/// row: the input rows `2p` and `2p + 1` of map `map` (`n * C + c`) feed output row
/// `p`. The kernels then walk the rows in pairs of columns, a form that vectorises
/// (one window at a time through four computed indices ran 2.4x slower for
/// average pooling, 3.8x for max pooling: kernel bench, batch 256).
#[inline(always)]
pub(crate) fn for_each_row_pair(s: &PoolShape, mut f: impl FnMut(usize, usize, usize, usize)) {
    let (oh, ow) = (s.out_h(), s.out_w());
    for m in 0..s.maps() {
        for p in 0..oh {
            let top = m * s.h * s.w + 2 * p * s.w;
            f(m, top, top + s.w, (m * oh + p) * ow);
        }
    }
}

/// The two input rows of output row `(top, bottom)` as pairs of columns, the
/// window of output column `q` being `top[q]` and `bottom[q]`.
#[inline(always)]
pub(crate) fn window_rows<'a>(
    s: &PoolShape,
    x: &'a [f32],
    top: usize,
    bottom: usize,
) -> (std::slice::ChunksExact<'a, f32>, std::slice::ChunksExact<'a, f32>) {
    let w = 2 * s.out_w();
    (x[top..][..w].chunks_exact(2), x[bottom..][..w].chunks_exact(2))
}

/// Do the 2x2 windows tile each map exactly (no odd last row or column)? Then a
/// map's windows, row after row, are the consecutive pairs of its row-pair sums
/// ([`window_sums_of`]). (Maps of no columns go row pair by row pair: no window.)
pub(crate) fn even_sizes(s: &PoolShape) -> bool {
    s.h.is_multiple_of(2) && s.w.is_multiple_of(2) && s.w > 0
}

/// What a window adds up: its values, or their squares (the Gauss-Newton rule's
/// second derivatives of a coefficient shared by the window's four inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Terms {
    Values,
    Squares,
}

impl Terms {
    #[inline(always)]
    pub(crate) fn of(self, v: f32) -> f32 {
        match self {
            Terms::Values => v,
            Terms::Squares => v * v,
        }
    }

    #[inline(always)]
    fn of_register<S: Simd>(self, s: S, r: S::R) -> S::R {
        match self {
            Terms::Values => r,
            Terms::Squares => s.mul(r, r),
        }
    }
}

/// Maps of [`even_sizes`] are walked in blocks of whole maps of about this many
/// input values: long runs for the registers (S4's maps of 10 x 10 hold 100),
/// while a block's intermediate sums stay in the L1 cache.
const BLOCK_VALUES: usize = 4096;

/// How many maps of `map_len` values make a block ([`BLOCK_VALUES`]).
#[inline(always)]
pub(crate) fn maps_per_block(map_len: usize) -> usize {
    (BLOCK_VALUES / map_len.max(1)).max(1)
}

/// The 2x2 window sums of `terms` of `x`, maps `[M, H, W]` of [`even_sizes`],
/// into `sums [M, H/2, W/2]` (map after map, row after row), in two passes of
/// whole registers over the maps together (rows of 28 or 10 values, and output
/// rows of 14 or 5, are too short to vectorise one by one):
///
/// 1. each pair of rows added, `vsum[r, c] = x[2r, c] + x[2r + 1, c]`, into
///    `vsum [M H/2, W]` (it needs `S::W` values more than that: a register's
///    last lanes may run past a row into the next one's place, written after);
/// 2. the consecutive pairs of `vsum` ([`Simd::add_pairs`]): since `W` is even,
///    no pair straddles two rows, so they are the windows in order.
///
/// Each window is `(x00 + x10) + (x01 + x11)`, one add at a time, whatever the
/// instruction set. (S4's forward pass at batch 1 on a Zen 4 with AVX-512, a
/// throwaway harness, best of 25 rounds: 421-429 ns map by map with the compiler's
/// loop over each row pair, 251-253 ns so.)
#[inline(always)]
pub(crate) fn window_sums_of<S: Simd>(
    s: S,
    w: usize,
    x: &[f32],
    terms: Terms,
    vsum: &mut [f32],
    sums: &mut [f32],
) {
    let rows = x.len() / (2 * w);
    assert!(
        vsum.len() >= rows * w + S::W,
        "window sums: vsum needs a register of room"
    );
    // registers per row (the last may write past the row, into the next one's
    // place, written after it), and the row pairs whose registers read only
    // inside x
    let per_row = w.div_ceil(S::W);
    let whole = rows_that_fit(rows, |r| (2 * r + 1) * w + per_row * S::W <= x.len());
    for r in 0..whole {
        let (top, bottom, out) = (2 * r * w, (2 * r + 1) * w, r * w);
        for c in (0..per_row).map(|j| j * S::W) {
            // SAFETY: r < whole, so bottom + c + W <= bottom + per_row W <=
            // x.len(), and out + c + W <= rows w + W <= vsum.len() (asserted);
            // unchecked, the loop is its loads, adds and store
            let (t, u) = unsafe {
                (
                    x.get_unchecked(top + c..top + c + S::W),
                    x.get_unchecked(bottom + c..bottom + c + S::W),
                )
            };
            let sum = s.add(terms.of_register(s, s.load(t)), terms.of_register(s, s.load(u)));
            s.store(sum, unsafe { vsum.get_unchecked_mut(out + c..out + c + S::W) });
        }
    }
    for r in whole..rows {
        let (t, u) = (&x[2 * r * w..][..w], &x[(2 * r + 1) * w..][..w]);
        for ((v, &t), &u) in vsum[r * w..][..w].iter_mut().zip(t).zip(u) {
            *v = terms.of(t) + terms.of(u);
        }
    }
    let vsum = &vsum[..rows * w];
    let n = sums.len().min(vsum.len() / 2);
    let whole = n - n % S::W;
    // whole registers, each slice cut to its length: no bounds check in the loop
    // (indexed by `i`, it checked `2 i` every register: S2's forward pass at
    // batch 256, one thread, 121 against 92 us for 2abe04d's loop, which the
    // compiler had vectorised itself)
    for (out, pairs) in sums[..whole]
        .chunks_exact_mut(S::W)
        .zip(vsum.chunks_exact(2 * S::W))
    {
        s.store(s.add_pairs(pairs), out);
    }
    for (s, pair) in sums[whole..n].iter_mut().zip(vsum[2 * whole..].chunks_exact(2)) {
        *s = pair[0] + pair[1];
    }
}

/// An odd last row or column is dropped by the 2x2 windows: it gets no gradient.
/// (The rest of `dx` is overwritten by the backward kernels.)
#[inline(always)]
fn zero_dropped_edge(s: &PoolShape, dx: &mut [f32]) {
    if s.h % 2 == 1 || s.w % 2 == 1 {
        dx.fill(0.0);
    }
}

fn check(s: &PoolShape, x: usize, y: usize) {
    assert_eq!(
        (x, y),
        (s.x_len(), s.y_len()),
        "pooling: slice lengths do not match the shape"
    );
}

/// Average pooling forward.
pub fn avg_forward(s: &PoolShape, x: &[f32], y: &mut [f32]) {
    with_isa!(_s => {
        check(s, x.len(), y.len());
        for_each_row_pair(s, |_, top, bottom, out| {
            let (top, bottom) = window_rows(s, x, top, bottom);
            for ((y, t), u) in y[out..][..s.out_w()].iter_mut().zip(top).zip(bottom) {
                *y = 0.25 * (t[0] + t[1] + u[0] + u[1]);
            }
        });
    })
}

/// [`avg_forward`] on up to 16 images interleaved value by value
/// ([`crate::interleaved`]): `x [C, H, W, 16]` into `y [C, H/2, W/2, 16]`
/// (`s.batch` is not used), each lane the value [`avg_forward`] gives its image.
///
/// ```
/// use tensor_ops::interleaved::Lanes;
/// use tensor_ops::pool::{self, PoolShape};
///
/// let s = PoolShape { batch: 1, c: 1, h: 2, w: 2 };
/// let x = [Lanes([1.0; 16]), Lanes([2.0; 16]), Lanes([3.0; 16]), Lanes([6.0; 16])];
/// let mut y = [Lanes::ZERO];
/// pool::avg_forward_interleaved(&s, &x, &mut y);
/// assert_eq!(y[0].0, [3.0; 16]);
/// ```
pub fn avg_forward_interleaved(s: &PoolShape, x: &[Lanes], y: &mut [Lanes]) {
    interleaved_windows(s, x, y, |[t0, t1, u0, u1]| 0.25 * (t0 + t1 + u0 + u1));
}

/// [`max_forward`] on up to 16 images interleaved value by value, as
/// [`avg_forward_interleaved`]: the maxima only (no argmax is kept: for
/// inference).
pub fn max_forward_interleaved(s: &PoolShape, x: &[Lanes], y: &mut [Lanes]) {
    interleaved_windows(s, x, y, |[t0, t1, u0, u1]| {
        // max_forward's running maximum
        let mut best = t0;
        for v in [t1, u0, u1] {
            best = if v > best { v } else { best };
        }
        best
    });
}

/// `y = window(top left, top right, bottom left, bottom right)` lane by lane for
/// every window of interleaved maps.
#[inline(always)]
fn interleaved_windows(s: &PoolShape, x: &[Lanes], y: &mut [Lanes], window: impl Fn([f32; 4]) -> f32) {
    let one = PoolShape { batch: 1, ..*s };
    check(&one, x.len(), y.len());
    let ow = one.out_w();
    with_isa!(_s => {
        for_each_row_pair(&one, #[inline(always)] |_, top, bottom, out| {
            let (top, bottom) = (&x[top..][..2 * ow], &x[bottom..][..2 * ow]);
            for ((y, t), u) in y[out..][..ow].iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)) {
                for l in 0..LANES {
                    y.0[l] = window([t[0].0[l], t[1].0[l], u[0].0[l], u[1].0[l]]);
                }
            }
        });
    })
}

/// Average pooling backward: each input of a window gets a quarter of its gradient.
pub fn avg_x_backward(s: &PoolShape, dy: &[f32], dx: &mut [f32]) {
    with_isa!(s_ => {
        avg_spread(s_, s, dy, dx, 0.25);
    })
}

/// Average pooling second derivatives: the weights 1/4 enter squared, 1/16.
pub fn avg_x_backward_second(s: &PoolShape, d2y: &[f32], d2x: &mut [f32]) {
    with_isa!(s_ => {
        avg_spread(s_, s, d2y, d2x, 0.0625);
    })
}

#[inline(always)]
fn avg_spread<S: Simd>(s_: S, s: &PoolShape, dy: &[f32], dx: &mut [f32], factor: f32) {
    spread(s_, s, dy, dx, |_| factor);
}

/// `dx = factor(channel) * dy` for each of a window's four inputs (average
/// pooling, LeNet's subsampling).
#[inline(always)]
pub(crate) fn spread<S: Simd>(
    s_: S,
    s: &PoolShape,
    dy: &[f32],
    dx: &mut [f32],
    factor: impl Fn(usize) -> f32,
) {
    check(s, dx.len(), dy.len());
    if even_sizes(s) {
        return spread_even(s_, s, dy, dx, factor);
    }
    zero_dropped_edge(s, dx);
    let ow = s.out_w();
    for_each_row_pair(s, |m, top, bottom, out| {
        let k = factor(m % s.c);
        // one input row at a time (both rows in one loop ran 1.6x slower)
        for row in [top, bottom] {
            spread_row(&mut dx[row..][..2 * ow], &dy[out..][..ow], k);
        }
    });
}

/// `k * dy[q]` into both `dx_row[2 q]` and `dx_row[2 q + 1]`: one input row of
/// the windows of an output row, value by value.
#[inline(always)]
fn spread_row(dx_row: &mut [f32], dy_row: &[f32], k: f32) {
    for (pair, &g) in dx_row.chunks_exact_mut(2).zip(dy_row) {
        pair.fill(k * g);
    }
}

/// How many rows, from the first, pass `fits` (true for a prefix of the rows:
/// those whose registers stay inside their buffers).
#[inline(always)]
fn rows_that_fit(rows: usize, fits: impl Fn(usize) -> bool) -> usize {
    (0..rows).rev().find(|&r| fits(r)).map_or(0, |r| r + 1)
}

/// [`spread`] for [`even_sizes`]: each output row's `factor * dy` written twice
/// over each of its two input rows, half a register of `dy` at a time
/// ([`Simd::pairs_of`]). Rows of 28 or 10 values are shorter than a register or
/// two: a register may run past its row into the rows after, which are written
/// later (rows go in order), so only the last ones, where a register would run
/// past `dx` or read past `dy`, are written value by value. (At batch 1 on a Zen 4
/// with AVX-512, a throwaway harness, best of 25 rounds: S2 448-460 ns and S4
/// 317 ns for a scaled copy of `dy` spread into a scratch row map by map, then
/// copied to both input rows; 284-294 and 237-239 ns so.)
#[inline(always)]
fn spread_even<S: Simd>(s_: S, s: &PoolShape, dy: &[f32], dx: &mut [f32], factor: impl Fn(usize) -> f32) {
    let (w, oh, ow) = (s.w, s.out_h(), s.out_w());
    let half = S::W / 2;
    // registers per output row, and how far the last one reads into dy and
    // writes into dx from the row's start
    let per_row = ow.div_ceil(half);
    let (dy_reach, dx_reach) = (per_row * half, 2 * (per_row - 1) * half + S::W);
    // the output rows whose registers all stay inside dy and dx
    let fits = |r: usize| r * ow + dy_reach <= dy.len() && (2 * r + 1) * w + dx_reach <= dx.len();
    let whole = rows_that_fit(s.maps() * oh, fits);
    // the maps' channels in turn, without a division per map
    let channels = (0..s.c).cycle().take(s.maps());
    for (m, c) in channels.enumerate() {
        let k = factor(c);
        let k_reg = s_.splat(k);
        for r in m * oh..(m + 1) * oh {
            let (top, bottom) = (2 * r * w, (2 * r + 1) * w);
            if r >= whole {
                let row = &dy[r * ow..][..ow];
                spread_row(&mut dx[top..][..w], row, k);
                spread_row(&mut dx[bottom..][..w], row, k);
                continue;
            }
            // last register first: the top row's last one may run into the
            // bottom row's first, written after it
            for j in (0..per_row).rev() {
                let (from, to) = (r * ow + j * half, 2 * j * half);
                // SAFETY: r < whole, so from + half <= r ow + dy_reach <= dy.len()
                // and bottom + to + W <= bottom + dx_reach <= dx.len() (unchecked:
                // the loop is its load, permute, multiply and stores)
                let twice = s_.mul(k_reg, s_.pairs_of(unsafe { dy.get_unchecked(from..from + half) }));
                s_.store(twice, unsafe { dx.get_unchecked_mut(top + to..top + to + S::W) });
                s_.store(twice, unsafe {
                    dx.get_unchecked_mut(bottom + to..bottom + to + S::W)
                });
            }
        }
    }
}

/// Max pooling forward; `argmax[o]` records which of the 4 inputs won (first on
/// ties; 0, 1 the top row, 2, 3 the bottom one).
pub fn max_forward(s: &PoolShape, x: &[f32], y: &mut [f32], argmax: &mut [u8]) {
    with_isa!(s_ => {
        check(s, x.len(), y.len());
        assert_eq!(argmax.len(), y.len());
        let ow = s.out_w();
        if even_sizes(s) {
            max_windows_even(s_, s.w, x, y, argmax);
        } else {
            for_each_row_pair(s, |_, top, bottom, out| {
                let (top, bottom) = (&x[top..][..2 * ow], &x[bottom..][..2 * ow]);
                max_windows_of_row(top, bottom, &mut y[out..][..ow], &mut argmax[out..][..ow]);
            });
        }
    })
}

/// The windows of one output row, from its two input rows of `2 * y.len()`
/// values: the spec of [`max_forward`], one window after the other.
#[inline(always)]
fn max_windows_of_row(top: &[f32], bottom: &[f32], y: &mut [f32], argmax: &mut [u8]) {
    let outs = y.iter_mut().zip(argmax);
    for ((y, a), (t, u)) in outs.zip(top.chunks_exact(2).zip(bottom.chunks_exact(2))) {
        // the running maximum as selects rather than branches
        let (mut best, mut at) = (t[0], 0u8);
        for (k, v) in [(1, t[1]), (2, u[0]), (3, u[1])] {
            let wins = v > best;
            best = if wins { v } else { best };
            at = if wins { k } else { at };
        }
        *y = best;
        *a = at;
    }
}

/// How [`max_windows_even`] and [`max_spread_even`] walk maps of [`even_sizes`]
/// with rows of `w` values, a register of `S::W` windows at a time.
struct RowPairs {
    /// Windows per output row.
    ow: usize,
    /// Row pairs (output rows) of all the maps.
    rows: usize,
    /// Registers per output row.
    per_row: usize,
    /// The row pairs, from the first, whose registers stay inside the input
    /// (`input_len` values, two registers of it per register of windows) and
    /// the output (`output_len`).
    whole: usize,
}

#[inline(always)]
fn row_pairs<S: Simd>(w: usize, input_len: usize, output_len: usize) -> RowPairs {
    let (ow, rows) = (w / 2, input_len / (2 * w));
    let per_row = ow.div_ceil(S::W);
    let whole = rows_that_fit(rows, |r| {
        (2 * r + 1) * w + 2 * per_row * S::W <= input_len && r * ow + per_row * S::W <= output_len
    });
    RowPairs {
        ow,
        rows,
        per_row,
        whole,
    }
}

/// [`max_forward`] for [`even_sizes`], rows of `w` values: each output row's
/// windows a register at a time, the four values of `W` windows split from the
/// two input rows by [`Simd::evens_odds`] and the running maximum taken lane by
/// lane in [`max_windows_of_row`]'s order (the same bits). Output rows of 14 or
/// 5 values are shorter than a register or two, so a register may run past its
/// row into the rows after (read from `x`, written into `y` and `argmax`, which
/// the later rows overwrite); only the last rows, whose registers would run past
/// `x` or `y`, go window by window. (`layer_times -- 1 256 modern` on a Zen 3
/// with AVX2: S2's forward pass 385 -> 194-207 us, S4's 200 -> 97-102, against
/// the compiler's vectorisation of [`max_windows_of_row`], which left 6 of S2's
/// 14 windows per row, and all 5 of S4's, to scalar code.)
#[inline(always)]
fn max_windows_even<S: Simd>(s_: S, w: usize, x: &[f32], y: &mut [f32], argmax: &mut [u8]) {
    let RowPairs {
        ow,
        rows,
        per_row,
        whole,
    } = row_pairs::<S>(w, x.len(), y.len());
    let (zero, indices) = (s_.splat(0.0), [1.0, 2.0, 3.0].map(|k| s_.splat(k)));
    for r in 0..whole {
        let (top, bottom, out) = (2 * r * w, (2 * r + 1) * w, r * ow);
        for c in (0..per_row).map(|j| j * S::W) {
            let (t0, t1) = s_.evens_odds(&x[top + 2 * c..]);
            let (u0, u1) = s_.evens_odds(&x[bottom + 2 * c..]);
            let (mut best, mut at) = (t0, zero);
            for (k, v) in indices.into_iter().zip([t1, u0, u1]) {
                at = s_.select_gt(v, best, k, at);
                best = s_.select_gt(v, best, v, best);
            }
            s_.store(best, &mut y[out + c..]);
            s_.store_bytes(at, &mut argmax[out + c..]);
        }
    }
    for r in whole..rows {
        let (top, bottom, out) = (&x[2 * r * w..][..w], &x[(2 * r + 1) * w..][..w], r * ow);
        max_windows_of_row(top, bottom, &mut y[out..][..ow], &mut argmax[out..][..ow]);
    }
}

/// Max pooling backward: the gradient goes to the window's winner only. The same
/// routing serves second derivatives (the winner's weight is 1, and 1^2 = 1).
pub fn max_x_backward(s: &PoolShape, argmax: &[u8], dy: &[f32], dx: &mut [f32]) {
    with_isa!(s_ => {
        check(s, dx.len(), dy.len());
        assert_eq!(argmax.len(), dy.len());
        let ow = s.out_w();
        if even_sizes(s) {
            max_spread_even(s_, s.w, argmax, dy, dx);
        } else {
            zero_dropped_edge(s, dx);
            for_each_row_pair(s, |_, top, bottom, out| {
                let (dy, argmax) = (&dy[out..][..ow], &argmax[out..][..ow]);
                max_spread_row(argmax, dy, &mut dx[top..][..2 * ow], 0);
                max_spread_row(argmax, dy, &mut dx[bottom..][..2 * ow], 2);
            });
        }
    })
}

/// One input row's gradient, from its output row's: window `q`'s gradient to
/// `dx[2 q]` if its winner is `first`, to `dx[2 q + 1]` if it is `first + 1`
/// (`first` 0 for the top row, 2 for the bottom one), 0 elsewhere: the spec of
/// [`max_x_backward`], selected rather than branched to.
#[inline(always)]
fn max_spread_row(argmax: &[u8], dy: &[f32], dx: &mut [f32], first: u8) {
    for (d, (&g, &a)) in dx.chunks_exact_mut(2).zip(dy.iter().zip(argmax)) {
        d[0] = if a == first { g } else { 0.0 };
        d[1] = if a == first + 1 { g } else { 0.0 };
    }
}

/// [`max_x_backward`] for [`even_sizes`], rows of `w` values: each input row a
/// register of windows at a time, the two selections of [`max_spread_row`] lane
/// by lane, written interleaved ([`Simd::store_interleaved`]). As in
/// [`max_windows_even`], a register may run past its row into the rows after,
/// written later (the top row before the bottom one), and the last rows go
/// window by window. (`layer_times -- 1 256 modern` on a Zen 3 with AVX2: S2's
/// backward pass 249-251 -> 187-207 us, S4's 182-183 -> 107-109.)
#[inline(always)]
fn max_spread_even<S: Simd>(s_: S, w: usize, argmax: &[u8], dy: &[f32], dx: &mut [f32]) {
    let RowPairs {
        ow,
        rows,
        per_row,
        whole,
    } = row_pairs::<S>(w, dx.len(), dy.len());
    let zero = s_.splat(0.0);
    let winners = [0.0, 1.0, 2.0, 3.0].map(|k| s_.splat(k));
    for r in 0..whole {
        let out = r * ow;
        for (row, first) in [(2 * r * w, 0), ((2 * r + 1) * w, 2)] {
            for c in (0..per_row).map(|j| j * S::W) {
                let (g, a) = (s_.load(&dy[out + c..]), s_.load_bytes(&argmax[out + c..]));
                let left = s_.select_eq(a, winners[first], g, zero);
                let right = s_.select_eq(a, winners[first + 1], g, zero);
                s_.store_interleaved(left, right, &mut dx[row + 2 * c..]);
            }
        }
    }
    for r in whole..rows {
        let (dy, argmax) = (&dy[r * ow..][..ow], &argmax[r * ow..][..ow]);
        max_spread_row(argmax, dy, &mut dx[2 * r * w..][..w], 0);
        max_spread_row(argmax, dy, &mut dx[(2 * r + 1) * w..][..w], 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_4x4() {
        let s = PoolShape {
            batch: 1,
            c: 1,
            h: 4,
            w: 4,
        };
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut y = [0.0; 4];
        avg_forward(&s, &x, &mut y);
        assert_eq!(y, [2.5, 4.5, 10.5, 12.5]);
        let mut am = [0u8; 4];
        max_forward(&s, &x, &mut y, &mut am);
        assert_eq!(y, [5.0, 7.0, 13.0, 15.0]);
        assert_eq!(am, [3; 4]);
        let mut dx = [0.0; 16];
        max_x_backward(&s, &am, &[1.0, 2.0, 3.0, 4.0], &mut dx);
        assert_eq!(dx[5], 1.0);
        assert_eq!(dx[15], 4.0);
        assert_eq!(dx.iter().sum::<f32>(), 10.0);
    }

    /// Maps of no rows or no columns have no windows: every kernel returns
    /// without a value to write (and without dividing by the width).
    #[test]
    fn empty_maps_have_no_windows() {
        for (h, w) in [(0, 0), (0, 4), (4, 0), (1, 0), (0, 1)] {
            let s = PoolShape { batch: 2, c: 3, h, w };
            let (x, dy) = (vec![1.0; s.x_len()], vec![1.0; s.y_len()]);
            let (mut y, mut argmax, mut dx) =
                (vec![0.0; s.y_len()], vec![0; s.y_len()], vec![0.0; s.x_len()]);
            avg_forward(&s, &x, &mut y);
            avg_x_backward(&s, &dy, &mut dx);
            max_forward(&s, &x, &mut y, &mut argmax);
            max_x_backward(&s, &argmax, &dy, &mut dx);
            assert!(y.is_empty(), "{h} x {w}");
        }
    }

    #[test]
    fn odd_sizes_drop_the_last_row_and_column() {
        let s = PoolShape {
            batch: 1,
            c: 1,
            h: 3,
            w: 3,
        };
        let x = [1.0, 1.0, 9.0, 1.0, 1.0, 9.0, 9.0, 9.0, 9.0];
        let mut y = [0.0];
        avg_forward(&s, &x, &mut y);
        assert_eq!(y, [1.0]);
    }
}
