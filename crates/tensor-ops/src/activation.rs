//! Element-wise activations and their derivatives.
//!
//! Each backward pass takes both the pre-activation `a` and the output `y = f(a)`
//! (whichever gives the derivative more cheaply): for the tanh family
//! `f'` comes from `y` alone, so no second transcendental call is needed.
//!
//! `tanh` is evaluated by [`tanh_fast`], a branch-free rational approximation
//! that compiles to vector instructions (the activations run ~490M times per
//! epoch; a scalar libm call per value would dominate). Its polynomials use fused
//! multiply-adds on AVX2 and AVX-512 (the same bits on both, and the same as
//! [`tanh_fast`] and [`Activation::apply`]); the portable path multiplies and adds
//! separately.

use crate::simd::{with_isa, Simd};

/// An activation function.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Activation {
    /// LeNet-5's squashing function `1.7159 tanh(2a/3)`: f(1) = 1, f(-1) = -1.
    ScaledTanh,
    /// `tanh(a)`.
    Tanh,
    /// Logistic `1 / (1 + e^-a)`.
    Sigmoid,
    /// `max(a, 0)`.
    Relu,
    /// `a` for `a > 0`, `alpha a` otherwise (alpha fixed).
    Prelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// `a` for `a > 0`, `alpha (e^a - 1)` otherwise.
    Elu {
        /// Scale of the negative branch: the output tends to `-alpha` as `a` goes to minus infinity.
        alpha: f32,
    },
}

/// Amplitude A of the scaled tanh.
pub const SCALED_TANH_A: f32 = 1.7159;
/// Slope S of the scaled tanh.
pub const SCALED_TANH_S: f32 = 2.0 / 3.0;

/// `tanh(x)` to within 1e-6 relative error (tested against `f64::tanh`), branch-free:
/// an odd rational function `x P(x^2) / Q(x^2)` of degrees 13/6 on `[-7.9, 7.9]`
/// (the minimax approximation used by Eigen), clamped outside, where tanh
/// rounds to +-1 in `f32`.
///
/// ```
/// let t = tensor_ops::activation::tanh_fast(0.5);
/// assert!((t - 0.5f32.tanh()).abs() < 1e-7);
/// ```
#[inline(always)]
pub fn tanh_fast(x: f32) -> f32 {
    tanh_with(x, f32::mul_add)
}

/// [`tanh_fast`] with `mul_add(a, b, c)` for its multiply-adds.
#[inline(always)]
#[allow(clippy::excessive_precision)] // coefficients as published
fn tanh_with(x: f32, mul_add: impl Fn(f32, f32, f32) -> f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_671_5e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525_2e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    // Horner's rule, one multiply-add per step (written out: a `fold` would be
    // a call that the kernels' instruction set might not reach)
    let mut p = A13;
    for c in [A11, A9, A7, A5, A3, A1] {
        p = mul_add(p, x2, c);
    }
    let mut q = B6;
    for c in [B4, B2, B0] {
        q = mul_add(q, x2, c);
    }
    p * x / q
}

impl Activation {
    /// `f(a)` for one value (fused multiply-adds in the tanh: the values of the
    /// AVX2 and AVX-512 kernels).
    #[inline(always)]
    pub fn apply(self, a: f32) -> f32 {
        self.apply_with(a, f32::mul_add)
    }

    /// `f(a)` with token `s`'s multiply-adds in the tanh.
    #[inline(always)]
    fn apply_on<S: Simd>(self, s: S, a: f32) -> f32 {
        self.apply_with(
            a,
            #[inline(always)]
            |a, b, c| s.mul_add1(a, b, c),
        )
    }

    #[inline(always)]
    fn apply_with(self, a: f32, mul_add: impl Fn(f32, f32, f32) -> f32 + Copy) -> f32 {
        match self {
            Activation::ScaledTanh => SCALED_TANH_A * tanh_with(SCALED_TANH_S * a, mul_add),
            Activation::Tanh => tanh_with(a, mul_add),
            // 1 / (1 + e^-a) = (1 + tanh(a/2)) / 2, vectorisable through the tanh
            Activation::Sigmoid => 0.5 + 0.5 * tanh_with(0.5 * a, mul_add),
            Activation::Relu => a.max(0.0),
            Activation::Prelu { alpha } => {
                if a > 0.0 {
                    a
                } else {
                    alpha * a
                }
            }
            Activation::Elu { alpha } => {
                if a > 0.0 {
                    a
                } else {
                    alpha * a.exp_m1()
                }
            }
        }
    }

    /// `f'(a)`, given `a` and `y = f(a)`.
    #[inline(always)]
    pub fn derivative(self, a: f32, y: f32) -> f32 {
        match self {
            Activation::ScaledTanh => {
                (SCALED_TANH_S / SCALED_TANH_A) * (SCALED_TANH_A * SCALED_TANH_A - y * y)
            }
            Activation::Tanh => 1.0 - y * y,
            Activation::Sigmoid => y * (1.0 - y),
            Activation::Relu => {
                if a > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Prelu { alpha } => {
                if a > 0.0 {
                    1.0
                } else {
                    alpha
                }
            }
            Activation::Elu { alpha } => {
                if a > 0.0 {
                    1.0
                } else {
                    y + alpha
                }
            }
        }
    }

    /// `y = f(a)` element-wise.
    pub fn forward(self, a: &[f32], y: &mut [f32]) {
        assert_eq!(a.len(), y.len());
        with_isa!(s => self.forward_on(s, a, y))
    }

    #[inline(always)]
    fn forward_on<S: Simd>(self, s: S, a: &[f32], y: &mut [f32]) {
        // One loop per variant so that each compiles to its own vector loop.
        macro_rules! map {
            ($f:expr) => {
                y.iter_mut()
                    .zip(a)
                    .for_each(|(y, &a)| *y = $f.apply_on(s, a))
            };
        }
        match self {
            Activation::ScaledTanh => map!(Activation::ScaledTanh),
            Activation::Tanh => map!(Activation::Tanh),
            Activation::Sigmoid => map!(Activation::Sigmoid),
            other => map!(other),
        }
    }

    /// `da = f'(a) * dy` element-wise.
    pub fn backward(self, a: &[f32], y: &[f32], dy: &[f32], da: &mut [f32]) {
        self.chain(a, y, dy, da, |d| d);
    }

    /// Gauss-Newton second derivatives: `d2a = f'(a)^2 * d2y`.
    pub fn backward_second(self, a: &[f32], y: &[f32], d2y: &[f32], d2a: &mut [f32]) {
        self.chain(a, y, d2y, d2a, |d| d * d);
    }

    fn chain(self, a: &[f32], y: &[f32], g: &[f32], out: &mut [f32], power: impl Fn(f32) -> f32 + Copy) {
        assert!(a.len() == y.len() && y.len() == g.len() && g.len() == out.len());
        with_isa!(_s => self.chain_loops(a, y, g, out, power))
    }

    #[inline(always)]
    fn chain_loops(self, a: &[f32], y: &[f32], g: &[f32], out: &mut [f32], power: impl Fn(f32) -> f32) {
        // One loop per variant (as in `forward`): with the `match` inside the loop
        // the compiler keeps it scalar.
        macro_rules! map {
            ($f:expr) => {
                for (((o, &a), &y), &g) in out.iter_mut().zip(a).zip(y).zip(g) {
                    *o = power($f.derivative(a, y)) * g;
                }
            };
        }
        match self {
            Activation::ScaledTanh => map!(Activation::ScaledTanh),
            Activation::Tanh => map!(Activation::Tanh),
            Activation::Sigmoid => map!(Activation::Sigmoid),
            Activation::Relu => map!(Activation::Relu),
            other => map!(other),
        }
    }

    /// The name used in options and files.
    pub const fn name(self) -> &'static str {
        match self {
            Activation::ScaledTanh => "scaled-tanh",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
            Activation::Prelu { .. } => "prelu",
            Activation::Elu { .. } => "elu",
        }
    }

    /// Every activation with its default parameter (PReLU 0.25, ELU 1).
    pub const ALL: [Activation; 6] = [
        Activation::ScaledTanh,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Relu,
        Activation::Prelu { alpha: 0.25 },
        Activation::Elu { alpha: 1.0 },
    ];
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| format!("unknown activation {s:?} (scaled-tanh, tanh, sigmoid, relu, prelu, elu)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_fast_is_accurate_to_1e6_relative() {
        let mut worst = 0.0f64;
        let mut x = -12.0f32;
        while x <= 12.0 {
            for v in [x, x * 1e-3, x * 1e-6] {
                let exact = (v as f64).tanh();
                let err = ((tanh_fast(v) as f64 - exact) / exact.abs().max(1e-30)).abs();
                worst = worst.max(if v == 0.0 { 0.0 } else { err });
            }
            x += 1e-3;
        }
        assert!(worst < 1e-6, "worst relative error {worst:e}");
        // and against f32::tanh, the issue's yardstick
        for i in -1000..=1000 {
            let v = i as f32 * 0.01;
            assert!((tanh_fast(v) - v.tanh()).abs() <= 1e-6 * v.tanh().abs().max(1e-6));
        }
        assert_eq!(tanh_fast(0.0), 0.0);
        assert_eq!(tanh_fast(100.0), tanh_fast(7.905_311));
    }

    #[test]
    fn scaled_tanh_hits_plus_minus_one() {
        let f = Activation::ScaledTanh;
        assert!((f.apply(1.0) - 1.0).abs() < 2e-4);
        assert!((f.apply(-1.0) + 1.0).abs() < 2e-4);
    }

    #[test]
    fn names_round_trip() {
        for a in Activation::ALL {
            assert_eq!(a.name().parse::<Activation>().unwrap(), a);
        }
    }
}
