//! Direct convolutions of one image, without a patch matrix: LeNet's C1 and
//! C3 at batch 1. At batch 1 there is no batch to put in the vector lanes
//! (`lanes.rs`); two other things fill them, by shape ([`form`]):
//! - **output columns** ([`Form::Columns`], C1: 28 output columns): a register
//!   holds consecutive output values of one row; for each tap `(i, u, v)` the
//!   input row under it is loaded and multiplied by the tap's weight, broadcast,
//!   for six output maps at a time. Forward pass only.
//! - **output maps** ([`Form::Maps`], C3: 16 maps of 10 x 10): a register holds
//!   the 16 maps' values of one output pixel (two of AVX2's). Forward: for each
//!   tap, the input value under it, broadcast, times the maps' weights of the
//!   tap (one register of maps at a time: with AVX2, two passes of 8 maps).
//!   Weight gradient: for each tap, the sum over the output pixels of the input
//!   value under the tap, broadcast, times the 16 maps' `dy` at the pixel.
//!
//! Each value is the same chain of multiply-adds, in the same order, as im2col's
//! matrix product computes it (`gemm`'s first kernel: one chain in order of the
//! inner index, from zero, then the bias added, or nothing), so the results are
//! the im2col variant's, bit for bit, and the models it trained train again. The
//! passes not written here are im2col's: the input gradient sums over the
//! output maps, which lie across the lanes of the maps form, and C1's weight
//! gradient sums in im2col's dot products' 16 interleaved partial sums.
//!
//! Registers: columns, two registers of a row times six maps, for two rows at a
//! time where the registers hold them ([`two_rows`]); maps, 10 output
//! pixels of one register (forward), or 25 taps of one AVX-512 register or 5
//! of two AVX2 or portable registers (weight gradient).

use super::ConvShape;
use crate::simd::{with_isa, Simd};

/// Output maps the maps form holds in the lanes.
const MAPS: usize = 16;
/// The kernel size the kernels are written for.
const K: usize = 5;
/// Output columns the columns form needs: a register of the widest instruction
/// set (the form is chosen by the shape alone, never by the CPU).
const COLUMNS: usize = 16;
/// Output maps per tile of the columns form.
const MAPS_PER_TILE: usize = 6;

/// What the vector lanes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// Consecutive output values of a row.
    Columns,
    /// The 16 output maps' values of one pixel.
    Maps,
}

/// The form that takes the convolution `s`, if one does: one image, an unpadded
/// 5 x 5 kernel that does not cover the whole input, and either 16 output maps
/// and a weight gradient that im2col sums by rows (in order of the pixel, as
/// here), or rows of at least [`COLUMNS`] output values.
pub(super) fn form(s: &ConvShape) -> Option<Form> {
    if s.batch != 1 || s.k != K || s.pad != 0 || (s.in_h == K && s.in_w == K) {
        return None;
    }
    if s.out_c == MAPS && super::im2col::sums_by_rows(s) {
        Some(Form::Maps)
    } else if s.out_w() >= COLUMNS {
        Some(Form::Columns)
    } else {
        None
    }
}

/// `y [C_out, H_out, W_out] = conv(x [C_in, H, W], w [C_out, C_in, 5, 5]) + b`.
pub(super) fn forward(s: &ConvShape, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    match form(s) {
        Some(Form::Maps) => forward_maps(s, x, w, b, y),
        _ => forward_columns(s, x, w, b, y),
    }
}

/// [`forward`] with output columns in the lanes.
fn forward_columns(s: &ConvShape, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    with_isa!(s_ => {
        let mut p = 0;
        while p < s.out_h() {
            if two_rows(s_) && p + 2 <= s.out_h() {
                columns_rows::<_, 2>(s_, s, x, w, b, y, p);
                p += 2;
            } else {
                columns_rows::<_, 1>(s_, s, x, w, b, y, p);
                p += 1;
            }
        }
    });
}

/// Whether [`forward_columns`] takes two output rows at a time (each weight,
/// broadcast once, then serves both rows' registers): if the sums (two rows of
/// six maps, two registers each), the two rows' inputs and a weight fit in the
/// registers. AVX-512's 32 hold them (C1's forward pass 3.0 -> 2.7 us); with
/// AVX2's 16 the sums spilled (3.6 -> 8.5-10.7 us; `layer_times -- 1 1 classic c1`).
#[inline(always)]
fn two_rows<S: Simd>(_: S) -> bool {
    let (rows, registers_per_row) = (2, 2);
    // the sums, the inputs, and one more for the weight
    rows * registers_per_row * (MAPS_PER_TILE + 1) < S::REGISTERS
}

/// [`forward_columns`] for output rows `p..p + R` of every map.
#[inline(always)]
fn columns_rows<S: Simd, const R: usize>(
    s_: S,
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    p: usize,
) {
    let mut o = 0;
    while o + MAPS_PER_TILE <= s.out_c {
        columns_row::<_, MAPS_PER_TILE, R>(s_, s, x, w, b, y, (p, o));
        o += MAPS_PER_TILE;
    }
    while o < s.out_c {
        columns_row::<_, 1, R>(s_, s, x, w, b, y, (p, o));
        o += 1;
    }
}

/// [`forward_columns`] for output rows `p..p + R` of maps `o0..o0 + G`: each row
/// in registers two at a time (the last one overlapping the one before when the
/// row is not a whole number of registers).
#[inline(always)]
fn columns_row<S: Simd, const G: usize, const R: usize>(
    s_: S,
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    (p, o0): (usize, usize),
) {
    let (lanes, ow) = (S::W, s.out_w());
    let starts = ow.div_ceil(lanes);
    let start = |j: usize| (j * lanes).min(ow - lanes);
    let mut j = 0;
    while j + 2 <= starts {
        columns_tile::<S, G, 2, R>(s_, s, x, w, b, y, (p, o0), [start(j), start(j + 1)]);
        j += 2;
    }
    if j < starts {
        columns_tile::<S, G, 1, R>(s_, s, x, w, b, y, (p, o0), [start(j)]);
    }
}

/// `V` registers of each output row `p..p + R` from columns `q0s`, maps `o0..o0 +
/// G`: `y = b + sum over taps (i, u, v) of w[o, i, u, v] * x[i, p + u, q + v]`,
/// one chain per value in order of the tap.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn columns_tile<S: Simd, const G: usize, const V: usize, const R: usize>(
    s_: S,
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    (p, o0): (usize, usize),
    q0s: [usize; V],
) {
    let (lanes, patch, hw, ow) = (S::W, s.patch_len(), s.out_hw(), s.out_w());
    assert!(o0 + G <= s.out_c && p + R <= s.out_h() && q0s.iter().all(|&q| q + lanes <= ow));
    let mut acc = [[[s_.splat(0.0); V]; G]; R];
    // the G maps' weights, each [patch]
    let w_maps: [&[f32]; G] = std::array::from_fn(|g| &w[(o0 + g) * patch..][..patch]);
    for i in 0..s.in_c {
        for u in 0..K {
            let x_rows = &x[(i * s.in_h + p + u) * s.in_w..][..R * s.in_w];
            let row_taps = (i * K + u) * K;
            for v in 0..K {
                // x_reg[r]: the V registers of input row p + r + u under tap v
                let mut x_reg = [[s_.splat(0.0); V]; R];
                for (r, x_reg) in x_reg.iter_mut().enumerate() {
                    for (x_reg, &q) in x_reg.iter_mut().zip(&q0s) {
                        *x_reg = s_.load(&x_rows[r * s.in_w + q + v..]);
                    }
                }
                for (g, w_map) in w_maps.iter().enumerate() {
                    let w_tap = s_.splat(w_map[row_taps + v]);
                    for (acc, x_reg) in acc.iter_mut().zip(&x_reg) {
                        for (acc, &x_reg) in acc[g].iter_mut().zip(x_reg) {
                            *acc = s_.mul_add(w_tap, x_reg, *acc);
                        }
                    }
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (g, acc) in acc.iter().enumerate() {
            let bias = s_.splat(b[o0 + g]);
            for (&sum, &q) in acc.iter().zip(&q0s) {
                s_.store(s_.add(bias, sum), &mut y[(o0 + g) * hw + (p + r) * ow + q..]);
            }
        }
    }
}

/// [`forward`] with the 16 output maps in the lanes.
fn forward_maps(s: &ConvShape, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    let (patch, hw) = (s.patch_len(), s.out_hw());
    let mut scratch = crate::ThreadScratch::take();
    // w_t [patch, 16]: each tap's weights of the 16 maps; y_t [HW, 16]: the sums
    let (w_t, y_t) = scratch.get((patch + hw) * MAPS).split_at_mut(patch * MAPS);
    with_isa!(s_ => {
        crate::gemm::transpose(s_, w, (MAPS, patch), w_t);
        for c0 in (0..MAPS).step_by(s_.width()) {
            forward_rows::<_, 10>(s_, s, x, w_t, y_t, c0);
        }
        crate::gemm::transpose(s_, y_t, (hw, MAPS), y);
    });
    for (y_map, &bias) in y.chunks_exact_mut(hw).zip(b) {
        y_map.iter_mut().for_each(|v| *v += bias);
    }
}

/// [`forward_maps`]' sums of the register of maps `c0..c0 + W`, `Q` output
/// pixels at a time (then one).
#[inline(always)]
fn forward_rows<S: Simd, const Q: usize>(
    s_: S,
    s: &ConvShape,
    x: &[f32],
    w_t: &[f32],
    y_t: &mut [f32],
    c0: usize,
) {
    let ow = s.out_w();
    for p in 0..s.out_h() {
        let mut q = 0;
        while q + Q <= ow {
            forward_pixels::<_, Q>(s_, s, x, w_t, y_t, (p, q, c0));
            q += Q;
        }
        while q < ow {
            forward_pixels::<_, 1>(s_, s, x, w_t, y_t, (p, q, c0));
            q += 1;
        }
    }
}

/// [`forward_maps`]' sums for `Q` output pixels from `(p, q0)` on, maps `c0..c0 +
/// W` in one register: `y_t[pixel] = sum over taps (i, u, v) of w_t[tap] * x[i,
/// p + u, q + v]`, one chain per value in order of the tap. (The 16 maps of two
/// AVX2 registers at once, 5 pixels at a time, took 11.8 us for C3 against
/// 8.2 us with register by register, 10 pixels: the compiler kept one of the
/// ten sums on the stack.)
#[inline(always)]
fn forward_pixels<S: Simd, const Q: usize>(
    s_: S,
    s: &ConvShape,
    x: &[f32],
    w_t: &[f32],
    y_t: &mut [f32],
    (p, q0, c0): (usize, usize, usize),
) {
    assert!(c0 + S::W <= MAPS && q0 + Q <= s.out_w());
    let mut acc = [s_.splat(0.0); Q];
    for i in 0..s.in_c {
        for u in 0..K {
            let x_row = &x[(i * s.in_h + p + u) * s.in_w + q0..][..Q + K - 1];
            let w_row = &w_t[(i * K + u) * K * MAPS + c0..][..(K - 1) * MAPS + S::W];
            for v in 0..K {
                let w_tap = s_.load(&w_row[v * MAPS..]);
                for (j, acc) in acc.iter_mut().enumerate() {
                    *acc = s_.mul_add(w_tap, s_.splat(x_row[j + v]), *acc);
                }
            }
        }
    }
    for (j, &sum) in acc.iter().enumerate() {
        s_.store(sum, &mut y_t[(p * s.out_w() + q0 + j) * MAPS + c0..]);
    }
}

/// `dw` and `db` from `x` and `dy` (overwritten): the maps form's own kernel, or
/// for the columns form im2col's dot products (on the calling thread).
pub(super) fn weight_backward(
    s: &ConvShape,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    ws: &mut super::ConvWorkspace,
) {
    match form(s) {
        Some(Form::Maps) => weight_backward_maps(s, x, dy, dw, db),
        _ => super::im2col::weight_backward(s, x, dy, dw, db, ws, false),
    }
}

/// `dw [16, C_in, 5, 5]` and `db [16]` from `x [C_in, H, W]` and `dy [16, H_out,
/// W_out]` (overwritten), with the maps in the lanes ([`Form::Maps`]).
fn weight_backward_maps(s: &ConvShape, x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32]) {
    let (patch, hw) = (s.patch_len(), s.out_hw());
    let mut scratch = crate::ThreadScratch::take();
    // dy_t [HW, 16]: each pixel's dy of the 16 maps; dw_t [patch, 16]: the sums
    let (dy_t, dw_t) = scratch.get((hw + patch) * MAPS).split_at_mut(hw * MAPS);
    with_isa!(s_ => {
        crate::gemm::transpose(s_, dy, (MAPS, hw), dy_t);
        for i in 0..s.in_c {
            if MAPS == s_.width() {
                weight_taps::<_, 1, K>(s_, s, x, dy_t, dw_t, (i, 0));
            } else {
                for u in 0..K {
                    weight_taps::<_, 2, 1>(s_, s, x, dy_t, dw_t, (i, u));
                }
            }
        }
        crate::gemm::transpose(s_, dw_t, (patch, MAPS), dw);
    });
    for (g, dy_map) in db.iter_mut().zip(dy.chunks_exact(hw)) {
        *g = crate::sum8(dy_map);
    }
}

/// [`weight_backward_maps`]'s sums for input map `i`, kernel rows `u0..u0 + U`, the
/// 16 maps in `CV` registers: `dw_t[tap] = sum over pixels (p, q) of x[i, p + u,
/// q + v] * dy_t[pixel]`, one chain per value in order of the pixel.
#[inline(always)]
fn weight_taps<S: Simd, const CV: usize, const U: usize>(
    s_: S,
    s: &ConvShape,
    x: &[f32],
    dy_t: &[f32],
    dw_t: &mut [f32],
    (i, u0): (usize, usize),
) {
    let (w, ow) = (S::W, s.out_w());
    assert!(CV * w == MAPS && u0 + U <= K);
    let mut acc = [[[s_.splat(0.0); CV]; K]; U];
    for p in 0..s.out_h() {
        let x_rows = &x[(i * s.in_h + p + u0) * s.in_w..][..(U - 1) * s.in_w + ow + K - 1];
        for (q, dy_pixel) in dy_t[p * ow * MAPS..][..ow * MAPS].chunks_exact(MAPS).enumerate() {
            let mut d = [s_.splat(0.0); CV];
            for (c, d) in d.iter_mut().enumerate() {
                *d = s_.load(&dy_pixel[c * w..]);
            }
            for (u, acc) in acc.iter_mut().enumerate() {
                let x_row = &x_rows[u * s.in_w + q..][..K];
                for (acc, &x_value) in acc.iter_mut().zip(x_row) {
                    let x_value = s_.splat(x_value);
                    for (acc, &d) in acc.iter_mut().zip(&d) {
                        *acc = s_.mul_add(d, x_value, *acc);
                    }
                }
            }
        }
    }
    for (u, acc) in acc.iter().enumerate() {
        for (v, acc) in acc.iter().enumerate() {
            let at = ((i * K + u0 + u) * K + v) * MAPS;
            for (c, &sum) in acc.iter().enumerate() {
                s_.store(sum, &mut dw_t[at + c * w..]);
            }
        }
    }
}
