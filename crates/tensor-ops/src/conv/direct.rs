//! Direct convolutions of one image, without a patch matrix: LeNet's C1 and
//! C3 at batch 1. At batch 1 there is no batch to put in the vector lanes
//! (`lanes.rs`); other things fill them, by shape ([`form`]):
//! - **output columns** ([`Form::Columns`], C1: 28 output columns): a register
//!   holds consecutive output values of one row; for each tap `(i, u, v)` the
//!   input row under it is loaded and multiplied by the tap's weight, broadcast,
//!   for six output maps at a time. Forward pass only.
//! - **output maps** ([`Form::Maps`], C3: 16 maps of 10 x 10):
//!   - forward: a register holds consecutive output pixels of one map, its rows
//!     computed as wide as the input's and flattened (the last `K - 1` values of
//!     each row dropped), so that for each tap `(u, v)` the input under a
//!     register is one load from the flattened input map; only the connection
//!     table's pairs, two output maps at a time (one load, two multiply-adds);
//!   - weight gradient: a register holds the 16 maps' `dy` at one output pixel;
//!     for each tap, the sum over the output pixels of the input value under the
//!     tap, broadcast, times it.
//!
//! Each value is the same chain of multiply-adds, in the same order, as im2col's
//! matrix product computes it (`gemm`'s first kernel: one chain in order of the
//! inner index, from zero, then the bias added, or nothing), so the results are
//! the im2col variant's, bit for bit, and the models it trained train again
//! (im2col multiplies the unconnected pairs' zero weights too: a multiply-add of
//! zero and a finite input leaves a sum as it is, up to the sign of a zero). The
//! passes not written here are im2col's: the input gradient sums over the
//! output maps, which lie across the lanes of the maps form, and C1's weight
//! gradient sums in im2col's dot products' 16 interleaved partial sums.
//!
//! Registers: columns, two registers of a row times six maps, for two rows at a
//! time where the registers hold them ([`two_rows`]); maps, two maps' sums over
//! a block of 9 registers of pixels with AVX-512 (C3's 10 rows of 14), of 6
//! with AVX2 and portable (three blocks) (forward), or 25 taps of one AVX-512
//! register or 5 of two AVX2 or portable registers (weight gradient).

use super::{ConnTable, ConvShape};
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
    /// 16 output maps of few pixels: consecutive pixels of a map (forward), the
    /// 16 maps' values of one pixel (weight gradient).
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
pub(super) fn forward(s: &ConvShape, t: Option<&ConnTable>, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    match form(s) {
        Some(Form::Maps) => forward_flat(s, t, x, w, b, y),
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
fn two_rows<S: Simd>(s_: S) -> bool {
    let (rows, registers_per_row) = (2, 2);
    // the sums, the inputs, and one more for the weight
    rows * registers_per_row * (MAPS_PER_TILE + 1) < s_.registers()
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
///
/// The operands go in one by one, as in the functions above: passed as one
/// struct (with the rows sliced tap by tap), the loops kept some of the sums on
/// the stack (C1's forward pass 2.8 -> 5.9 us, docs/benchmarks.md, "Build
/// profiles").
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
    let (lanes, patch, hw, ow, iw) = (S::W, s.patch_len(), s.out_hw(), s.out_w(), s.in_w);
    assert!(o0 + G <= s.out_c && p + R <= s.out_h() && q0s.iter().all(|&q| q + lanes <= ow));
    let mut acc = [[[s_.splat(0.0); V]; G]; R];
    // the G maps' weights, each [patch]
    let w_maps: [&[f32]; G] = std::array::from_fn(|g| &w[(o0 + g) * patch..][..patch]);
    for i in 0..s.in_c {
        for u in 0..K {
            // x_rows[r]: input row p + r + u of map i; w_rows[g]: map o0 + g's
            // weights of kernel row u on map i
            let x_rows: [&[f32]; R] = std::array::from_fn(|r| &x[(i * s.in_h + p + r + u) * iw..][..iw]);
            let w_rows: [&[f32]; G] = std::array::from_fn(|g| &w_maps[g][(i * K + u) * K..][..K]);
            for v in 0..K {
                // x_reg[r]: the V registers of input row p + r + u under tap v
                let x_reg: [[S::R; V]; R] =
                    std::array::from_fn(|r| std::array::from_fn(|j| s_.load(&x_rows[r][q0s[j] + v..])));
                for (g, w_row) in w_rows.iter().enumerate() {
                    let w_tap = s_.splat(w_row[v]);
                    for (acc, x_reg) in acc.iter_mut().zip(&x_reg) {
                        for (acc, &x_reg) in acc[g].iter_mut().zip(x_reg) {
                            *acc = s_.mul_add(w_tap, x_reg, *acc);
                        }
                    }
                }
            }
        }
    }
    let b = &b[o0..][..G];
    for (r, acc) in acc.iter().enumerate() {
        for (g, acc) in acc.iter().enumerate() {
            let bias = s_.splat(b[g]);
            let y_row = &mut y[(o0 + g) * hw + (p + r) * ow..][..ow];
            for (&sum, &q) in acc.iter().zip(&q0s) {
                s_.store(s_.add(bias, sum), &mut y_row[q..]);
            }
        }
    }
}

/// [`forward`] with output pixels in the lanes: each output row computed as
/// wide as an input row (its last `K - 1` columns dropped), so that a register
/// of output pixels, flattened, reads the input flattened from one offset per
/// tap; only the table's connected pairs, two output maps at a time (each input
/// register loaded once for both).
fn forward_flat(s: &ConvShape, t: Option<&ConnTable>, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
    // registers of pixels per block: two maps' sums, an input and two weights
    // in the registers (C3's 10 rows of 14 pixels: one block with AVX-512,
    // three with AVX2)
    const WIDE: usize = 9;
    const NARROW: usize = 6;
    with_isa!(s_ => {
        if 2 * WIDE + 3 <= s_.registers() {
            forward_flat_blocks::<_, WIDE>(s_, s, t, x, w, b, y)
        } else {
            forward_flat_blocks::<_, NARROW>(s_, s, t, x, w, b, y)
        }
    })
}

/// [`forward_flat`] in blocks of `P` registers of pixels.
#[inline(always)]
fn forward_flat_blocks<S: Simd, const P: usize>(
    s_: S,
    s: &ConvShape,
    t: Option<&ConnTable>,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
) {
    let (lanes, iw, in_map, oh, ow, patch) =
        (S::W, s.in_w, s.in_h * s.in_w, s.out_h(), s.out_w(), s.patch_len());
    // a map's sums: its rows of iw values, in whole blocks
    let map_len = (oh * iw).div_ceil(P * lanes) * P * lanes;
    // x_pad [C_in, reach]: each input map, then zeros as far as the last tap's
    // last register reads; y_flat [C_out, map_len]: the sums
    let reach = (K - 1) * iw + K - 1 + map_len;
    let mut scratch = crate::ThreadScratch::take();
    let (x_pad, y_flat) = scratch
        .get(s.in_c * reach + s.out_c * map_len)
        .split_at_mut(s.in_c * reach);
    for (x_pad, x_map) in x_pad.chunks_exact_mut(reach).zip(x.chunks_exact(in_map)) {
        x_pad[..in_map].copy_from_slice(x_map);
        x_pad[in_map..].fill(0.0);
    }
    // started[o]: map o's sums hold a value (its first connected input map's
    // pass starts its chains from zero instead of loading them)
    let mut started = [false; MAPS];
    for (i, x_map) in x_pad.chunks_exact(reach).enumerate() {
        let taps = |o: usize| &w[o * patch + i * K * K..][..K * K];
        let (flags, stride) = super::column(t, i);
        let mut maps = (0..s.out_c).filter(|&o| flags[o * stride]);
        while let Some(o0) = maps.next() {
            let mut start = |o: usize| !std::mem::replace(&mut started[o], true);
            match maps.next() {
                Some(o1) => {
                    let (taps, pair) = ([taps(o0), taps(o1)], [(o0, start(o0)), (o1, start(o1))]);
                    flat_maps::<S, 2, P>(s_, iw, x_map, taps, y_flat, (pair, map_len));
                }
                None => flat_maps::<S, 1, P>(s_, iw, x_map, [taps(o0)], y_flat, ([(o0, start(o0))], map_len)),
            }
        }
    }
    for (o, sums) in y_flat.chunks_exact_mut(map_len).enumerate() {
        if !started[o] {
            sums.fill(0.0); // a map with no connected input map
        }
    }
    for ((y_map, sums), &bias) in y
        .chunks_exact_mut(oh * ow)
        .zip(y_flat.chunks_exact(map_len))
        .zip(b)
    {
        for (y_row, sums) in y_map.chunks_exact_mut(ow).zip(sums.chunks_exact(iw)) {
            for (y, &sum) in y_row.iter_mut().zip(sums) {
                *y = sum + bias;
            }
        }
    }
}

/// [`forward_flat`]'s sums of `M` output maps `(o, fresh)` for one input map,
/// in blocks of `P` registers of output pixels: each map's `K x K` weights
/// `taps`, its sums in `y_flat` (`map_len` each; its chains started from zero
/// where `fresh`: the map's first input map), one multiply-add per tap in order.
#[inline(always)]
fn flat_maps<S: Simd, const M: usize, const P: usize>(
    s_: S,
    iw: usize,
    x_map: &[f32],
    taps: [&[f32]; M],
    y_flat: &mut [f32],
    (maps, map_len): ([(usize, bool); M], usize),
) {
    for at in (0..map_len).step_by(P * S::W) {
        let sums_at = maps.map(|(o, fresh)| (o * map_len + at, fresh));
        flat_block::<S, M, P>(s_, iw, x_map, taps, y_flat, sums_at, at);
    }
}

/// [`flat_maps`] for one block: pixels `at..at + P * W` of each map, its sums
/// from `y_flat[from..]` (or zeros where `fresh`).
#[inline(always)]
fn flat_block<S: Simd, const M: usize, const P: usize>(
    s_: S,
    iw: usize,
    x_map: &[f32],
    taps: [&[f32]; M],
    y_flat: &mut [f32],
    sums_at: [(usize, bool); M],
    at: usize,
) {
    let lanes = S::W;
    let mut acc = [[s_.splat(0.0); P]; M];
    for (acc, &(from, fresh)) in acc.iter_mut().zip(&sums_at) {
        if !fresh {
            for (j, acc) in acc.iter_mut().enumerate() {
                *acc = s_.load(&y_flat[from + j * lanes..]);
            }
        }
    }
    for u in 0..K {
        for v in 0..K {
            let x_tap = &x_map[at + u * iw + v..][..P * lanes];
            let w_tap: [S::R; M] = std::array::from_fn(|m| s_.splat(taps[m][u * K + v]));
            for j in 0..P {
                let x_reg = s_.load(&x_tap[j * lanes..]);
                for (acc, &w_tap) in acc.iter_mut().zip(&w_tap) {
                    acc[j] = s_.mul_add(w_tap, x_reg, acc[j]);
                }
            }
        }
    }
    for (acc, &(from, _)) in acc.iter().zip(&sums_at) {
        for (j, &sum) in acc.iter().enumerate() {
            s_.store(sum, &mut y_flat[from + j * lanes..]);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A map that the table connects to no input map gets its bias alone, even
    /// when the thread's scratch holds an earlier call's sums: its chains never
    /// start, so [`forward_flat`] writes its zeros itself.
    #[test]
    fn a_map_without_inputs_is_its_bias() {
        let s = ConvShape::square(1, 6, 14, 16, 5);
        assert_eq!(form(&s), Some(Form::Maps));
        let value = |i: usize, m: usize| ((i * m % 1009) as f32 - 504.0) / 97.0;
        let x: Vec<f32> = (0..s.x_len()).map(|i| value(i, 31)).collect();
        let w: Vec<f32> = (0..s.w_len()).map(|i| value(i, 37) / 50.0).collect();
        let b: Vec<f32> = (0..s.out_c).map(|o| o as f32 / 8.0).collect();
        let mut y = vec![0.0; s.y_len()];
        // the full table first: every map's sums left in the scratch
        forward(&s, None, &x, &w, &b, &mut y);
        let mut lists: Vec<Vec<usize>> = (0..16)
            .map(|o| (0..6).filter(|i| (o + i) % 3 != 0).collect())
            .collect();
        lists[5].clear();
        let refs: Vec<&[usize]> = lists.iter().map(Vec::as_slice).collect();
        let table = ConnTable::from_lists(6, &refs).unwrap();
        let mut masked = w.clone();
        table.mask_weights(&mut masked);
        forward(&s, Some(&table), &x, &masked, &b, &mut y);
        let mut expected = vec![0.0; s.y_len()];
        super::super::naive::forward(&s, Some(&table), &x, &masked, &b, &mut expected);
        let hw = s.out_hw();
        assert!(y[5 * hw..6 * hw].iter().all(|&v| v == b[5]));
        for (i, (&got, &want)) in y.iter().zip(&expected).enumerate() {
            assert!(
                (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                "y[{i}] = {got}, naive {want}"
            );
        }
    }
}
