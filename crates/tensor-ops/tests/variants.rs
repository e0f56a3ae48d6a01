//! Every fast variant equals the naive specification (1e-5 relative), forward and
//! every backward, for random shapes: batch 1-8, channels 1-8, sizes 5-16, kernel
//! 1-5, padding 0-2, with and without a connection table.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a bad case should stop loudly

mod common;

use common::{abs, assert_close, by_groups, conv_magnitudes, conv_passes, table, values, PASSES};
use proptest::prelude::*;
use tensor_ops::conv::{self, ConnTable, ConvShape, ConvWorkspace};
use tensor_ops::fc::{self, FcShape, FcWorkspace};
use tensor_ops::pool::{self, PoolShape};
use tensor_ops::{subsample, update, Algo};

fn shape_and_table() -> impl Strategy<Value = (ConvShape, Option<ConnTable>, u64)> {
    (
        // batch: up to two and a half groups of the lanes kernel (8 images)
        1usize..=20,
        1usize..=8,
        5usize..=16,
        5usize..=16,
        1usize..=8,
        1usize..=5,
        0usize..=2,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(batch, in_c, in_h, in_w, out_c, k, pad, use_table, seed)| {
            let s = ConvShape {
                batch,
                in_c,
                in_h,
                in_w,
                out_c,
                k,
                pad,
            };
            let table = use_table.then(|| table(out_c, in_c, seed));
            (s, table, seed)
        })
}

/// A convolution's input, weights (zero where `t` has no connection) and bias,
/// drawn from `seed`.
fn conv_operands(s: &ConvShape, t: Option<&ConnTable>, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut w = values(s.w_len(), seed ^ 1);
    if let Some(t) = t {
        t.mask_weights(&mut w);
    }
    (values(s.x_len(), seed), w, values(s.out_c, seed ^ 2))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn conv_variants_match_naive((s, table, seed) in shape_and_table()) {
        let t = table.as_ref();
        let (x, w, b) = conv_operands(&s, t, seed);
        let dy = values(s.y_len(), seed ^ 3);
        let naive = conv_passes(Algo::Naive, &s, t, &x, &w, &b, &dy);
        let magnitude = conv_magnitudes(&s, t, &x, &w, &b, &dy);
        for algo in [Algo::Im2col, Algo::Parallel] {
            let fast = conv_passes(algo, &s, t, &x, &w, &b, &dy);
            for (name, ((f, n), m)) in PASSES.iter().zip(fast.iter().zip(&naive).zip(&magnitude)) {
                assert_close(&format!("{algo:?} {name} {s:?}"), f, n, m)?;
            }
        }
    }

    // one image and a 5 x 5 kernel: the parallel variant's direct kernels
    // (`conv/direct.rs`), which sum as im2col's product does; 16 output maps
    #[test]
    fn direct_maps_kernel_is_im2col_bit_for_bit(
        in_c in 2usize..=8,
        in_h in 6usize..=16,
        in_w in 5usize..=16,
        use_table in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let s = ConvShape { batch: 1, in_c, in_h, in_w, out_c: 16, k: 5, pad: 0 };
        direct_is_im2col_bit_for_bit(&s, use_table, seed)?;
    }

    // rows of 16 output values or more
    #[test]
    fn direct_columns_kernel_is_im2col_bit_for_bit(
        in_c in 1usize..=3,
        in_h in 5usize..=12,
        in_w in 20usize..=40,
        out_c in 1usize..=15,
        use_table in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let s = ConvShape { batch: 1, in_c, in_h, in_w, out_c, k: 5, pad: 0 };
        direct_is_im2col_bit_for_bit(&s, use_table, seed)?;
    }

    // batches up to 140: from 16 rows per task on, the forward pass packs the
    // weights for its own micro-kernel (`fc::forward`; the parallel variant's
    // tasks have half the rows). Its workspace has packed other weights first (one
    // value changed in sign), and must not reuse them.
    #[test]
    fn fc_variants_match_naive(batch in 1usize..=140, in_f in 1usize..=64, out_f in 1usize..=32, seed in any::<u64>()) {
        let s = FcShape { batch, in_f, out_f };
        let x = values(batch * in_f, seed);
        let w = values(out_f * in_f, seed ^ 1);
        let b = values(out_f, seed ^ 2);
        let dy = values(batch * out_f, seed ^ 3);
        let run = |algo: Algo, x: &[f32], w: &[f32], b: &[f32], dy: &[f32]| {
            let mut sq = Vec::new();
            let mut y = vec![0.0; batch * out_f];
            let mut ws = FcWorkspace::default();
            let mut other_w = w.to_vec();
            other_w[0] = -other_w[0];
            fc::forward(algo, &s, x, &other_w, b, &mut y, &mut ws);
            fc::forward(algo, &s, x, w, b, &mut y, &mut ws);
            let mut dx = vec![0.0; batch * in_f];
            fc::x_backward(algo, &s, w, dy, &mut dx);
            let (mut dw, mut db) = (vec![0.0; out_f * in_f], vec![0.0; out_f]);
            fc::weight_backward(algo, &s, x, dy, &mut dw, &mut db);
            let mut d2x = vec![0.0; batch * in_f];
            fc::x_backward_second(algo, &s, w, dy, &mut d2x, &mut sq);
            let (mut d2w, mut d2b) = (vec![0.0; out_f * in_f], vec![0.0; out_f]);
            fc::weight_backward_second(algo, &s, x, dy, &mut d2w, &mut d2b, &mut sq);
            [y, dx, dw, db, d2x, d2w, d2b]
        };
        let naive = run(Algo::Naive, &x, &w, &b, &dy);
        let magnitude = run(Algo::Naive, &abs(&x), &abs(&w), &abs(&b), &abs(&dy));
        for algo in [Algo::Im2col, Algo::Parallel] {
            for ((f, n), m) in run(algo, &x, &w, &b, &dy).iter().zip(&naive).zip(&magnitude) {
                assert_close(&format!("{algo:?} {s:?}"), f, n, m)?;
            }
        }
    }
}

/// `values` scaled off the 24-bit grid: the sums of a few of them round, so a
/// different order of additions or a fused multiply-add changes their bits.
fn rounding(len: usize, seed: u64) -> Vec<f32> {
    values(len, seed).iter().map(|v| v * 1.377).collect()
}

/// The operands of a descent step on the way back (`w`, `b`, `x`, `dy`) and its
/// step, as [`update::Descent`] holds it: `(lr, weight rates, bias rates)`.
struct StepCase {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
    lr: f32,
    weight_rate: Vec<f32>,
    bias_rate: Vec<f32>,
}

impl StepCase {
    fn new(x_len: usize, w_len: usize, b_len: usize, dy_len: usize, seed: u64) -> Self {
        StepCase {
            x: rounding(x_len, seed),
            w: rounding(w_len, seed ^ 1),
            b: rounding(b_len, seed ^ 2),
            dy: rounding(dy_len, seed ^ 3),
            lr: 0.0371,
            weight_rate: abs(&rounding(w_len, seed ^ 4)),
            bias_rate: abs(&rounding(b_len, seed ^ 5)),
        }
    }

    fn step(&self) -> update::Descent<'_> {
        update::Descent {
            lr: self.lr,
            weight_rate: &self.weight_rate,
            bias_rate: &self.bias_rate,
        }
    }

    /// The gradients, then `dx`, then the step, each pass on its own: what
    /// `backward_descend` must equal. Returns `(w, b, dx)` after the step.
    fn separate(
        &self,
        backward: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]),
        dx_len: usize,
    ) -> [Vec<f32>; 3] {
        let (mut dw, mut db, mut dx) = (
            vec![0.0; self.w.len()],
            vec![0.0; self.b.len()],
            vec![0.0; dx_len],
        );
        backward(&mut dw, &mut db, &mut dx);
        let (mut w, mut b) = (self.w.clone(), self.b.clone());
        update::descend(&mut w, &dw, &self.weight_rate, self.lr);
        update::descend(&mut b, &db, &self.bias_rate, self.lr);
        [w, b, dx]
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // fused at one sample (C5 and F6 at batch 1), the passes in turn otherwise
    #[test]
    fn fc_descent_on_the_way_back_is_the_separate_passes(
        batch in 1usize..=3, in_f in 1usize..=64, out_f in 1usize..=32, with_dx in any::<bool>(), seed in any::<u64>()
    ) {
        let s = FcShape { batch, in_f, out_f };
        let case = StepCase::new(batch * in_f, out_f * in_f, out_f, batch * out_f, seed);
        for algo in [Algo::Naive, Algo::Im2col, Algo::Parallel] {
            let [w_sep, b_sep, dx_sep] = case.separate(|dw, db, dx| {
                fc::weight_backward(algo, &s, &case.x, &case.dy, dw, db);
                fc::x_backward(algo, &s, &case.w, &case.dy, dx);
            }, batch * in_f);
            let (mut w, mut b, mut dx) = (case.w.clone(), case.b.clone(), vec![0.0; batch * in_f]);
            let (mut dw, mut db) = (vec![0.0; out_f * in_f], vec![0.0; out_f]);
            let t = update::WeightBias { w: &mut w, b: &mut b, dw: &mut dw, db: &mut db };
            let dx_arg = with_dx.then_some(&mut dx[..]);
            fc::backward_descend(algo, &s, &case.x, &case.dy, t, case.step(), dx_arg);
            prop_assert_eq!(bits(&w), bits(&w_sep), "weights {:?} {:?}", algo, s);
            prop_assert_eq!(bits(&b), bits(&b_sep), "biases {:?} {:?}", algo, s);
            if with_dx {
                prop_assert_eq!(bits(&dx), bits(&dx_sep), "dx {:?} {:?}", algo, s);
            }
        }
    }

    // dense kernels (C5: the kernel covers the input) and any other convolution
    #[test]
    fn conv_descent_on_the_way_back_is_the_separate_passes(
        (s, table, seed) in shape_and_table(), dense in any::<bool>()
    ) {
        let s = if dense {
            ConvShape { in_h: s.k, in_w: s.k, pad: 0, batch: s.batch.min(3), ..s }
        } else {
            s
        };
        let t = table.as_ref();
        let mut case = StepCase::new(s.x_len(), s.w_len(), s.out_c, s.y_len(), seed);
        if let Some(t) = t {
            t.mask_weights(&mut case.w);
        }
        for algo in [Algo::Naive, Algo::Im2col, Algo::Parallel] {
            let mut ws = ConvWorkspace::default();
            let [w_sep, b_sep, dx_sep] = case.separate(|dw, db, dx| {
                conv::weight_backward(algo, &s, t, &case.x, &case.dy, dw, db, &mut ws);
                conv::x_backward(algo, &s, t, &case.w, &case.dy, dx, &mut ws);
            }, s.x_len());
            let (mut w, mut b, mut dx) = (case.w.clone(), case.b.clone(), vec![0.0; s.x_len()]);
            let (mut dw, mut db) = (vec![0.0; s.w_len()], vec![0.0; s.out_c]);
            let wb = update::WeightBias { w: &mut w, b: &mut b, dw: &mut dw, db: &mut db };
            conv::backward_descend(algo, &s, t, &case.x, &case.dy, wb, case.step(), Some(&mut dx), &mut ws);
            prop_assert_eq!(bits(&w), bits(&w_sep), "weights {:?} {:?}", algo, s);
            prop_assert_eq!(bits(&b), bits(&b_sep), "biases {:?} {:?}", algo, s);
            prop_assert_eq!(bits(&dx), bits(&dx_sep), "dx {:?} {:?}", algo, s);
        }
    }
}

/// Every pass of the parallel variant on `s`, which it runs with a direct
/// kernel, has the bits of the im2col variant's and is close to the naive one.
fn direct_is_im2col_bit_for_bit(s: &ConvShape, use_table: bool, seed: u64) -> Result<(), TestCaseError> {
    prop_assert_eq!(conv::plan(Algo::Parallel, s).method, tensor_ops::Method::Direct);
    let table = use_table.then(|| table(s.out_c, s.in_c, seed));
    let t = table.as_ref();
    let (x, w, b) = conv_operands(s, t, seed);
    let dy = values(s.y_len(), seed ^ 3);
    let parallel = conv_passes(Algo::Parallel, s, t, &x, &w, &b, &dy);
    let im2col = conv_passes(Algo::Im2col, s, t, &x, &w, &b, &dy);
    let naive = conv_passes(Algo::Naive, s, t, &x, &w, &b, &dy);
    let magnitude = conv_magnitudes(s, t, &x, &w, &b, &dy);
    for (name, ((p, i), (n, m))) in PASSES
        .iter()
        .zip(parallel.iter().zip(&im2col).zip(naive.iter().zip(&magnitude)))
    {
        prop_assert_eq!(bits(p), bits(i), "{} {:?}", name, s);
        assert_close(&format!("direct {name} {s:?}"), p, n, m)?;
    }
    Ok(())
}

#[test]
fn parallel_results_do_not_depend_on_the_thread_count() {
    /// `f` on a pool of 1 thread, then of 2 and 3: every result must be identical.
    fn same_on_any_thread_count<T: PartialEq + std::fmt::Debug + Send>(
        what: &str,
        f: impl Fn() -> T + Sync + Send,
    ) {
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(&f)
        };
        let one = on(1);
        for threads in [2, 3] {
            assert!(
                on(threads) == one,
                "{what}: results differ with {threads} threads"
            );
        }
    }

    // C3 and C1 shapes: forward, weight gradient, input gradient
    for (in_c, size, out_c) in [(6, 14, 16), (1, 32, 6)] {
        let s = ConvShape::square(7, in_c, size, out_c, 5);
        let (x, w, dy) = (values(s.x_len(), 1), values(s.w_len(), 2), values(s.y_len(), 3));
        same_on_any_thread_count(&format!("conv {s:?}"), || {
            let mut ws = ConvWorkspace::default();
            let mut y = vec![0.0; s.y_len()];
            conv::forward(
                Algo::Parallel,
                &s,
                None,
                &x,
                &w,
                &vec![0.0; out_c],
                &mut y,
                &mut ws,
            );
            let (mut dw, mut db) = (vec![0.0; s.w_len()], vec![0.0; out_c]);
            conv::weight_backward(Algo::Parallel, &s, None, &x, &dy, &mut dw, &mut db, &mut ws);
            let mut dx = vec![0.0; s.x_len()];
            conv::x_backward(Algo::Parallel, &s, None, &w, &dy, &mut dx, &mut ws);
            (y, dw, db, dx)
        });
    }

    // the fully-connected kernels (C5 as FC, F6), batch split and output split
    for (batch, in_f, out_f) in [(7, 400, 120), (32, 120, 84), (5, 84, 10)] {
        let fs = fc::FcShape { batch, in_f, out_f };
        let (x, w, dy) = (
            values(batch * in_f, 4),
            values(out_f * in_f, 5),
            values(batch * out_f, 6),
        );
        same_on_any_thread_count(&format!("fc {fs:?}"), || {
            let mut y = vec![0.0; batch * out_f];
            let mut ws = FcWorkspace::default();
            fc::forward(Algo::Parallel, &fs, &x, &w, &vec![0.1; out_f], &mut y, &mut ws);
            let (mut dw, mut db) = (vec![0.0; out_f * in_f], vec![0.0; out_f]);
            fc::weight_backward(Algo::Parallel, &fs, &x, &dy, &mut dw, &mut db);
            let mut dx = vec![0.0; batch * in_f];
            fc::x_backward(Algo::Parallel, &fs, &w, &dy, &mut dx);
            (y, dw, db, dx)
        });
    }

    // the element-wise updates, long enough to be cut into one piece per thread,
    // and each value as the scalar formula gives it
    let len = 3 * tensor_ops::threads::ELEMENTWISE_MIN_PIECE + 5;
    let (w, g, rate, v) = (values(len, 7), values(len, 8), values(len, 9), values(len, 10));
    let (lr, momentum) = (0.03, 0.9);
    let updated = || {
        let (mut w_sgd, mut w_m, mut v_m, mut g_mean) = (w.clone(), w.clone(), v.clone(), g.clone());
        update::descend(&mut w_sgd, &g, &rate, lr);
        update::descend_momentum(&mut w_m, &mut v_m, &g, &rate, lr, momentum);
        update::mean_of_parts(&mut g_mean, &v, 20, 12);
        (w_sgd, w_m, v_m, g_mean)
    };
    same_on_any_thread_count("updates", updated);
    let (w_sgd, w_m, v_m, g_mean) = updated();
    for i in 0..len {
        assert_eq!(w_sgd[i], w[i] - lr * rate[i] * g[i], "descend at {i}");
        let v_i = momentum * v[i] + rate[i] * g[i];
        assert_eq!(
            (w_m[i], v_m[i]),
            (w[i] - lr * v_i, v_i),
            "descend_momentum at {i}"
        );
        assert_eq!(
            g_mean[i],
            (g[i] * 20.0 + v[i] * 12.0) / 32.0,
            "mean_of_parts at {i}"
        );
    }
}

/// LeNet's own C1 and C3 shapes, which random shapes seldom hit: the im2col path
/// has loops specialised to them (`unfold` and `fold` with 28 and 10 output
/// columns), checked here against the naive loops at batch 1 and 3; the lanes
/// kernel of the parallel variant has its own compiled 5 x 5 kernel row and pairs
/// output maps in the weight gradient (C1: 3 pairs, C3 without the table: 8),
/// checked at batch 9 (a full group of 8 images and a padded one).
#[test]
fn lenet_shapes_match_naive() {
    let shapes = [
        (1, 1, 32, 6),
        (1, 6, 14, 16),
        (3, 6, 14, 16),
        (9, 1, 32, 6),
        (9, 6, 14, 16),
    ];
    for (batch, in_c, size, out_c) in shapes {
        let s = ConvShape::square(batch, in_c, size, out_c, 5);
        let (x, w, b, dy) = (
            values(s.x_len(), 4),
            values(s.w_len(), 5),
            values(out_c, 6),
            values(s.y_len(), 7),
        );
        let naive = conv_passes(Algo::Naive, &s, None, &x, &w, &b, &dy);
        let magnitude = conv_magnitudes(&s, None, &x, &w, &b, &dy);
        for algo in [Algo::Im2col, Algo::Parallel] {
            let fast = conv_passes(algo, &s, None, &x, &w, &b, &dy);
            for (name, ((f, n), m)) in PASSES.iter().zip(fast.iter().zip(&naive).zip(&magnitude)) {
                assert_close(&format!("{name} {algo:?} {s:?}"), f, n, m).unwrap();
            }
        }
    }
}

/// The second-derivative input passes of a fully connected layer and of a
/// dense convolution (C5) give the bits of the first-derivative pass on the
/// squared weights, for every variant: at one sample they square each weight
/// where they read it (the squares never stored), at more the squares are
/// stored first.
#[test]
fn second_derivative_input_passes_are_the_product_of_the_squares() {
    for batch in [1, 3] {
        let s = FcShape {
            batch,
            in_f: 37,
            out_f: 11,
        };
        let w = values(s.in_f * s.out_f, 1);
        let d2y = values(batch * s.out_f, 2);
        let squares: Vec<f32> = w.iter().map(|v| v * v).collect();
        for algo in [Algo::Naive, Algo::Im2col, Algo::Parallel] {
            let mut fused = vec![f32::NAN; batch * s.in_f];
            fc::x_backward_second(algo, &s, &w, &d2y, &mut fused, &mut Vec::new());
            let mut stored = vec![f32::NAN; batch * s.in_f];
            fc::x_backward(algo, &s, &squares, &d2y, &mut stored);
            assert_eq!(bits(&fused), bits(&stored), "fc {algo:?} batch {batch}");
        }
        let c = ConvShape {
            batch,
            in_c: 4,
            in_h: 5,
            in_w: 5,
            out_c: 7,
            k: 5,
            pad: 0,
        };
        let w = values(c.w_len(), 3);
        let d2y = values(c.y_len(), 4);
        let squares: Vec<f32> = w.iter().map(|v| v * v).collect();
        for algo in [Algo::Naive, Algo::Im2col, Algo::Parallel] {
            let mut ws = ConvWorkspace::default();
            let mut fused = vec![f32::NAN; c.x_len()];
            conv::x_backward_second(algo, &c, None, &w, &d2y, &mut fused, &mut ws);
            let mut stored = vec![f32::NAN; c.x_len()];
            conv::x_backward(algo, &c, None, &squares, &d2y, &mut stored, &mut ws);
            assert_eq!(bits(&fused), bits(&stored), "dense conv {algo:?} batch {batch}");
        }
    }
}

/// Bits of `v`, for comparisons that must be exact.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The interleaved forward convolution is the lanes kernel: the same bits as
    /// the parallel variant where that runs it (from 8 images, kernels smaller
    /// than the input), and the naive loops' values to rounding everywhere.
    #[test]
    fn interleaved_conv_is_the_lanes_kernel((s, table, seed) in shape_and_table()) {
        let t = table.as_ref();
        let (x, w, b) = conv_operands(&s, t, seed);
        let one = ConvShape { batch: 1, ..s };
        let mut ws = ConvWorkspace::default();
        let got = by_groups(&x, (one.x_len(), one.y_len()), |x, y, count| {
            conv::forward_interleaved(&s, t, x, &w, &b, y, count, &mut ws)
        });
        let forward = |algo: Algo| {
            let mut y = vec![0.0; s.y_len()];
            conv::forward(algo, &s, t, &x, &w, &b, &mut y, &mut ConvWorkspace::default());
            y
        };
        let magnitude = {
            let mut y = vec![0.0; s.y_len()];
            let (x, w, b) = (abs(&x), abs(&w), abs(&b));
            conv::forward(Algo::Naive, &s, t, &x, &w, &b, &mut y, &mut ConvWorkspace::default());
            y
        };
        assert_close(&format!("interleaved {s:?}"), &got, &forward(Algo::Naive), &magnitude)?;
        if conv::plan(Algo::Parallel, &s).method == tensor_ops::Method::Lanes {
            prop_assert_eq!(bits(&got), bits(&forward(Algo::Parallel)));
        }
    }

    /// Interleaved subsampling sums each window as the batched kernel does.
    #[test]
    fn interleaved_subsampling_is_the_batched_kernel(
        batch in 1usize..=20, c in 1usize..=6, h in 2usize..=13, w in 2usize..=13, seed in any::<u64>()
    ) {
        let s = PoolShape { batch, c, h, w };
        let (x, k, bias) = (values(s.x_len(), seed), values(c, seed ^ 1), values(c, seed ^ 2));
        let one = PoolShape { batch: 1, ..s };
        let got = by_groups(&x, (one.x_len(), one.y_len()), |x, y, _| {
            subsample::forward_interleaved(&s, x, &k, &bias, y)
        });
        let mut want = vec![0.0; s.y_len()];
        subsample::forward(&s, &x, &k, &bias, &mut want);
        prop_assert_eq!(bits(&got), bits(&want));
    }

    /// Max pooling against its definition written window by window: the
    /// running maximum over (top left, top right, bottom left, bottom right),
    /// the first of equal values winning, and the gradient to that winner only.
    /// The values come from a few, with zeros of both signs and NaN, so that
    /// ties decide many windows.
    #[test]
    fn max_pooling_is_the_first_largest_of_each_window(
        batch in 1usize..=20, c in 1usize..=6, h in 2usize..=30, w in 2usize..=30, seed in any::<u64>()
    ) {
        let s = PoolShape { batch, c, h, w };
        let few = [0.0, -0.0, 1.0, -1.0, 0.5, f32::NAN];
        let x: Vec<f32> = values(s.x_len(), seed).iter().map(|v| few[(v.abs() * 6.0) as usize % 6]).collect();
        let (mut y, mut argmax) = (vec![7.0; s.y_len()], vec![9; s.y_len()]);
        pool::max_forward(&s, &x, &mut y, &mut argmax);
        let dy = values(s.y_len(), seed ^ 1);
        let mut dx = vec![7.0; s.x_len()];
        pool::max_x_backward(&s, &argmax, &dy, &mut dx);
        let mut want_dx = vec![0.0f32; s.x_len()];
        let (oh, ow) = (s.out_h(), s.out_w());
        for m in 0..s.maps() {
            for (p, q) in (0..oh).flat_map(|p| (0..ow).map(move |q| (p, q))) {
                let place = |i: usize, j: usize| (m * h + 2 * p + i) * w + 2 * q + j;
                let at = |i: usize, j: usize| x[place(i, j)];
                let (mut best, mut won) = (at(0, 0), 0);
                for (k, v) in [(1, at(0, 1)), (2, at(1, 0)), (3, at(1, 1))] {
                    if v > best {
                        (best, won) = (v, k);
                    }
                }
                let o = (m * oh + p) * ow + q;
                prop_assert_eq!(y[o].to_bits(), best.to_bits(), "map {} window {:?}", m, (p, q));
                prop_assert_eq!(argmax[o], won, "map {} window {:?}", m, (p, q));
                want_dx[place(won as usize / 2, won as usize % 2)] = dy[o];
            }
        }
        prop_assert_eq!(bits(&dx), bits(&want_dx));
    }

    #[test]
    fn interleaved_pooling_is_the_batched_kernel(
        batch in 1usize..=20, c in 1usize..=6, h in 2usize..=13, w in 2usize..=13, seed in any::<u64>()
    ) {
        let s = PoolShape { batch, c, h, w };
        // full mantissas (`values` has 24 bits of [-1, 1): its sums of four are
        // nearly always exact, whatever their order)
        let x: Vec<f32> = values(s.x_len(), seed).iter().map(|v| v * 1.377_f32).collect();
        let one = PoolShape { batch: 1, ..s };
        let lens = (one.x_len(), one.y_len());
        let avg = by_groups(&x, lens, |x, y, _| pool::avg_forward_interleaved(&s, x, y));
        let max = by_groups(&x, lens, |x, y, _| pool::max_forward_interleaved(&s, x, y));
        let (mut want_avg, mut want_max) = (vec![0.0; s.y_len()], vec![0.0; s.y_len()]);
        pool::avg_forward(&s, &x, &mut want_avg);
        pool::max_forward(&s, &x, &mut want_max, &mut vec![0; s.y_len()]);
        prop_assert_eq!(bits(&avg), bits(&want_avg));
        prop_assert_eq!(bits(&max), bits(&want_max));
    }
}

/// LeNet's dense layers (C5 as a convolution, F6 and the modern output as fully
/// connected layers) interleaved: the packed micro-kernel's sums, so the same bits
/// as the parallel variant on 32 samples (two tasks of 16 rows, which pack).
#[test]
fn interleaved_dense_layers_sum_as_the_packed_kernel() {
    let c5 = ConvShape::square(32, 16, 5, 120, 5);
    let (x, w, b) = (values(c5.x_len(), 1), values(c5.w_len(), 2), values(120, 3));
    let mut want = vec![0.0; c5.y_len()];
    conv::forward(
        Algo::Parallel,
        &c5,
        None,
        &x,
        &w,
        &b,
        &mut want,
        &mut ConvWorkspace::default(),
    );
    let mut ws = ConvWorkspace::default();
    let got = by_groups(&x, (400, 120), |x, y, count| {
        conv::forward_interleaved(&c5, None, x, &w, &b, y, count, &mut ws)
    });
    assert_eq!(bits(&got), bits(&want), "C5");
    for (in_f, out_f) in [(120, 84), (84, 10)] {
        let s = FcShape {
            batch: 32,
            in_f,
            out_f,
        };
        let (x, w, b) = (values(32 * in_f, 4), values(out_f * in_f, 5), values(out_f, 6));
        let mut want = vec![0.0; 32 * out_f];
        fc::forward(
            Algo::Parallel,
            &s,
            &x,
            &w,
            &b,
            &mut want,
            &mut FcWorkspace::default(),
        );
        let got = by_groups(&x, (in_f, out_f), |x, y, count| {
            fc::forward_interleaved(&s, x, &w, &b, y, count)
        });
        assert_eq!(bits(&got), bits(&want), "{in_f} -> {out_f}");
    }
}
