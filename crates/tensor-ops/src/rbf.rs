//! Euclidean radial basis units: squared distances of inputs to fixed centres,
//! `y[n, i] = sum_j (x[n, j] - c[i, j])^2`, and their input gradient. (LeNet-5's
//! output layer; the layer itself, with the paper's centres, is
//! `lenet_layers::Rbf`.) Compiled for the instruction set in use like every
//! kernel here: as plain loops in the model crate they ran as baseline x86-64
//! code in a default build.

use crate::interleaved::{Lanes, LANES};
use crate::simd::with_isa;

/// `y [N, K] = ` the squared distances of each row of `x [N, F]` to each row of
/// `centres [K, F]`, each summed in eight interleaved partial sums
/// ([`crate::sum8_zip`]; one running sum makes each add wait for the previous
/// one: 84 dependent adds per class and image in LeNet-5).
///
/// ```
/// let x = [1.0, 2.0, 0.0, 0.0]; // two inputs of two values
/// let centres = [1.0, 0.0]; // one centre
/// let mut y = [0.0; 2];
/// tensor_ops::rbf::forward(&x, &centres, 2, &mut y);
/// assert_eq!(y, [4.0, 1.0]);
/// ```
pub fn forward(x: &[f32], centres: &[f32], in_f: usize, y: &mut [f32]) {
    let classes = classes_of(x.len(), centres.len(), in_f, y.len(), "forward");
    with_isa!(_s => {
        for (x_row, y_row) in x.chunks_exact(in_f).zip(y.chunks_exact_mut(classes)) {
            for (out, c_row) in y_row.iter_mut().zip(centres.chunks_exact(in_f)) {
                *out = crate::sum8_zip(x_row, c_row, |x, c| (x - c) * (x - c));
            }
        }
    })
}

/// [`forward`] on up to 16 inputs interleaved value by value
/// ([`crate::interleaved`]): `x [F, 16]` into `y [K, 16]`, each lane summed in
/// [`forward`]'s order (the eight partial sums of [`crate::sum8_zip`] over the
/// whole chunks of eight, added in order, then the rest): the same bits.
pub fn forward_interleaved(x: &[Lanes], centres: &[f32], y: &mut [Lanes]) {
    let in_f = x.len();
    classes_of(
        LANES * in_f,
        centres.len(),
        in_f,
        LANES * y.len(),
        "forward_interleaved",
    );
    let whole = in_f - in_f % 8;
    with_isa!(_s => {
        for (y, c) in y.iter_mut().zip(centres.chunks_exact(in_f)) {
            let mut parts = [[0.0f32; LANES]; 8];
            for (j, (x, &c)) in x[..whole].iter().zip(c).enumerate() {
                for (p, &x) in parts[j % 8].iter_mut().zip(&x.0) {
                    *p += (x - c) * (x - c);
                }
            }
            for (l, y) in y.0.iter_mut().enumerate() {
                let tail: f32 = x[whole..]
                    .iter()
                    .zip(&c[whole..])
                    .map(|(x, &c)| (x.0[l] - c) * (x.0[l] - c))
                    .sum();
                *y = parts.iter().map(|p| p[l]).sum::<f32>() + tail;
            }
        }
    })
}

/// The input gradient of [`forward`]: `dx[n, j] = sum_i dy[n, i] * 2 (x[n, j] -
/// c[i, j])`, added over `i` in order (`dx` overwritten).
pub fn x_backward(x: &[f32], centres: &[f32], in_f: usize, dy: &[f32], dx: &mut [f32]) {
    let classes = classes_of(x.len(), centres.len(), in_f, dy.len(), "x_backward");
    assert_eq!(x.len(), dx.len(), "rbf::x_backward: dx and x differ in length");
    with_isa!(_s => {
        for ((x_row, dy_row), dx_row) in x
            .chunks_exact(in_f)
            .zip(dy.chunks_exact(classes))
            .zip(dx.chunks_exact_mut(in_f))
        {
            dx_row.fill(0.0);
            for (&g, c_row) in dy_row.iter().zip(centres.chunks_exact(in_f)) {
                for ((d, &x), &c) in dx_row.iter_mut().zip(x_row).zip(c_row) {
                    *d += 2.0 * g * (x - c);
                }
            }
        }
    })
}

/// The number of centres, after checking that `x` holds whole inputs of `in_f`
/// values, `centres` whole centres, and the output one value per input and centre.
fn classes_of(x_len: usize, centres_len: usize, in_f: usize, out_len: usize, kernel: &str) -> usize {
    assert!(
        in_f > 0 && x_len.is_multiple_of(in_f) && centres_len.is_multiple_of(in_f),
        "rbf::{kernel}: inputs of {in_f} values do not divide x ({x_len}) and the centres ({centres_len})"
    );
    let classes = centres_len / in_f;
    assert_eq!(
        out_len,
        x_len / in_f * classes,
        "rbf::{kernel}: the output length does not match"
    );
    classes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 13 inputs of 84 values (a partial group), 10 centres.
    fn case() -> (Vec<f32>, Vec<f32>) {
        let x = (0..13 * 84)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 30.0)
            .collect();
        let c = (0..10 * 84)
            .map(|i| if i * 7 % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        (x, c)
    }

    #[test]
    fn interleaved_distances_are_the_same_bits() {
        let (x, c) = case();
        let mut y = vec![0.0; 13 * 10];
        forward(&x, &c, 84, &mut y);
        let x_lanes: Vec<Lanes> = (0..84)
            .map(|j| Lanes(std::array::from_fn(|l| if l < 13 { x[l * 84 + j] } else { 0.0 })))
            .collect();
        let mut y_lanes = vec![Lanes::ZERO; 10];
        forward_interleaved(&x_lanes, &c, &mut y_lanes);
        for n in 0..13 {
            for i in 0..10 {
                assert_eq!(
                    y_lanes[i].0[n].to_bits(),
                    y[n * 10 + i].to_bits(),
                    "input {n} centre {i}"
                );
            }
        }
    }

    #[test]
    fn input_gradient_matches_the_formula_in_f64() {
        let (x, c) = case();
        let dy: Vec<f32> = (0..13 * 10)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 24.0)
            .collect();
        let mut dx = vec![f32::NAN; x.len()];
        x_backward(&x, &c, 84, &dy, &mut dx);
        for n in 0..13 {
            for j in 0..84 {
                let want: f64 = (0..10)
                    .map(|i| dy[n * 10 + i] as f64 * 2.0 * (x[n * 84 + j] as f64 - c[i * 84 + j] as f64))
                    .sum();
                let got = dx[n * 84 + j] as f64;
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "({n}, {j}): {got} vs {want}"
                );
            }
        }
    }
}
