//! LeNet-5's subsampling (S2, S4): each 2x2 window (stride 2) of map `c` is summed,
//! multiplied by one trainable coefficient per map, and shifted by one trainable bias
//! per map (the squashing function is a separate step):
//!
//! `y[n,c,p,q] = coeff[c] * (x[2p,2q] + x[2p,2q+1] + x[2p+1,2q] + x[2p+1,2q+1]) + bias[c]`
//!
//! Shapes as in [`crate::pool`]; `coeff` and `bias` are `[C]`.

use crate::pool::{for_each_row_pair, window_rows, PoolShape};

fn check(s: &PoolShape, x: usize, y: usize, coeff: usize) {
    assert_eq!(
        (x, y, coeff),
        (s.x_len(), s.y_len(), s.c),
        "subsampling: lengths do not match the shape"
    );
}

/// Forward pass.
pub fn forward(s: &PoolShape, x: &[f32], coeff: &[f32], bias: &[f32], y: &mut [f32]) {
    check(s, x.len(), y.len(), coeff.len());
    assert_eq!(bias.len(), s.c);
    // output row p of map m reads input rows 2p and 2p + 1 in pairs of columns
    for_each_row_pair(s, |m, top, bottom, y_row_start| {
        let (k, b) = (coeff[m % s.c], bias[m % s.c]);
        let y_row = &mut y[y_row_start..][..s.out_w()];
        let (top, bottom) = window_rows(s, x, top, bottom);
        for ((y, t), u) in y_row.iter_mut().zip(top).zip(bottom) {
            *y = k * (t[0] + t[1] + u[0] + u[1]) + b;
        }
    });
}

/// `dx = coeff * dy` for each of the window's four inputs.
pub fn x_backward(s: &PoolShape, coeff: &[f32], dy: &[f32], dx: &mut [f32]) {
    spread(s, coeff, dy, dx, |c| c);
}

/// `d2x = coeff^2 * d2y` for each of the window's four inputs.
pub fn x_backward_second(s: &PoolShape, coeff: &[f32], d2y: &[f32], d2x: &mut [f32]) {
    spread(s, coeff, d2y, d2x, |c| c * c);
}

fn spread(s: &PoolShape, coeff: &[f32], dy: &[f32], dx: &mut [f32], weight: impl Fn(f32) -> f32) {
    check(s, dx.len(), dy.len(), coeff.len());
    crate::pool::spread(s, dy, dx, |m| weight(coeff[m % s.c]));
}

/// `dcoeff[c] = sum dy * (window sum)`, `dbias[c] = sum dy`, over the batch and positions.
pub fn weight_backward(s: &PoolShape, x: &[f32], dy: &[f32], dcoeff: &mut [f32], dbias: &mut [f32]) {
    accumulate(s, x, dy, dcoeff, dbias, |x| x[0] + x[1] + x[2] + x[3]);
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
    accumulate(s, x, d2y, d2coeff, d2bias, |x| {
        x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3]
    });
}

fn accumulate(
    s: &PoolShape,
    x: &[f32],
    dy: &[f32],
    dcoeff: &mut [f32],
    dbias: &mut [f32],
    window_input: impl Fn([f32; 4]) -> f32,
) {
    check(s, x.len(), dy.len(), dcoeff.len());
    assert_eq!(dbias.len(), s.c);
    dcoeff.fill(0.0);
    dbias.fill(0.0);
    let ow = s.out_w();
    // row by row: the row's window inputs into a buffer (a vector loop, as in the
    // forward pass), then one 8-lane dot product with the row of `dy` (summed in
    // place, one lane at a time with the window sums shuffled out of pairs, this
    // was 5% of a training step)
    for_each_row_pair(s, |m, top, bottom, y_row_start| {
        let c = m % s.c;
        let dy_row = &dy[y_row_start..][..ow];
        let (mut top, mut bottom) = window_rows(s, x, top, bottom);
        for dy_part in dy_row.chunks(ROW_CHUNK) {
            let mut win = [0.0f32; ROW_CHUNK];
            let win = &mut win[..dy_part.len()];
            for ((w, t), u) in win.iter_mut().zip(top.by_ref()).zip(bottom.by_ref()) {
                *w = window_input([t[0], t[1], u[0], u[1]]);
            }
            dcoeff[c] += crate::sum8_zip(dy_part, win, |g, w| g * w);
        }
        dbias[c] += crate::sum8(dy_row);
    });
}

/// Output columns whose window inputs [`accumulate`] holds at a time (on the stack).
const ROW_CHUNK: usize = 64;

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
}
