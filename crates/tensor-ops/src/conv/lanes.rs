//! Direct convolution with the **batch in the vector lanes**: the images are
//! interleaved value by value (`[C, H, W, L]`), so that every multiply-add of the
//! convolution is a vector FMA — a weight times the same pixel of many images —
//! with no patch matrix, no padding of the output width to a vector size, and
//! nothing computed for the pairs a connection table leaves out.
//!
//! The training kernels take a group of 16 images as planes of `L` images, `L` a
//! register's lanes: one plane of 16 with AVX-512, two planes of 8, one after the
//! other, with AVX2 and the portable path (so that each load fills a register
//! from one cache line). The inference kernel ([`forward_interleaved`]) takes the
//! 16 lanes of [`crate::interleaved`] as they are, and AVX2 runs each output row
//! on lanes 0-7, then 8-15. Each image's sums are the same whichever register
//! holds it.
//!
//! For a plane (the last one padded with zero images):
//! 1. `gather` interleaves the inputs into `x_lanes [C_in, H + 2 pad, W + 2 pad, L]`,
//!    zero borders included, so the convolution below needs no bounds tests;
//! 2. [`conv_valid`] computes `y_lanes [C_out, H_out, W_out, L]`, a strip of output
//!    columns at a time held in registers;
//! 3. `scatter` writes the images back to NCHW.
//!
//! The input gradient is the same kernel on `dy` padded by `K - 1` with the kernel
//! flipped and the channels swapped (a "full" convolution); the weight gradient
//! sums `dy * x` per lane of 16 (plane `b` in lanes `b * L..`) and adds the lanes
//! at the end.
//!
//! Each image's values are computed in the same order whichever lane, plane or
//! group it falls in, and the weight gradient sums per lane of 16 (whatever the
//! register width) and its groups in two fixed halves of the batch, so results
//! depend neither on the thread count nor on the instruction set.

use rayon::prelude::*;
use seq_macro::seq;

use super::{connected, ConnTable, ConvShape, ConvWorkspace};
use crate::interleaved::{
    deinterleave_on as deinterleave, get, interleave_on as interleave, live_halves, set, values, values_mut,
    Lanes as V, LANES, MIN_BATCH,
};
use crate::scratch;
use crate::simd::{with_isa, Isa, Simd};

/// Can the lanes kernel run this shape (`conv::plan` decides whether it does)? From
/// [`MIN_BATCH`] images on.
pub fn applies(s: &ConvShape) -> bool {
    s.batch >= MIN_BATCH
}

/// Per-image geometry of one side of a convolution: `c` maps of `h x w`.
#[derive(Clone, Copy)]
struct Maps {
    c: usize,
    h: usize,
    w: usize,
}

impl Maps {
    fn len(self) -> usize {
        self.c * self.h * self.w
    }
    fn padded(self, pad: usize) -> Maps {
        Maps {
            c: self.c,
            h: self.h + 2 * pad,
            w: self.w + 2 * pad,
        }
    }
}

/// Interleaves up to `L` images `src [count, C, H, W]` into
/// `dst [C, H + 2 pad, W + 2 pad, L]`; borders and missing images are zero.
#[inline(always)]
fn gather<S: Simd, const L: usize>(s: S, m: Maps, pad: usize, src: &[f32], dst: &mut [[f32; L]]) {
    let count = src.len() / m.len();
    if pad == 0 {
        // the images are one contiguous run each
        return interleave(s, (src, m.len(), count), dst);
    }
    // (the closure inlined, or its transposes are compiled without the
    // instruction set: C3's input gradient 2.7x slower)
    for_each_padded_row(
        m,
        pad,
        dst,
        #[inline(always)]
        |at, dst_row| interleave(s, (&src[at..], m.len(), count), dst_row),
    );
}

/// Zeroes the border of each map of `dst [C, H + 2 pad, W + 2 pad, L]` and calls
/// `fill(at, row)` for each row inside it, `at` the row's start in an unpadded map
/// `[C, H, W]`. (Only the border is zeroed: x_backward pads dy by K - 1, and the
/// whole plane is 3x the values at C3.)
#[inline(always)]
fn for_each_padded_row<const L: usize>(
    m: Maps,
    pad: usize,
    dst: &mut [[f32; L]],
    mut fill: impl FnMut(usize, &mut [[f32; L]]),
) {
    let p = m.padded(pad);
    // (as plain floats: `fill([0.0; L])` stores one value of L images at a time,
    // each time reloading the zeros from the stack, where `fill(0.0)` is a memset)
    let zero = |v: &mut [[f32; L]]| v.as_flattened_mut().fill(0.0);
    for (ch, plane) in dst.chunks_exact_mut(p.h * p.w).enumerate() {
        zero(&mut plane[..pad * p.w]);
        zero(&mut plane[(pad + m.h) * p.w..]);
        for padded_row in plane[pad * p.w..(pad + m.h) * p.w].chunks_exact_mut(p.w) {
            zero(&mut padded_row[..pad]);
            zero(&mut padded_row[pad + m.w..]);
        }
        for row in 0..m.h {
            fill(
                (ch * m.h + row) * m.w,
                &mut plane[(row + pad) * p.w + pad..][..m.w],
            );
        }
    }
}

/// The inverse of [`gather`] for the images `dst [count, C, H, W]`: reads the
/// `H x W` window at `(off, off)` of `src [C, H + 2 off, W + 2 off, L]`.
#[inline(always)]
fn scatter<S: Simd, const L: usize>(s: S, m: Maps, off: usize, src: &[[f32; L]], dst: &mut [f32]) {
    let count = dst.len() / m.len();
    if off == 0 {
        return deinterleave(s, &src[..m.len()], (dst, m.len(), count));
    }
    let p = m.padded(off);
    for ch in 0..m.c {
        for row in 0..m.h {
            let at = (ch * m.h + row) * m.w;
            let src_row = &src[(ch * p.h + row + off) * p.w + off..][..m.w];
            deinterleave(s, src_row, (&mut dst[at..], m.len(), count));
        }
    }
}

/// The geometry of a valid (unpadded) convolution on interleaved images:
/// `x [C_in, H, W, L]` into `y [C_out, H-K+1, W-K+1, L]` with `K x K` kernels.
#[derive(Clone, Copy)]
struct Valid {
    x: Maps,
    out_c: usize,
    k: usize,
    /// The rows of `x` that can be non-zero (the others are zero padding, and
    /// are skipped).
    live_rows: (usize, usize),
    /// The columns of `x` that can be non-zero: the first and last strips of a row
    /// skip the zero padding's taps (for the input gradient's "full" convolution,
    /// whose padding is `K - 1` on each side).
    live_cols: (usize, usize),
}

impl Valid {
    fn out_h(&self) -> usize {
        self.x.h + 1 - self.k
    }
    fn out_w(&self) -> usize {
        self.x.w + 1 - self.k
    }
    /// The kernel rows `u` for which input row `p + u` is live.
    fn live_taps(&self, p: usize) -> std::ops::Range<usize> {
        let (lo, hi) = self.live_rows;
        lo.saturating_sub(p)..self.k.min(hi.saturating_sub(p))
    }
}

/// Calls `f::<S, W>(args)` for the run-time strip width `W` in `1..=MAX_STRIP`
/// (each width is its own compiled kernel, with its accumulators in registers);
/// `f::<S, _, M>(args)` passes further generic arguments after `W`.
macro_rules! with_width {
    ($width:expr, $f:ident ::<$S:ty, _ $(, $g:tt)*> ($($arg:expr),*)) => {
        match $width {
            1 => $f::<$S, 1 $(, $g)*>($($arg),*),
            2 => $f::<$S, 2 $(, $g)*>($($arg),*),
            3 => $f::<$S, 3 $(, $g)*>($($arg),*),
            4 => $f::<$S, 4 $(, $g)*>($($arg),*),
            5 => $f::<$S, 5 $(, $g)*>($($arg),*),
            6 => $f::<$S, 6 $(, $g)*>($($arg),*),
            7 => $f::<$S, 7 $(, $g)*>($($arg),*),
            8 => $f::<$S, 8 $(, $g)*>($($arg),*),
            9 => $f::<$S, 9 $(, $g)*>($($arg),*),
            10 => $f::<$S, 10 $(, $g)*>($($arg),*),
            w => unreachable!("strip width {w} > MAX_STRIP"),
        }
    };
}

/// `y[o, p, q] = b[o] + sum_{i: conn(o, i)} sum_{u,v} w[o, i, u, v] * x[i, p+u, q+v]`,
/// `w [C_out, C_in, K, K]`, for the first `count` images of the group, on
/// instruction set `isa`. Compiled for the sets whose registers are no wider
/// than the `L` lanes: a training plane of 8 never runs on AVX-512, an
/// inference group of 16 runs on any. (Never inlined: it is called once per
/// group of images, and shows in profiles under its own name.)
#[inline(never)]
fn conv_valid<const L: usize>(
    isa: Isa,
    g: Valid,
    conn: impl Fn(usize, usize) -> bool + Copy,
    w: &[f32],
    b: Option<&[f32]>,
    (x, y): (&[[f32; L]], &mut [[f32; L]]),
    count: usize,
) {
    with_isa!(isa; s, |width| width <= L => conv_valid_on(s, g, conn, w, b, (x, y), count))
}

/// [`conv_valid`] with token `s`.
#[inline(always)]
fn conv_valid_on<S: Simd, const L: usize>(
    s: S,
    g: Valid,
    conn: impl Fn(usize, usize) -> bool + Copy,
    w: &[f32],
    b: Option<&[f32]>,
    (x, y): (&[[f32; L]], &mut [[f32; L]]),
    count: usize,
) {
    let (oh, ow) = (g.out_h(), g.out_w());
    // when a register holds half the lanes (AVX2 on the 16 lanes of an
    // inference group), each output row in both halves before the next row: the
    // input rows it reads are still in L1 for the second half (the halves
    // outermost read the group's whole input twice, each time half of every
    // cache line)
    for o in 0..g.out_c {
        let bias = b.map_or(0.0, |b| b[o]);
        let mut p = 0;
        while p < oh {
            // (`const`: the compiler does not even generate the pair's code for
            // an instruction set with fewer registers)
            if const { S::REGISTERS >= 32 } && p + 1 < oh && g.k == LENET_K {
                // two rows at a time where their accumulators and weights fit
                // in the registers (AVX-512)
                let (top, bottom) = y[(o * oh + p) * ow..][..2 * ow].split_at_mut(ow);
                for h in live_halves::<S>(count, L) {
                    for q in strips(ow, MAX_STRIP) {
                        let out = (&mut top[q.clone()], &mut bottom[q.clone()]);
                        with_width!(
                            q.len(),
                            strip_pair::<S, _, L>(s, h, g, conn, w, bias, x, (o, p, q.start), out)
                        );
                    }
                }
                p += 2;
                continue;
            }
            let y_row = &mut y[(o * oh + p) * ow..][..ow];
            // the row in strips of at most MAX_STRIP columns: every strip's
            // accumulators stay in registers while the input values that feed
            // it stream past, and wide strips give the FMA units independent
            // work (a strip of 1 is a chain of dependent FMAs: C3's rows cut
            // 8 + 1 + 1 spent a third of their time on the two single columns)
            for h in live_halves::<S>(count, L) {
                for q in strips(ow, MAX_STRIP) {
                    let out = &mut y_row[q.clone()];
                    with_width!(
                        q.len(),
                        strip::<S, _, L>(s, h, g, conn, w, bias, x, (o, p, q.start), out)
                    );
                }
            }
            p += 1;
        }
    }
}

/// `0..len` cut into the fewest strips of at most `max` (at most [`MAX_STRIP`]),
/// of equal widths (to one).
fn strips(len: usize, max: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    debug_assert!(max <= MAX_STRIP);
    let n = len.div_ceil(max);
    (0..n).map(move |j| j * len / n..(j + 1) * len / n)
}

/// Widest strip of output values: its 10 accumulators, a 5 x 5 kernel row's 5
/// weights and one input value fill AVX2's 16 vector registers ([`kernel_row`];
/// AVX-512's 32 hold two rows' strips instead ([`strip_pair`]): C1's rows measured
/// no faster in strips of 14, and with the older output-stationary loop strips of
/// 14 spilled accumulators to the stack, while 8 left FMA latency exposed).
const MAX_STRIP: usize = 10;

/// Input values of the widest strip: [`MAX_STRIP`] outputs under a 5 x 5 kernel
/// row (the count [`kernel_row`]'s written-out loop covers).
const MAX_ROW: usize = MAX_STRIP + LENET_K - 1;
const _: () = assert!(
    MAX_ROW == 14,
    "the `seq!` loops of kernel_row and kernel_row_pair run to 14"
);

/// `Q` consecutive outputs `y[o, p, q0..q0+Q]` of [`conv_valid`], lanes
/// `h..h + S::W`.
///
/// The kernel row's variant (the kernel size, the [`Skip`]) is chosen once per
/// strip, and each variant gets its own copy of the loops over input maps and
/// kernel rows ([`strip_rows`]): chosen inside the loop, as a jump table per
/// kernel row, the variants shared one register allocation, and one of them
/// reloaded a spilled register in every iteration of the others (`layer_times
/// -- 1 256 classic c3` under AVX2 on a Zen 3, perf: the reload and the
/// indirect jump in C3's hottest loop).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn strip<S: Simd, const Q: usize, const L: usize>(
    s: S,
    h: usize,
    g: Valid,
    conn: impl Fn(usize, usize) -> bool,
    w: &[f32],
    bias: f32,
    x: &[[f32; L]],
    (o, p, q0): (usize, usize, usize),
    out: &mut [[f32; L]],
) {
    const K: usize = LENET_K;
    macro_rules! rows {
        ($row:expr) => {
            strip_rows::<S, Q, L>(s, h, g, &conn, bias, x, (o, p, q0), out, $row)
        };
    }
    // the kernel row `w[at..at + K]`, known to be K long
    let w_row = |at: usize| -> &[f32; K] {
        let Ok(w_row) = <&[f32; K]>::try_from(&w[at..][..K]) else {
            unreachable!("a slice of K values")
        };
        w_row
    };
    if g.k != K {
        return rows!(|at, x_row, acc| kernel_row_any(s, h, &w[at..][..g.k], x_row, acc));
    }
    match Skip::of(g, q0, Q + K - 1) {
        Skip::None => rows!(|at, x_row, acc| kernel_row::<S, Q, K, 0, 0>(s, h, w_row(at), x_row, acc)),
        Skip::Left => rows!(|at, x_row, acc| kernel_row::<S, Q, K, FULL_PAD, 0>(s, h, w_row(at), x_row, acc)),
        Skip::Right => {
            rows!(|at, x_row, acc| kernel_row::<S, Q, K, 0, FULL_PAD>(s, h, w_row(at), x_row, acc))
        }
        Skip::Both => {
            rows!(|at, x_row, acc| kernel_row::<S, Q, K, FULL_PAD, FULL_PAD>(s, h, w_row(at), x_row, acc))
        }
    }
}

/// [`strip`]'s loops with the kernel row `row(at, x_row, acc)` (`at`: the kernel
/// row's start in `w`): the accumulators start at `bias`, take every connected
/// input map's live kernel rows in order, and are stored into `out`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn strip_rows<S: Simd, const Q: usize, const L: usize>(
    s: S,
    h: usize,
    g: Valid,
    conn: impl Fn(usize, usize) -> bool,
    bias: f32,
    x: &[[f32; L]],
    (o, p, q0): (usize, usize, usize),
    out: &mut [[f32; L]],
    row: impl Fn(usize, &[[f32; L]], &mut [S::R; Q]),
) {
    let (k, xm) = (g.k, g.x);
    let mut acc = [s.splat(bias); Q];
    let width = Q + k - 1;
    for i in (0..xm.c).filter(|&i| conn(o, i)) {
        for u in g.live_taps(p) {
            let x_row = &x[(i * xm.h + p + u) * xm.w + q0..][..width];
            row(((o * xm.c + i) * k + u) * k, x_row, &mut acc);
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        set(s, o, h, a);
    }
}

/// [`strip`] for output rows `p` and `p + 1` at once, for 5 x 5 kernels: each
/// input row is loaded once for both (through kernel rows `u` and `u - 1`), and
/// twice the sums are in flight. Each output adds its taps in [`strip`]'s order:
/// the same bits. (C3's input gradient runs in strips of 7, whose sums each take
/// 5 dependent multiply-adds per kernel row: one row at a time waited on them.
/// One thread, batch 16, throwaway harness, alternating: 35.9-38.1 -> 26.5 us,
/// C1's and C3's forward passes unchanged; written apart from [`strip`], since a
/// version generic over the number of rows kept its accumulators in memory and ran
/// 2-3x slower.)
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn strip_pair<S: Simd, const Q: usize, const L: usize>(
    s: S,
    h: usize,
    g: Valid,
    conn: impl Fn(usize, usize) -> bool,
    w: &[f32],
    bias: f32,
    x: &[[f32; L]],
    (o, p, q0): (usize, usize, usize),
    (out0, out1): (&mut [[f32; L]], &mut [[f32; L]]),
) {
    const K: usize = LENET_K;
    let xm = g.x;
    let (mut acc0, mut acc1) = ([s.splat(bias); Q], [s.splat(bias); Q]);
    let width = Q + K - 1;
    let skip = Skip::of(g, q0, width);
    let (taps0, taps1) = (g.live_taps(p), g.live_taps(p + 1));
    for i in (0..xm.c).filter(|&i| conn(o, i)) {
        let Ok(kernel) = <&[f32; K * K]>::try_from(&w[(o * xm.c + i) * K * K..][..K * K]) else {
            unreachable!("a slice of K * K values")
        };
        let rows: &[[f32; K]; K] = bytemuck::cast_ref(kernel);
        let w_row = |u: usize| &rows[u];
        for row in taps0.start.min(taps1.start + 1)..taps0.end.max(taps1.end + 1) {
            let x_row = &x[(i * xm.h + p + row) * xm.w + q0..][..width];
            let u0 = Some(row).filter(|u| taps0.contains(u));
            let u1 = row.checked_sub(1).filter(|u| taps1.contains(u));
            macro_rules! taps {
                ($zl:expr, $zr:expr) => {
                    match (u0, u1) {
                        (Some(u0), Some(u1)) => kernel_row_pair::<S, Q, K, { $zl }, { $zr }>(
                            s,
                            h,
                            (w_row(u0), w_row(u1)),
                            x_row,
                            (&mut acc0, &mut acc1),
                        ),
                        (Some(u0), None) => {
                            kernel_row::<S, Q, K, { $zl }, { $zr }>(s, h, w_row(u0), x_row, &mut acc0)
                        }
                        (None, Some(u1)) => {
                            kernel_row::<S, Q, K, { $zl }, { $zr }>(s, h, w_row(u1), x_row, &mut acc1)
                        }
                        (None, None) => {}
                    }
                };
            }
            match skip {
                Skip::Left => taps!(FULL_PAD, 0),
                Skip::Right => taps!(0, FULL_PAD),
                Skip::Both => taps!(FULL_PAD, FULL_PAD),
                Skip::None => taps!(0, 0),
            }
        }
    }
    for (o, a) in out0.iter_mut().zip(acc0) {
        set(s, o, h, a);
    }
    for (o, a) in out1.iter_mut().zip(acc1) {
        set(s, o, h, a);
    }
}

/// [`kernel_row`] for two kernel rows into two strips of outputs from the same
/// input values.
#[inline(always)]
fn kernel_row_pair<
    S: Simd,
    const Q: usize,
    const K: usize,
    const ZEROS_LEFT: usize,
    const ZEROS_RIGHT: usize,
>(
    s: S,
    h: usize,
    (w_row0, w_row1): (&[f32; K], &[f32; K]),
    x_row: &[impl AsRef<[f32]>],
    (acc0, acc1): (&mut [S::R; Q], &mut [S::R; Q]),
) {
    let (mut w0, mut w1) = ([s.splat(0.0); K], [s.splat(0.0); K]);
    for v in 0..K {
        w0[v] = s.splat(w_row0[v]);
        w1[v] = s.splat(w_row1[v]);
    }
    let x_row = &x_row[..Q + K - 1];
    const { assert!(Q + K - 1 <= MAX_ROW) };
    // (written out as in `kernel_row`)
    seq!(J in 0..14 {
        if (ZEROS_LEFT..Q + K - 1 - ZEROS_RIGHT).contains(&J) {
            let xv = get(s, &x_row[J], h);
            for v in 0..K {
                if (v..v + Q).contains(&J) {
                    acc0[J - v] = s.mul_add(w0[v], xv, acc0[J - v]);
                    acc1[J - v] = s.mul_add(w1[v], xv, acc1[J - v]);
                }
            }
        }
    });
}

/// The zero padding on each side of a full convolution with [`LENET_K`]-sized
/// kernels (the input gradient's): `K - 1`.
const FULL_PAD: usize = LENET_K - 1;

/// Which end of a strip's input values [`kernel_row`] skips: the [`FULL_PAD`]
/// zeros of a full convolution's padding. (Measured in one process, alternating,
/// one thread: C3's input gradient at batch 16 from 119.8 to 106.2 µs, at batch 32
/// from 235.5 to 212.7, with the full table from 174.5 to 150.6; same bits.)
#[derive(Clone, Copy)]
enum Skip {
    None,
    Left,
    Right,
    Both,
}

impl Skip {
    /// The zero padding at either end of the `width` input values of a strip at
    /// column `q0`: the first and last strips of a full convolution's rows (K - 1
    /// zeros each at K = 5) skip their taps. A skipped product is `w * 0`, a
    /// signed zero, and adding it leaves every sum but a negative zero unchanged
    /// (the input gradient's sums start at +0 and cannot become -0 short of an
    /// underflow): the same bits either way.
    #[inline(always)]
    fn of(g: Valid, q0: usize, width: usize) -> Skip {
        let dead_left = g.live_cols.0.saturating_sub(q0).min(width);
        let dead_right = (q0 + width).saturating_sub(g.live_cols.1).min(width);
        match (dead_left, dead_right) {
            (FULL_PAD, 0) => Skip::Left,
            (0, FULL_PAD) => Skip::Right,
            (FULL_PAD, FULL_PAD) => Skip::Both,
            // (in the middle of a row, or another padding: every tap)
            _ => Skip::None,
        }
    }
}

/// The kernel size that has its own compiled [`kernel_row`]: LeNet-5's 5 x 5.
const LENET_K: usize = 5;

/// One kernel row's taps into a strip of outputs: `acc[j] += sum_v w_row[v] *
/// x_row[j + v]`, for a kernel size known at compile time.
///
/// Input-stationary: the `K` weights stay in registers, and each of the `Q + K - 1`
/// input values is loaded once and multiplied into the (up to `K`) outputs it
/// feeds. (The output-stationary loop of [`kernel_row_any`] loads each input `K`
/// times; unrolled at a known `K`, the compiler tries to keep the inputs shared
/// between taps in registers instead, runs out of them and spills accumulators.
/// Measured in one process, alternating, one thread, batch 32: C1 forward 34.5 ->
/// 47.0 GFLOP/s, C3 forward 39.9 -> 56.7, C3 input gradient 20.9 -> 29.0.)
/// Each output still adds its taps in the order of `v`, so the sums are the
/// same as [`kernel_row_any`]'s, bit for bit. The first `ZEROS_LEFT` and last
/// `ZEROS_RIGHT` input values are known to be zero and are not read ([`Skip`]).
#[inline(always)]
fn kernel_row<S: Simd, const Q: usize, const K: usize, const ZEROS_LEFT: usize, const ZEROS_RIGHT: usize>(
    s: S,
    h: usize,
    w_row: &[f32; K],
    x_row: &[impl AsRef<[f32]>],
    acc: &mut [S::R; Q],
) {
    // (plain loops rather than `from_fn` closures: everything that touches a
    // register stays inside the kernel compiled for its instruction set)
    let mut w = [s.splat(0.0); K];
    for (w, &wv) in w.iter_mut().zip(w_row) {
        *w = s.splat(wv);
    }
    let x_row = &x_row[..Q + K - 1];
    // fixed trip counts and tests the compiler folds: the accumulators stay in
    // registers only if every index into them is a constant (a loop over the
    // range of taps that each input feeds is not unrolled, and indexes them in
    // memory: 2x slower). The loop over the input values is written out
    // (`seq!`: J = 0, 1, ..., 13, each copy kept or folded away by its test)
    // rather than left for the compiler to unroll: at its default thresholds it
    // unrolled this loop only late, after its last chance to move the
    // accumulators into registers, unless the crate was optimised twice (thin
    // LTO, or cargo's default profile). Under fat LTO C1's and C3's forward
    // passes at batch 16 took 95-96 and 102-103 us instead of 46-47
    // (docs/benchmarks.md, "Build profiles").
    const { assert!(Q + K - 1 <= MAX_ROW) };
    seq!(J in 0..14 {
        if (ZEROS_LEFT..Q + K - 1 - ZEROS_RIGHT).contains(&J) {
            let xv = get(s, &x_row[J], h);
            for v in 0..K {
                // the outputs this input feeds: acc[J - v] for v <= J < v + Q
                if (v..v + Q).contains(&J) {
                    acc[J - v] = s.mul_add(w[v], xv, acc[J - v]);
                }
            }
        }
    });
}

/// [`kernel_row`] for any kernel size: output-stationary, one broadcast weight at
/// a time into all `Q` outputs.
#[inline(always)]
fn kernel_row_any<S: Simd, const Q: usize>(
    s: S,
    h: usize,
    w_row: &[f32],
    x_row: &[impl AsRef<[f32]>],
    acc: &mut [S::R; Q],
) {
    for (v, &wv) in w_row.iter().enumerate() {
        let wv = s.splat(wv);
        for (a, xv) in acc.iter_mut().zip(&x_row[v..v + Q]) {
            *a = s.mul_add(wv, get(s, xv, h), *a);
        }
    }
}

/// Per lane: `dw[o, i, u, v] += sum_{p,q} dy[o, p, q] * x[i, p+u, q+v]` for the
/// connected pairs, `dy [C_out, H-K+1, W-K+1, L]`, for the first `count` images of
/// the plane, whose lanes are `lane0..lane0 + L` of `dw` (the other lanes of `dw`
/// are left as they are), on instruction set `isa` (one of `L` lanes).
#[inline(never)]
fn weight_grad_valid<const L: usize>(
    isa: Isa,
    g: Valid,
    conn: impl Fn(usize, usize) -> bool + Copy,
    (x, dy): (&[[f32; L]], &[[f32; L]]),
    dw: &mut [V],
    (lane0, count): (usize, usize),
) {
    with_isa!(isa; s, |width| width == L => weight_grad_valid_on(s, g, conn, (x, dy), dw, (lane0, count)))
}

/// [`weight_grad_valid`] with token `s`.
#[inline(always)]
fn weight_grad_valid_on<S: Simd, const L: usize>(
    s: S,
    g: Valid,
    conn: impl Fn(usize, usize) -> bool,
    (x, dy): (&[[f32; L]], &[[f32; L]]),
    dw: &mut [V],
    lanes: (usize, usize),
) {
    // the output maps that read input map i two at a time, so that each input
    // value loaded feeds both maps' sums (C3: the 10 maps each input feeds, in 5
    // pairs; C1: its 6 maps in 3); an odd map out alone
    for i in 0..g.x.c {
        let mut unpaired = None;
        for o in (0..g.out_c).filter(|&o| conn(o, i)) {
            match unpaired.take() {
                None => unpaired = Some(o),
                Some(o0) => kernel_grads(s, lanes, g, (x, dy), ([o0, o], i), dw),
            }
        }
        if let Some(o) = unpaired {
            kernel_grads(s, lanes, g, (x, dy), ([o], i), dw);
        }
    }
}

/// Widest strip of taps in [`tap_strip`]: two maps' sums (10) with the two maps'
/// output values and one input value fit in AVX2's 16 vector registers; 25 taps
/// make 5 strips.
const TAP_STRIP: usize = 5;

/// The kernels `dw[o, i]` of the maps `o` in `maps`, all their taps, strip by
/// strip, the lanes of the plane's first `count` images.
#[inline(always)]
fn kernel_grads<S: Simd, const M: usize, const L: usize>(
    s: S,
    lanes: (usize, usize),
    g: Valid,
    (x, dy): (&[[f32; L]], &[[f32; L]]),
    (maps, i): ([usize; M], usize),
    dw: &mut [V],
) {
    for t in strips(g.k * g.k, TAP_STRIP) {
        with_width!(
            t.len(),
            tap_strip::<S, _, M, L>(s, lanes, g, (x, dy), (maps, i, t.start), dw)
        );
    }
}

/// `T` consecutive taps `dw[o, i, t0..t0+T]` (taps numbered `u * K + v`) of
/// [`weight_grad_valid`] for each of the `M` maps `o`, added to `dw`, for the
/// plane's first `count` images. Each input value is loaded once for the `M`
/// maps' sums it enters: a single map's strips cost one load per FMA (pairs
/// measured 1.2x faster for C1 and 1.0-1.3x for C3, batch 32 and 256, than
/// single-map strips of up to 10 taps). Every sum runs over `p`, then `q`, in
/// order, whatever `M` is: the same bits as one map at a time.
#[inline(always)]
fn tap_strip<S: Simd, const T: usize, const M: usize, const L: usize>(
    s: S,
    (lane0, count): (usize, usize),
    g: Valid,
    (x, dy): (&[[f32; L]], &[[f32; L]]),
    (maps, i, t0): ([usize; M], usize, usize),
    dw: &mut [V],
) {
    let (oh, ow, xm, taps) = (g.out_h(), g.out_w(), g.x, g.k * g.k);
    // where each tap reads, relative to the output pixel's top-left input
    let offsets: [usize; T] = std::array::from_fn(|j| (t0 + j) / g.k * xm.w + (t0 + j) % g.k);
    let kernel = |m: usize| (maps[m] * xm.c + i) * taps + t0;
    let x_map = &x[i * xm.h * xm.w..][..xm.h * xm.w];
    for h in live_halves::<S>(count, L) {
        let mut acc = [[s.splat(0.0); T]; M];
        for (m, acc) in acc.iter_mut().enumerate() {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = get(s, &dw[kernel(m) + j], lane0 + h);
            }
        }
        for p in 0..oh {
            let dy_rows: [&[[f32; L]]; M] = std::array::from_fn(|m| &dy[(maps[m] * oh + p) * ow..][..ow]);
            // the input row each tap multiplies this output row with, cut to its
            // length: the loop below indexes them without bounds checks
            let x_rows: [&[[f32; L]]; T] = std::array::from_fn(|j| &x_map[p * xm.w + offsets[j]..][..ow]);
            for q in 0..ow {
                let mut d = [s.splat(0.0); M];
                for (d, dy_row) in d.iter_mut().zip(&dy_rows) {
                    *d = get(s, &dy_row[q], h);
                }
                for (j, x_row) in x_rows.iter().enumerate() {
                    let xv = get(s, &x_row[q], h);
                    for (acc, &d) in acc.iter_mut().zip(&d) {
                        acc[j] = s.mul_add(d, xv, acc[j]);
                    }
                }
            }
        }
        for (m, acc) in acc.iter().enumerate() {
            for (out, &a) in dw[kernel(m)..][..T].iter_mut().zip(acc) {
                set(s, out, lane0 + h, a);
            }
        }
    }
}

/// `sums[j] = v[j].0[0] + v[j].0[1] + ... + v[j].0[15]`, added in that order.
/// (Once per weight and half batch: a few thousand values per training step.)
#[inline(always)]
fn sum_lanes(v: &[V], sums: &mut [f32]) {
    assert_eq!(v.len(), sums.len());
    for (s, v) in sums.iter_mut().zip(v) {
        *s = v.0.iter().sum();
    }
}

fn in_maps(s: &ConvShape) -> Maps {
    Maps {
        c: s.in_c,
        h: s.in_h,
        w: s.in_w,
    }
}

fn out_maps(s: &ConvShape) -> Maps {
    Maps {
        c: s.out_c,
        h: s.out_h(),
        w: s.out_w(),
    }
}

/// The forward convolution as a valid one over the padded, interleaved input.
fn valid_over_input(s: &ConvShape) -> Valid {
    Valid {
        x: in_maps(s).padded(s.pad),
        out_c: s.out_c,
        k: s.k,
        live_rows: (s.pad, s.pad + s.in_h),
        live_cols: (s.pad, s.pad + s.in_w),
    }
}

/// Groups of `LANES` images per task: the groups split evenly over the threads.
fn groups_per_task(batch: usize) -> usize {
    crate::threads::per_thread(batch.div_ceil(LANES), 1)
}

/// Runs `$body` with `const $L: usize` the images of a plane: a register's lanes
/// on instruction set `$isa` (16 with AVX-512, 8 with AVX2 and the portable
/// path), which the kernel read once and runs everything on. The training
/// kernels interleave a group of 16 images as `16 / L` planes, one after the
/// other, so that every load fills a register from one cache line: with AVX2, 16
/// images side by side would give each register half a line, and each pass over a
/// plane twice the bytes. (`layer_times -- 1 128` under
/// `LENET_SIMD=avx2` on a Zen 4, alternating: C1's weight gradient 450-453 ->
/// 399-402 us, C3's 477-482 -> 465-468; C3's input gradient 603 -> 620, its padded
/// gathers being twice as many rows half as wide.)
macro_rules! with_plane_lanes {
    ($isa:expr, $L:ident => $body:expr) => {
        if $isa.lanes() == LANES {
            const $L: usize = LANES;
            $body
        } else {
            const $L: usize = LANES / 2;
            $body
        }
    };
}

/// `v` as interleaved values of `L` images.
fn planes<const L: usize>(v: &[V]) -> &[[f32; L]] {
    values(v).as_chunks::<L>().0
}

/// [`planes`] to write.
fn planes_mut<const L: usize>(v: &mut [V]) -> &mut [[f32; L]] {
    values_mut(v).as_chunks_mut::<L>().0
}

/// A task's buffer of `len` values of `L` images, from `buf`.
fn plane_buffers<const L: usize>(buf: &mut Vec<V>, tasks: usize, len: usize) -> &mut [[f32; L]] {
    planes_mut(scratch(buf, (tasks * len * L).div_ceil(LANES)))
}

/// Runs a convolution of interleaved images on every plane of `L` images, the
/// groups of 16 shared out over the threads: `src [N, src_maps]` is gathered with
/// `pad` into one task buffer, `conv(src_plane, dst_plane, count)` fills the other
/// for the plane's `count` images, and its window at `(off, off)` is scattered into
/// `dst [N, dst_maps]`, on instruction set `isa` (one of `L` lanes).
#[allow(clippy::too_many_arguments)]
fn per_plane<const L: usize>(
    isa: Isa,
    batch: usize,
    (src, src_maps, pad): (&[f32], Maps, usize),
    (dst, dst_maps, off): (&mut [f32], Maps, usize),
    src_lanes: &mut Vec<V>,
    dst_lanes: &mut Vec<V>,
    conv: impl Fn(&[[f32; L]], &mut [[f32; L]], usize) + Sync,
) {
    let per = groups_per_task(batch);
    let tasks = batch.div_ceil(LANES * per);
    let (src_len, dst_len) = (src_maps.padded(pad).len(), dst_maps.padded(off).len());
    let src_planes = plane_buffers::<L>(src_lanes, tasks, src_len);
    let dst_planes = plane_buffers::<L>(dst_lanes, tasks, dst_len);
    let (src_plane, dst_plane) = (L * src_maps.len(), L * dst_maps.len());
    src.par_chunks(per * LANES * src_maps.len())
        .zip(dst.par_chunks_mut(per * LANES * dst_maps.len()))
        .zip(
            src_planes
                .par_chunks_mut(src_len)
                .zip(dst_planes.par_chunks_mut(dst_len)),
        )
        .for_each(|((src, dst), (sl, dl))| {
            for (src, dst) in src.chunks(src_plane).zip(dst.chunks_mut(dst_plane)) {
                let count = src.len() / src_maps.len();
                with_isa!(isa; s, |width| width == L => gather(s, src_maps, pad, src, sl));
                conv(sl, dl, count);
                with_isa!(isa; s, |width| width == L => scatter(s, dst_maps, off, dl, dst));
            }
        });
}

pub fn forward(
    s: &ConvShape,
    t: Option<&ConnTable>,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    ws: &mut ConvWorkspace,
) {
    let (g, isa) = (valid_over_input(s), crate::isa());
    with_plane_lanes!(isa, L => per_plane::<L>(
        isa,
        s.batch,
        (x, in_maps(s), s.pad),
        (y, out_maps(s), 0),
        &mut ws.x_lanes,
        &mut ws.y_lanes,
        |xl, yl, count| conv_valid::<L>(isa, g, |o, i| connected(t, o, i), w, Some(b), (xl, yl), count),
    ))
}

/// [`super::forward_interleaved`] for a shape that is not dense: padded (into
/// `ws.x_lanes`) if it has padding, then the kernel on the group.
#[allow(clippy::too_many_arguments)]
pub fn forward_interleaved(
    s: &ConvShape,
    t: Option<&ConnTable>,
    x: &[V],
    w: &[f32],
    b: &[f32],
    y: &mut [V],
    count: usize,
    ws: &mut ConvWorkspace,
) {
    let g = valid_over_input(s);
    let x = if s.pad == 0 {
        x
    } else {
        let padded = scratch(&mut ws.x_lanes, g.x.len());
        for_each_padded_row(in_maps(s), s.pad, planes_mut::<LANES>(padded), |at, row| {
            row.copy_from_slice(&planes::<LANES>(&x[at..])[..row.len()])
        });
        padded
    };
    conv_valid::<LANES>(
        crate::isa(),
        g,
        |o, i| connected(t, o, i),
        w,
        Some(b),
        (planes::<LANES>(x), planes_mut::<LANES>(y)),
        count,
    );
}

pub fn x_backward(
    s: &ConvShape,
    t: Option<&ConnTable>,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    ws: &mut ConvWorkspace,
) {
    // dx_padded = full convolution of dy with the flipped kernel, channels swapped:
    // dx[i, r, c] = sum_o sum_{u,v} w[o, i, K-1-u, K-1-v] * dy_padded[o, r+u, c+v]
    let k = s.k;
    let (ic, oc, kk) = (s.in_c, s.out_c, k * k);
    let w_flipped = scratch(&mut ws.w_flipped, s.w_len());
    for o in 0..oc {
        for i in 0..ic {
            let from = &w[(o * ic + i) * kk..][..kk];
            let to = &mut w_flipped[(i * oc + o) * kk..][..kk];
            for (t, &f) in to.iter_mut().zip(from.iter().rev()) {
                *t = f;
            }
        }
    }
    let w_flipped = &*w_flipped;
    let g = Valid {
        x: out_maps(s).padded(k - 1),
        out_c: ic,
        k,
        live_rows: (k - 1, k - 1 + s.out_h()),
        live_cols: (k - 1, k - 1 + s.out_w()),
    };
    let isa = crate::isa();
    with_plane_lanes!(isa, L => per_plane::<L>(
        isa,
        s.batch,
        (dy, out_maps(s), k - 1),
        (dx, in_maps(s), s.pad),
        &mut ws.y_lanes,
        &mut ws.x_lanes,
        |dyl, dxl, count| conv_valid::<L>(isa, g, |i, o| connected(t, o, i), w_flipped, None, (dyl, dxl), count),
    ))
}

pub fn weight_backward(
    s: &ConvShape,
    t: Option<&ConnTable>,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    ws: &mut ConvWorkspace,
) {
    let isa = crate::isa();
    with_plane_lanes!(isa, L => weight_backward_in::<L>(isa, s, t, (x, dy), dw, ws));
    // each map's bias gradient on some thread, its sum in the same order on any,
    // compiled for the instruction set (in the build's SSE registers, C1's
    // backward pass without dx at batch 256 took 950-1030 us against 936-996:
    // `layer_times -- 1 256 classic c1` under AVX2 on a Zen 3, 5 rounds
    // alternating)
    let hw = s.out_h() * s.out_w();
    db.par_iter_mut().enumerate().for_each(|(o, g)| {
        *g = with_isa!(isa; _s, |_width| true => (0..s.batch)
            .map(|n| crate::sum8(&dy[(n * s.out_c + o) * hw..][..hw]))
            .sum());
    });
}

/// [`weight_backward`]'s weight gradient, on planes of `L` images, on instruction
/// set `isa`.
fn weight_backward_in<const L: usize>(
    isa: Isa,
    s: &ConvShape,
    t: Option<&ConnTable>,
    (x, dy): (&[f32], &[f32]),
    dw: &mut [f32],
    ws: &mut ConvWorkspace,
) {
    let (xm, ym) = (in_maps(s).padded(s.pad), out_maps(s));
    let g = valid_over_input(s);
    let wl = s.w_len();
    // two fixed halves of the groups (crate::GEMM_SPLIT), each summed per lane of
    // 16 into its own partial gradient, then added in order
    let groups = s.batch.div_ceil(LANES);
    let per = groups.div_ceil(crate::GEMM_SPLIT);
    let tasks = groups.div_ceil(per);
    let (x_len, y_len) = (xm.len(), ym.len());
    let xl = plane_buffers::<L>(&mut ws.x_lanes, tasks, x_len);
    let yl = plane_buffers::<L>(&mut ws.y_lanes, tasks, y_len);
    let parts = scratch(&mut ws.dw_lanes, tasks * wl);
    x.par_chunks(per * LANES * in_maps(s).len())
        .zip(dy.par_chunks(per * LANES * ym.len()))
        .zip(parts.par_chunks_mut(wl))
        .zip(xl.par_chunks_mut(x_len).zip(yl.par_chunks_mut(y_len)))
        .for_each(|(((x, dy), part), (xl, yl))| {
            part.fill(V::ZERO);
            // a group's planes in turn, plane b in lanes b * L.. of the sums: each
            // lane sums the same images in the same order whatever L is
            for (x, dy) in x
                .chunks(LANES * in_maps(s).len())
                .zip(dy.chunks(LANES * ym.len()))
            {
                for (b, (x, dy)) in x
                    .chunks(L * in_maps(s).len())
                    .zip(dy.chunks(L * ym.len()))
                    .enumerate()
                {
                    let count = dy.len() / ym.len();
                    with_isa!(isa; r, |width| width == L => {
                        gather(r, in_maps(s), s.pad, x, xl);
                        gather(r, ym, 0, dy, yl)
                    });
                    weight_grad_valid(isa, g, |o, i| connected(t, o, i), (xl, yl), part, (b * L, count));
                }
            }
        });
    // lanes, then parts, added in a fixed order, compiled for the instruction
    // set (each weight's sums in the order written, several weights a register)
    let (first, rest) = parts.split_at(wl);
    with_isa!(isa; _s, |_width| true => {
        sum_lanes(first, dw);
        for part in rest.chunks_exact(wl) {
            for (g, v) in dw.iter_mut().zip(part) {
                *g += v.0.iter().sum::<f32>();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::Portable;

    #[test]
    fn strips_cover_the_row_in_equal_widths_the_kernels_exist_for() {
        for len in 1..=60 {
            for max in [TAP_STRIP, MAX_STRIP] {
                let widths: Vec<usize> = strips(len, max).map(|r| r.len()).collect();
                assert_eq!(widths.iter().sum::<usize>(), len);
                assert_eq!(widths.len(), len.div_ceil(max));
                let (lo, hi) = (widths.iter().min().unwrap(), widths.iter().max().unwrap());
                assert!(*hi <= max && hi - lo <= 1, "{len}: {widths:?}");
            }
        }
    }

    #[test]
    fn lanes_are_summed_in_order() {
        let v: Vec<V> = (0..19)
            .map(|j| V(std::array::from_fn(|l| ((j * 8 + l) as f32).sin() * 1e3)))
            .collect();
        let mut sums = vec![0.0; v.len()];
        sum_lanes(&v, &mut sums);
        for (s, v) in sums.iter().zip(&v) {
            assert_eq!(s.to_bits(), v.0.iter().sum::<f32>().to_bits());
        }
    }

    #[test]
    fn gather_then_scatter_is_the_identity_for_partial_groups() {
        gather_then_scatter::<LANES>(&[3, 8, 12, 16]);
        gather_then_scatter::<8>(&[1, 5, 8]);
    }

    /// [`gather`] then [`scatter`] on planes of `L` images, for each count of images.
    fn gather_then_scatter<const L: usize>(counts: &[usize]) {
        let m = Maps { c: 2, h: 3, w: 11 };
        for &count in counts {
            let images: Vec<f32> = (0..count * m.len()).map(|i| i as f32).collect();
            for pad in [0, 2] {
                let mut lanes = vec![[9.0; L]; m.padded(pad).len()];
                gather(Portable, m, pad, &images, &mut lanes);
                // the missing images (and the border) are zero
                let first: [f32; L] = std::array::from_fn(|l| {
                    if pad == 0 && l < count {
                        (l * m.len()) as f32
                    } else {
                        0.0
                    }
                });
                assert_eq!(lanes[0], first);
                assert!(lanes.iter().all(|v| v[count..].iter().all(|&x| x == 0.0)));
                let mut back = vec![0.0; images.len()];
                scatter(Portable, m, pad, &lanes, &mut back);
                assert_eq!(back, images, "{count} images in {L} lanes, pad {pad}");
            }
        }
    }
}
