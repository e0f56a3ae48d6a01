//! Finite-difference checks of every backward pass.
//!
//! The kernels compute in `f32`; the checks do their arithmetic in `f64`: a
//! probe loss `L = sum_k r_k y_k` (fixed random `r`) is summed in `f64`, and its
//! central differences `(L(v + e) - L(v - e)) / 2e` are compared with the analytic
//! gradient (the backward pass run with `dy = r`). For the linear kernels
//! (conv, FC, pooling, subsampling) `L` is linear in each input, so the difference
//! is exact up to `f32` rounding of `y`: with `e = 1e-2` the tolerance is 2e-3
//! relative to the largest gradient. Activations use `e = 1e-3` away from kinks.
//!
//! Second derivatives: for `E = 1/2 sum_k c_k y_k^2` with `c >= 0`, the diagonal
//! Gauss-Newton rules are exact for a linear kernel (`E` is quadratic), so
//! `(E(v + e) - 2 E(v) + E(v - e)) / e^2` must equal `x_backward_second` /
//! `weight_backward_second` run with `d2y = c`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a bad case should stop loudly

use tensor_ops::conv::{self, ConnTable, ConvShape, ConvWorkspace};
use tensor_ops::fc::{self, FcShape};
use tensor_ops::pool::{self, PoolShape};
use tensor_ops::{subsample, Activation, Algo};

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_add(0x9E3779B97F4A7C15);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

fn half_weighted_square(c: &[f32], y: &[f32]) -> f64 {
    0.5 * c
        .iter()
        .zip(y)
        .map(|(&c, &y)| c as f64 * (y as f64).powi(2))
        .sum::<f64>()
}

/// Central differences of `loss` at every coordinate of `v`, checked against `analytic`.
fn check_first(name: &str, v: &[f32], analytic: &[f32], eps: f32, tol: f64, loss: impl Fn(&[f32]) -> f64) {
    let scale = analytic
        .iter()
        .fold(0.0f64, |m, &g| m.max(g.abs() as f64))
        .max(1e-3);
    let mut p = v.to_vec();
    for i in 0..v.len() {
        p[i] = v[i] + eps;
        let up = loss(&p);
        p[i] = v[i] - eps;
        let down = loss(&p);
        p[i] = v[i];
        let numeric = (up - down) / (2.0 * eps as f64);
        let err = (numeric - analytic[i] as f64).abs() / scale;
        assert!(
            err < tol,
            "{name}[{i}]: numeric {numeric}, analytic {}, rel err {err:e}",
            analytic[i]
        );
    }
}

/// Second differences of a quadratic `energy` at every coordinate, against `analytic`.
fn check_second(name: &str, v: &[f32], analytic: &[f32], energy: impl Fn(&[f32]) -> f64) {
    let eps = 0.25f32;
    let scale = analytic
        .iter()
        .fold(0.0f64, |m, &g| m.max(g.abs() as f64))
        .max(1e-3);
    let mut p = v.to_vec();
    let e0 = energy(v);
    for i in 0..v.len() {
        p[i] = v[i] + eps;
        let up = energy(&p);
        p[i] = v[i] - eps;
        let down = energy(&p);
        p[i] = v[i];
        let numeric = (up - 2.0 * e0 + down) / (eps as f64 * eps as f64);
        let err = (numeric - analytic[i] as f64).abs() / scale;
        assert!(
            err < 2e-3,
            "{name}[{i}]: numeric {numeric}, analytic {}, rel err {err:e}",
            analytic[i]
        );
    }
}

#[test]
fn conv_gradients_with_table_and_padding() {
    let s = ConvShape {
        batch: 2,
        in_c: 3,
        in_h: 6,
        in_w: 5,
        out_c: 4,
        k: 3,
        pad: 1,
    };
    let table = ConnTable::from_lists(3, &[&[0], &[0, 1], &[1, 2], &[0, 1, 2]]).unwrap();
    let t = Some(&table);
    let x = values(s.x_len(), 1);
    let mut w = values(s.w_len(), 2);
    table.mask_weights(&mut w);
    let b = values(s.out_c, 3);
    let r = values(s.y_len(), 4);
    let c: Vec<f32> = values(s.y_len(), 5).iter().map(|v| v.abs()).collect();
    let y_of = |x: &[f32], w: &[f32], b: &[f32]| {
        let mut y = vec![0.0; s.y_len()];
        conv::forward(Algo::Naive, &s, t, x, w, b, &mut y, &mut ConvWorkspace::default());
        y
    };
    let mut ws = ConvWorkspace::default();
    let mut dx = vec![0.0; s.x_len()];
    conv::x_backward(Algo::Naive, &s, t, &w, &r, &mut dx, &mut ws);
    let (mut dw, mut db) = (vec![0.0; s.w_len()], vec![0.0; s.out_c]);
    conv::weight_backward(Algo::Naive, &s, t, &x, &r, &mut dw, &mut db, &mut ws);
    check_first("conv dx", &x, &dx, 1e-2, 2e-3, |x| dot(&r, &y_of(x, &w, &b)));
    // only connected weights are parameters; unconnected ones must have zero gradient
    let mut dw_masked = dw.clone();
    table.mask_weights(&mut dw_masked);
    assert_eq!(dw, dw_masked);
    check_first("conv dw", &w, &dw, 1e-2, 2e-3, |w| {
        let mut w = w.to_vec();
        table.mask_weights(&mut w);
        dot(&r, &y_of(&x, &w, &b))
    });
    check_first("conv db", &b, &db, 1e-2, 2e-3, |b| dot(&r, &y_of(&x, &w, b)));

    let mut d2x = vec![0.0; s.x_len()];
    conv::x_backward_second(Algo::Naive, &s, t, &w, &c, &mut d2x, &mut ws);
    check_second("conv d2x", &x, &d2x, |x| {
        half_weighted_square(&c, &y_of(x, &w, &b))
    });
    let (mut d2w, mut d2b) = (vec![0.0; s.w_len()], vec![0.0; s.out_c]);
    conv::weight_backward_second(Algo::Naive, &s, t, &x, &c, &mut d2w, &mut d2b, &mut ws);
    check_second("conv d2w", &w, &d2w, |w| {
        let mut w = w.to_vec();
        table.mask_weights(&mut w);
        half_weighted_square(&c, &y_of(&x, &w, &b))
    });
    check_second("conv d2b", &b, &d2b, |b| {
        half_weighted_square(&c, &y_of(&x, &w, b))
    });
}

#[test]
fn fc_gradients() {
    let s = FcShape {
        batch: 3,
        in_f: 7,
        out_f: 5,
    };
    let x = values(21, 1);
    let w = values(35, 2);
    let b = values(5, 3);
    let r = values(15, 4);
    let c: Vec<f32> = values(15, 5).iter().map(|v| v.abs()).collect();
    let y_of = |x: &[f32], w: &[f32], b: &[f32]| {
        let mut y = vec![0.0; 15];
        fc::forward(Algo::Naive, &s, x, w, b, &mut y, &mut fc::FcWorkspace::default());
        y
    };
    let mut dx = vec![0.0; 21];
    fc::x_backward(Algo::Naive, &s, &w, &r, &mut dx);
    let (mut dw, mut db) = (vec![0.0; 35], vec![0.0; 5]);
    fc::weight_backward(Algo::Naive, &s, &x, &r, &mut dw, &mut db);
    check_first("fc dx", &x, &dx, 1e-2, 2e-3, |x| dot(&r, &y_of(x, &w, &b)));
    check_first("fc dw", &w, &dw, 1e-2, 2e-3, |w| dot(&r, &y_of(&x, w, &b)));
    check_first("fc db", &b, &db, 1e-2, 2e-3, |b| dot(&r, &y_of(&x, &w, b)));
    let mut sq = Vec::new();
    let mut d2x = vec![0.0; 21];
    fc::x_backward_second(Algo::Naive, &s, &w, &c, &mut d2x, &mut sq);
    check_second("fc d2x", &x, &d2x, |x| half_weighted_square(&c, &y_of(x, &w, &b)));
    let (mut d2w, mut d2b) = (vec![0.0; 35], vec![0.0; 5]);
    fc::weight_backward_second(Algo::Naive, &s, &x, &c, &mut d2w, &mut d2b, &mut sq);
    check_second("fc d2w", &w, &d2w, |w| half_weighted_square(&c, &y_of(&x, w, &b)));
    check_second("fc d2b", &b, &d2b, |b| half_weighted_square(&c, &y_of(&x, &w, b)));
}

#[test]
fn pooling_and_subsampling_gradients() {
    let s = PoolShape {
        batch: 2,
        c: 3,
        h: 4,
        w: 6,
    };
    // distinct values at least 0.05 apart, so max pooling has no near-ties
    let mut x: Vec<f32> = (0..s.x_len())
        .map(|i| ((i * 37) % s.x_len()) as f32 * 0.05 - 1.0)
        .collect();
    x.rotate_left(5);
    let r = values(s.y_len(), 4);
    let c: Vec<f32> = values(s.y_len(), 5).iter().map(|v| v.abs()).collect();

    let avg = |x: &[f32]| {
        let mut y = vec![0.0; s.y_len()];
        pool::avg_forward(&s, x, &mut y);
        y
    };
    let mut dx = vec![0.0; s.x_len()];
    pool::avg_x_backward(&s, &r, &mut dx);
    check_first("avg dx", &x, &dx, 1e-2, 2e-3, |x| dot(&r, &avg(x)));
    pool::avg_x_backward_second(&s, &c, &mut dx);
    check_second("avg d2x", &x, &dx, |x| half_weighted_square(&c, &avg(x)));

    let max = |x: &[f32]| {
        let (mut y, mut am) = (vec![0.0; s.y_len()], vec![0u8; s.y_len()]);
        pool::max_forward(&s, x, &mut y, &mut am);
        (y, am)
    };
    let (_, am) = max(&x);
    pool::max_x_backward(&s, &am, &r, &mut dx);
    check_first("max dx", &x, &dx, 1e-2, 2e-3, |x| dot(&r, &max(x).0));

    let coeff = values(3, 6);
    let bias = values(3, 7);
    let sub = |x: &[f32], cf: &[f32], b: &[f32]| {
        let mut y = vec![0.0; s.y_len()];
        subsample::forward(&s, x, cf, b, &mut y);
        y
    };
    subsample::x_backward(&s, &coeff, &r, &mut dx);
    check_first("subsample dx", &x, &dx, 1e-2, 2e-3, |x| {
        dot(&r, &sub(x, &coeff, &bias))
    });
    let (mut dc, mut db) = (vec![0.0; 3], vec![0.0; 3]);
    subsample::weight_backward(&s, &x, &r, &mut dc, &mut db);
    check_first("subsample dcoeff", &coeff, &dc, 1e-2, 2e-3, |cf| {
        dot(&r, &sub(&x, cf, &bias))
    });
    check_first("subsample dbias", &bias, &db, 1e-2, 2e-3, |b| {
        dot(&r, &sub(&x, &coeff, b))
    });
    subsample::x_backward_second(&s, &coeff, &c, &mut dx);
    check_second("subsample d2x", &x, &dx, |x| {
        half_weighted_square(&c, &sub(x, &coeff, &bias))
    });
    subsample::weight_backward_second(&s, &x, &c, &mut dc, &mut db);
    check_second("subsample d2bias", &bias, &db, |b| {
        half_weighted_square(&c, &sub(&x, &coeff, b))
    });
    // The paper's rule for a shared coefficient sums x_j^2 over its connections; with one
    // window per output that is the exact diagonal only when a window has one nonzero input.
    let one_hot: Vec<f32> = (0..s.x_len())
        .map(|i| {
            if i % 2 == 0 && (i / s.w).is_multiple_of(2) {
                x[i]
            } else {
                0.0
            }
        })
        .collect();
    subsample::weight_backward_second(&s, &one_hot, &c, &mut dc, &mut db);
    check_second("subsample d2coeff", &coeff, &dc, |cf| {
        half_weighted_square(&c, &sub(&one_hot, cf, &bias))
    });
}

#[test]
fn activation_derivatives() {
    let a: Vec<f32> = (0..200).map(|i| (i as f32 - 100.0) * 0.037 + 0.011).collect();
    for act in Activation::ALL {
        let mut y = vec![0.0; a.len()];
        act.forward(&a, &mut y);
        let r = values(a.len(), 9);
        let mut da = vec![0.0; a.len()];
        act.backward(&a, &y, &r, &mut da);
        // element-wise: check each derivative separately (kinks at 0 are avoided by the grid)
        for i in 0..a.len() {
            let e = 1e-3f32;
            let numeric = (act.apply(a[i] + e) as f64 - act.apply(a[i] - e) as f64) / (2.0 * e as f64);
            let analytic = da[i] as f64 / r[i] as f64;
            assert!(
                (numeric - analytic).abs() < 2e-3 * analytic.abs().max(1.0),
                "{act:?} at {}: numeric {numeric}, analytic {analytic}",
                a[i]
            );
        }
        let mut d2a = vec![0.0; a.len()];
        act.backward_second(&a, &y, &r, &mut d2a);
        for i in 0..a.len() {
            let d = act.derivative(a[i], y[i]);
            assert!((d2a[i] - d * d * r[i]).abs() <= 1e-6 * (d * d * r[i]).abs().max(1e-6));
        }
    }
}
