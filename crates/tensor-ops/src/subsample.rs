//! LeNet-5's subsampling (S2, S4): each 2x2 window (stride 2) of map `c` is summed,
//! multiplied by one trainable coefficient per map, and shifted by one trainable bias
//! per map (the squashing function is a separate step):
//!
//! `y[n,c,p,q] = coeff[c] * (x[2p,2q] + x[2p,2q+1] + x[2p+1,2q] + x[2p+1,2q+1]) + bias[c]`
//!
//! Shapes as in [`crate::pool`]; `coeff` and `bias` are `[C]`.

use crate::interleaved::{get, set, Lanes, LANES};
use crate::pool::{
    even_sizes, for_each_row_pair, maps_per_block, window_rows, window_sums_of, PoolShape, Terms,
};
use crate::simd::{with_isa, Simd};

fn check(s: &PoolShape, x: usize, y: usize, coeff: usize) {
    assert_eq!(
        (x, y, coeff),
        (s.x_len(), s.y_len(), s.c),
        "subsampling: lengths do not match the shape"
    );
}

/// Forward pass.
pub fn forward(s: &PoolShape, x: &[f32], coeff: &[f32], bias: &[f32], y: &mut [f32]) {
    with_isa!(s_ => {
        check(s, x.len(), y.len(), coeff.len());
        assert_eq!(bias.len(), s.c);
        if even_sizes(s) {
            return forward_even(s_, s, x, coeff, bias, y);
        }
        // output row p of map m reads input rows 2p and 2p + 1 in pairs of columns
        for_each_row_pair(s, |m, top, bottom, y_row_start| {
            let (k, b) = (coeff[m % s.c], bias[m % s.c]);
            let y_row = &mut y[y_row_start..][..s.out_w()];
            let (top, bottom) = window_rows(s, x, top, bottom);
            for ((y, t), u) in y_row.iter_mut().zip(top).zip(bottom) {
                *y = k * (t[0] + t[1] + u[0] + u[1]) + b;
            }
        });
    })
}

/// [`forward`] for even sizes, in blocks of whole maps rather than output rows of
/// 14 or 5 values (too short to vectorise): the window sums of a block's maps
/// ([`window_sums_of`]), then `y = coeff * sum + bias` over each map. (Kernel
/// bench, S2 shape, batch 32, alternating: 36.8, 40.5, 23.3 µs -> 22.7, 16.8,
/// 20.9 µs, map by map.)
#[inline(always)]
fn forward_even<S: Simd>(s_: S, s: &PoolShape, x: &[f32], coeff: &[f32], bias: &[f32], y: &mut [f32]) {
    let (map_in, map_out) = (s.h * s.w, s.out_h() * s.out_w());
    let block = maps_per_block(map_in);
    let mut scratch = crate::ThreadScratch::take();
    let vsum = scratch.get(block * map_in / 2 + S::W);
    let blocks = x.chunks(block * map_in).zip(y.chunks_mut(block * map_out));
    for (first_map, (x, y)) in (0..).step_by(block).zip(blocks) {
        window_sums_of(s_, s.w, x, Terms::Values, vsum, y);
        for (m, y) in (first_map..).zip(y.chunks_exact_mut(map_out)) {
            let (k, b) = (coeff[m % s.c], bias[m % s.c]);
            for y in y.iter_mut() {
                *y = k * *y + b;
            }
        }
    }
}

/// [`forward`] on up to 16 images interleaved value by value
/// ([`crate::interleaved`]): `x [C, H, W, 16]` into `y [C, H/2, W/2, 16]`
/// (`s.batch` is not used). Each window is summed in [`forward`]'s order, so the
/// values are the same, bit for bit.
///
/// ```
/// use tensor_ops::interleaved::Lanes;
/// use tensor_ops::pool::PoolShape;
/// use tensor_ops::subsample::forward_interleaved;
///
/// // one 2 x 2 map: lane l holds the image (l, 1, 2, 3)
/// let s = PoolShape { batch: 1, c: 1, h: 2, w: 2 };
/// let x: Vec<Lanes> = (0..4).map(|j| Lanes(std::array::from_fn(|l| if j == 0 { l as f32 } else { j as f32 }))).collect();
/// let mut y = [Lanes::ZERO];
/// forward_interleaved(&s, &x, &[0.5], &[1.0], &mut y);
/// assert_eq!(y[0].0[4], 0.5 * (4.0 + 1.0 + 2.0 + 3.0) + 1.0);
/// ```
pub fn forward_interleaved(s: &PoolShape, x: &[Lanes], coeff: &[f32], bias: &[f32], y: &mut [Lanes]) {
    let one = PoolShape { batch: 1, ..*s };
    check(&one, x.len(), y.len(), coeff.len());
    assert_eq!(bias.len(), s.c);
    // forward_even's column sums, then their pair; else left to right (the
    // closures inlined, to be compiled with the instruction set)
    with_isa!(s => if even_sizes(&one) {
        forward_interleaved_on(s, &one, (x, coeff, bias, y), #[inline(always)] |[t0, t1, u0, u1]| s.add(s.add(t0, u0), s.add(t1, u1)))
    } else {
        forward_interleaved_on(s, &one, (x, coeff, bias, y), #[inline(always)] |[t0, t1, u0, u1]| s.add(s.add(s.add(t0, t1), u0), u1))
    })
}

/// [`forward_interleaved`] with token `s`, `window_sum` adding a window's values
/// `[top left, top right, bottom left, bottom right]`.
#[inline(always)]
fn forward_interleaved_on<S: Simd>(
    s: S,
    one: &PoolShape,
    (x, coeff, bias, y): (&[Lanes], &[f32], &[f32], &mut [Lanes]),
    window_sum: impl Fn([S::R; 4]) -> S::R,
) {
    let ow = one.out_w();
    for (ch, y_map) in y.chunks_exact_mut(one.out_h() * ow).enumerate() {
        let (k, b) = (s.splat(coeff[ch]), s.splat(bias[ch]));
        let map = &x[ch * one.h * one.w..][..one.h * one.w];
        for (p, y_row) in y_map.chunks_exact_mut(ow).enumerate() {
            let (top, bottom) = (
                &map[2 * p * one.w..][..2 * ow],
                &map[(2 * p + 1) * one.w..][..2 * ow],
            );
            for ((y, t), u) in y_row
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                for h in (0..LANES).step_by(S::W) {
                    let sum = window_sum([
                        get(s, &t[0], h),
                        get(s, &t[1], h),
                        get(s, &u[0], h),
                        get(s, &u[1], h),
                    ]);
                    set(s, y, h, s.add(s.mul(k, sum), b));
                }
            }
        }
    }
}

/// `dx = coeff * dy` for each of the window's four inputs.
pub fn x_backward(s: &PoolShape, coeff: &[f32], dy: &[f32], dx: &mut [f32]) {
    with_isa!(s_ => {
        spread(s_, s, coeff, dy, dx, |c| c);
    })
}

/// `d2x = coeff^2 * d2y` for each of the window's four inputs.
pub fn x_backward_second(s: &PoolShape, coeff: &[f32], d2y: &[f32], d2x: &mut [f32]) {
    with_isa!(s_ => {
        spread(s_, s, coeff, d2y, d2x, |c| c * c);
    })
}

#[inline(always)]
fn spread<S: Simd>(
    s_: S,
    s: &PoolShape,
    coeff: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    weight: impl Fn(f32) -> f32,
) {
    check(s, dx.len(), dy.len(), coeff.len());
    crate::pool::spread(s_, s, dy, dx, |c| weight(coeff[c]));
}

/// `dcoeff[c] = sum dy * (window sum)`, `dbias[c] = sum dy`, over the batch and positions.
pub fn weight_backward(s: &PoolShape, x: &[f32], dy: &[f32], dcoeff: &mut [f32], dbias: &mut [f32]) {
    with_isa!(s_ => {
        accumulate(s_, s, x, dy, dcoeff, dbias, Terms::Values);
    })
}

/// Gauss-Newton rule of the paper for a weight shared by many connections:
/// `d2coeff[c] = sum d2y * sum_j x_j^2` (each of the 4 inputs is a connection
/// through the same coefficient), `d2bias[c] = sum d2y`.
pub fn weight_backward_second(
    s: &PoolShape,
    x: &[f32],
    d2y: &[f32],
    d2coeff: &mut [f32],
    d2bias: &mut [f32],
) {
    with_isa!(s_ => {
        accumulate(s_, s, x, d2y, d2coeff, d2bias, Terms::Squares);
    })
}

/// `dcoeff[c] += sum dy[p, q] * sum_window terms(x)`. For even sizes, the window
/// sums of each block of maps ([`window_sums_of`]), then each map's dotted with
/// `dy`; for odd ones, written per input value, `sum_{r, s} terms(x[r, s]) *
/// dy[r / 2, s / 2]`: map by map, `dy` is spread over its windows (the average
/// pool's backward with factor 1), then one 8-lane dot product runs over the
/// whole map. (Summed output row by output row, 14 or 5 values at a time, this
/// was 5% of a training step.)
#[inline(always)]
fn accumulate<S: Simd>(
    s_: S,
    s: &PoolShape,
    x: &[f32],
    dy: &[f32],
    dcoeff: &mut [f32],
    dbias: &mut [f32],
    terms: Terms,
) {
    check(s, x.len(), dy.len(), dcoeff.len());
    assert_eq!(dbias.len(), s.c);
    dcoeff.fill(0.0);
    dbias.fill(0.0);
    if even_sizes(s) {
        // even sizes (as `forward_even`): the window sums of terms(x) in long
        // runs, then one 8-lane dot product with dy per map (measured against
        // the spread below: S2 at batch 32 52 -> 36 and 47 -> 39 µs, S4 27 -> 20
        // µs, one thread)
        let (map_in, map_out) = (s.h * s.w, s.out_h() * s.out_w());
        let block = maps_per_block(map_in);
        let mut scratch = crate::ThreadScratch::take();
        let (vsum, window_sums) = scratch
            .get(block * (map_in / 2 + map_out) + S::W)
            .split_at_mut(block * map_in / 2 + S::W);
        let blocks = x.chunks(block * map_in).zip(dy.chunks(block * map_out));
        for (first_map, (x, dy)) in (0..).step_by(block).zip(blocks) {
            let window_sums = &mut window_sums[..dy.len()];
            window_sums_of(s_, s.w, x, terms, vsum, window_sums);
            let maps = window_sums.chunks_exact(map_out).zip(dy.chunks_exact(map_out));
            for (m, (window_sums, dy)) in (first_map..).zip(maps) {
                dcoeff[m % s.c] += crate::sum8_zip(window_sums, dy, |a, g| a * g);
                dbias[m % s.c] += crate::sum8(dy);
            }
        }
        return;
    }
    let one_map = PoolShape { batch: 1, c: 1, ..*s };
    let (x_map, y_map) = (one_map.x_len(), one_map.y_len());
    let mut scratch = crate::ThreadScratch::take();
    let spread_dy = scratch.get(x_map);
    for (m, (x, dy)) in x.chunks_exact(x_map).zip(dy.chunks_exact(y_map)).enumerate() {
        crate::pool::spread(s_, &one_map, dy, spread_dy, |_| 1.0);
        dcoeff[m % s.c] += crate::sum8_zip(x, spread_dy, |x, g| terms.of(x) * g);
        dbias[m % s.c] += crate::sum8(dy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        let s = PoolShape {
            batch: 1,
            c: 1,
            h: 2,
            w: 4,
        };
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let mut y = [0.0; 2];
        forward(&s, &x, &[0.5], &[1.0], &mut y);
        assert_eq!(y, [0.5 * 14.0 + 1.0, 0.5 * 22.0 + 1.0]);
        let (mut dc, mut db) = ([0.0], [0.0]);
        weight_backward(&s, &x, &[1.0, -1.0], &mut dc, &mut db);
        assert_eq!((dc, db), ([14.0 - 22.0], [0.0]));
        let mut dx = [0.0; 8];
        x_backward(&s, &[0.5], &[2.0, 4.0], &mut dx);
        assert_eq!(dx, [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
    }

    /// The long-run paths of even sizes and the row-pair path of odd ones, against
    /// the definition written out window by window.
    #[test]
    fn every_shape_matches_the_window_by_window_definition() {
        // (S2 and S4 at batch 1, as blocks of maps with a remainder, rows
        // narrower than a register, and odd sizes)
        for (batch, c, h, w) in [
            (1, 6, 28, 28),
            (1, 16, 10, 10),
            (2, 3, 28, 28),
            (3, 16, 10, 10),
            (50, 16, 10, 10),
            (2, 2, 6, 8),
            (3, 5, 2, 2),
            (1, 3, 4, 18),
            (1, 2, 7, 6),
            (2, 1, 6, 9),
        ] {
            let s = PoolShape { batch, c, h, w };
            let x: Vec<f32> = (0..s.x_len())
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let dy: Vec<f32> = (0..s.y_len())
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 24.0)
                .collect();
            let coeff: Vec<f32> = (0..c).map(|m| 0.3 + 0.1 * m as f32).collect();
            let bias: Vec<f32> = (0..c).map(|m| 0.05 * m as f32 - 0.1).collect();
            let (oh, ow) = (s.out_h(), s.out_w());
            let window = |n: usize, m: usize, p: usize, q: usize, f: &dyn Fn(f32) -> f32| {
                let at = |r: usize, col: usize| x[((n * c + m) * h + r) * w + col];
                f(at(2 * p, 2 * q))
                    + f(at(2 * p, 2 * q + 1))
                    + f(at(2 * p + 1, 2 * q))
                    + f(at(2 * p + 1, 2 * q + 1))
            };
            let mut y = vec![0.0; s.y_len()];
            forward(&s, &x, &coeff, &bias, &mut y);
            let (mut dc, mut db) = (vec![0.0; c], vec![0.0; c]);
            weight_backward(&s, &x, &dy, &mut dc, &mut db);
            let (mut d2c, mut d2b) = (vec![0.0; c], vec![0.0; c]);
            weight_backward_second(&s, &x, &dy, &mut d2c, &mut d2b);
            let mut dx = vec![f32::NAN; s.x_len()];
            x_backward(&s, &coeff, &dy, &mut dx);
            let mut d2x = vec![f32::NAN; s.x_len()];
            x_backward_second(&s, &coeff, &dy, &mut d2x);
            for (i, (&got, &got2)) in dx.iter().zip(&d2x).enumerate() {
                let (m, r, col) = (i / (h * w) % c, i / w % h, i % w);
                let o = (i / (h * w) * oh + r / 2) * ow + col / 2;
                let (want, want2) = if r / 2 < oh && col / 2 < ow {
                    (coeff[m] * dy[o], coeff[m] * coeff[m] * dy[o])
                } else {
                    (0.0, 0.0) // an odd last row or column is in no window
                };
                assert_eq!(got.to_bits(), want.to_bits(), "{s:?} dx[{i}]");
                assert_eq!(got2.to_bits(), want2.to_bits(), "{s:?} d2x[{i}]");
            }
            let (mut want_dc, mut want_d2c, mut want_db) =
                (vec![0.0f64; c], vec![0.0f64; c], vec![0.0f64; c]);
            for n in 0..batch {
                for m in 0..c {
                    for p in 0..oh {
                        for q in 0..ow {
                            let o = ((n * c + m) * oh + p) * ow + q;
                            let sum = window(n, m, p, q, &|v| v);
                            let want = coeff[m] * sum + bias[m];
                            assert!((y[o] - want).abs() <= 1e-5 * (1.0 + want.abs()), "{s:?} y[{o}]");
                            want_dc[m] += (dy[o] * sum) as f64;
                            want_d2c[m] += (dy[o] * window(n, m, p, q, &|v| v * v)) as f64;
                            want_db[m] += dy[o] as f64;
                        }
                    }
                }
            }
            for m in 0..c {
                for (got, want) in [(dc[m], want_dc[m]), (d2c[m], want_d2c[m]), (db[m], want_db[m])] {
                    assert!(
                        (got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{s:?} map {m}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
