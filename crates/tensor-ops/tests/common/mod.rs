//! Helpers shared by the kernel test files.
#![allow(dead_code)] // each test file uses its own subset

use proptest::prelude::*;
use tensor_ops::conv::{self, ConnTable, ConvShape, ConvWorkspace};
use tensor_ops::interleaved::{deinterleave, interleave, Lanes, LANES};
use tensor_ops::Algo;

/// Deterministic pseudo-random values in [-1, 1).
pub fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `got` equals the naive `want` to float rounding: within `1e-5` of the largest
/// value (at least 1), plus `2e-7` (under two `f32` epsilons) of `magnitude[i]`,
/// the sum of the absolute values of the terms that make up value `i` (a sum
/// whose terms cancel is as exact as its largest terms allow, whatever the order
/// in which the kernels add them). `magnitude` is the naive kernel run on the
/// absolute values of the operands.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], magnitude: &[f32]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    prop_assert_eq!(magnitude.len(), want.len());
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
    for (i, ((g, w), m)) in got.iter().zip(want).zip(magnitude).enumerate() {
        prop_assert!(
            (g - w).abs() <= 1e-5 * scale + 2e-7 * m,
            "{}: [{}] {} vs naive {} (terms' magnitude {})",
            what,
            i,
            g,
            w,
            m
        );
    }
    Ok(())
}

/// The absolute values of `v`.
pub fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// [`conv_passes`] of the naive kernels on the operands' absolute values: for
/// each output, the sum of the absolute values of its terms.
pub fn conv_magnitudes(
    s: &ConvShape,
    t: Option<&ConnTable>,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dy: &[f32],
) -> [Vec<f32>; 7] {
    conv_passes(Algo::Naive, s, t, &abs(x), &abs(w), &abs(b), &abs(dy))
}

/// What [`conv_passes`] returns, in order.
pub const PASSES: [&str; 7] = ["y", "dx", "dw", "db", "d2x", "d2w", "d2b"];

/// Every pass of a convolution with one variant, on one workspace (so that each
/// pass sees what the earlier ones left in it, as in a training step).
pub fn conv_passes(
    algo: Algo,
    s: &ConvShape,
    t: Option<&ConnTable>,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dy: &[f32],
) -> [Vec<f32>; 7] {
    let mut ws = ConvWorkspace::default();
    let mut y = vec![0.0; s.y_len()];
    conv::forward(algo, s, t, x, w, b, &mut y, &mut ws);
    let mut dx = vec![0.0; s.x_len()];
    conv::x_backward(algo, s, t, w, dy, &mut dx, &mut ws);
    let (mut dw, mut db) = (vec![0.0; s.w_len()], vec![0.0; s.out_c]);
    conv::weight_backward(algo, s, t, x, dy, &mut dw, &mut db, &mut ws);
    let mut d2x = vec![0.0; s.x_len()];
    conv::x_backward_second(algo, s, t, w, dy, &mut d2x, &mut ws);
    let (mut d2w, mut d2b) = (vec![0.0; s.w_len()], vec![0.0; s.out_c]);
    conv::weight_backward_second(algo, s, t, x, dy, &mut d2w, &mut d2b, &mut ws);
    [y, dx, dw, db, d2x, d2w, d2b]
}

/// A table in which output map `o` reads a pseudo-random nonempty subset of the
/// inputs (as C3's does).
pub fn table(out_c: usize, in_c: usize, seed: u64) -> ConnTable {
    let lists: Vec<Vec<usize>> = (0..out_c)
        .map(|o| {
            let mut l: Vec<usize> = (0..in_c)
                .filter(|i| (seed >> ((o * 7 + i) % 61)) & 1 == 1)
                .collect();
            if l.is_empty() {
                l.push(o % in_c);
            }
            l
        })
        .collect();
    let refs: Vec<&[usize]> = lists.iter().map(|l| l.as_slice()).collect();
    ConnTable::from_lists(in_c, &refs).unwrap()
}

/// `f(x_group, y_group, count)` on the samples of `x` (`per_x` values each)
/// interleaved in groups of 16, its outputs (`per_y` values per sample)
/// de-interleaved in order: an interleaved kernel run over a whole batch.
pub fn by_groups(
    x: &[f32],
    (per_x, per_y): (usize, usize),
    mut f: impl FnMut(&[Lanes], &mut [Lanes], usize),
) -> Vec<f32> {
    let mut y = vec![0.0; x.len() / per_x * per_y];
    let (mut xl, mut yl) = (vec![Lanes::ZERO; per_x], vec![Lanes::ZERO; per_y]);
    for (x, y) in x.chunks(LANES * per_x).zip(y.chunks_mut(LANES * per_y)) {
        interleave(x, &mut xl);
        f(&xl, &mut yl, x.len() / per_x);
        deinterleave(&yl, y);
    }
    y
}

/// `line` on stderr, past the test harness's capture (so that a skipped case is
/// seen), after the test's name.
pub fn note(test: &str, line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{test}: {line}");
}
