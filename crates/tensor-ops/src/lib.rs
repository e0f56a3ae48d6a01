//! # tensor-ops
//!
//! The numerical core of lenet5-rs: every computation LeNet-5 needs — forward,
//! backward, and the second-derivative (Gauss-Newton) backward used by SDLM — on
//! batched NCHW `f32` tensors held in plain slices.
//!
//! Each kernel with more than one implementation comes in the variants of [`Algo`]:
//! the **naive** loops are the readable specification; **im2col** + GEMM and
//! **parallel** (rayon) are tested against them (proptest over shapes). The choice
//! is made in one place per concept (e.g. [`conv::forward`] matches on `Algo`).
//!
//! | file | concept |
//! |---|---|
//! | [`conv`] | stride-1 2-D convolution with zero padding and an optional connection table |
//! | [`pool`] | 2x2 average and max pooling |
//! | [`subsample`] | LeNet's subsampling: sum of 4 inputs x trainable coefficient + bias |
//! | [`fc`] | fully-connected layer |
//! | [`activation`] | scaled tanh, tanh, sigmoid, ReLU, PReLU, ELU (+ derivatives) |
//! | [`interleaved`] | sixteen images interleaved value by value, for kernels with the batch in the vector lanes |
//! | [`gemm`] | matrix products: register tiles with one FMA chain per value, dot products in 16 fixed lanes, and a micro-kernel on packed weights |
//! | [`update`] | parameter updates: gradient descent, with and without momentum |
//! | [`AlignedVec`] | `f32` buffers from a 64-byte boundary, for parameters and packed weights |
//!
//! Second derivatives follow the paper's diagonal Gauss-Newton rules: a linear map's
//! input gets `sum w^2 * d2E/da2`, its weights `sum x^2 * d2E/da2`, an activation
//! multiplies by `f'(a)^2`. For linear kernels these are the first-derivative
//! kernels applied to squared operands, so they share one implementation.
//!
//! Three decisions are made in one place each: the algorithm of each call and
//! whether it is split over threads in its concept's `plan` ([`conv::plan`],
//! [`fc::plan`], returning a [`Plan`]) by the rules of [`threads`], and the
//! instruction set in [`simd`](crate::isa) (chosen at run time: AVX-512, AVX2+FMA
//! or portable).
//!
//! ```
//! use tensor_ops::conv::{self, ConvShape, ConvWorkspace};
//! use tensor_ops::{Algo, ConnTable};
//!
//! // LeNet-5's C3 on 2 images: [2, 6, 14, 14] -> [2, 16, 10, 10], 60 of 96 map pairs
//! let shape = ConvShape::square(2, 6, 14, 16, 5);
//! let table = ConnTable::lenet5_c3();
//! let x = vec![0.5; shape.x_len()];
//! // weights [16, 6, 5, 5], zero where the table has no connection
//! let w: Vec<f32> = (0..shape.w_len())
//!     .map(|i| if table.is_connected(i / 150, i / 25 % 6) { 0.1 } else { 0.0 })
//!     .collect();
//! let b = vec![0.0; 16];
//! let (mut naive, mut fast) = (vec![0.0; shape.y_len()], vec![0.0; shape.y_len()]);
//! let mut ws = ConvWorkspace::default();
//! conv::forward(Algo::Naive, &shape, Some(&table), &x, &w, &b, &mut naive, &mut ws);
//! conv::forward(Algo::Parallel, &shape, Some(&table), &x, &w, &b, &mut fast, &mut ws);
//! assert!(naive.iter().zip(&fast).all(|(a, b)| (a - b).abs() < 1e-4));
//! ```
//!
//! This crate knows nothing of layers, models, files or datasets. Shape mismatches
//! between slices and the shapes given are programming errors and panic.

pub mod activation;
mod aligned;
pub mod conv;
pub mod fc;
pub mod gemm;
pub mod interleaved;
pub mod pool;
pub mod rbf;
mod simd;
pub mod subsample;
pub mod threads;
pub mod update;

pub use activation::Activation;
pub use aligned::AlignedVec;
pub use conv::{ConnTable, ConvShape, ConvWorkspace};
pub use simd::{isa, set_isa, Isa, IsaError};
pub use threads::over_images;
pub(crate) use threads::{rows_per_task, GEMM_SPLIT};

/// Which implementation the caller asks for (`lenet train --kernels`). Each
/// concept's `plan` turns it into the [`Plan`] that runs: the algorithm and the
/// thread split. All give the same results up to float rounding (tested to 1e-5
/// relative); `Parallel` is the fastest. Every variant runs on the instruction set
/// chosen at run time ([`isa`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// Plain nested loops, written to be read: the specification.
    Naive,
    /// Unfold patches (im2col), one matrix multiply for the whole batch; one thread.
    Im2col,
    /// The fastest plan per shape, split across rayon threads where that pays
    /// ([`conv::plan`], [`fc::plan`], [`threads`]): for convolutions from
    /// [`conv::LANES_MIN_BATCH`] images a direct kernel with sixteen images in the
    /// vector lanes (`conv/lanes.rs`); for one image (C1 and C3 at batch 1) a
    /// direct kernel with output pixels or output maps in the lanes
    /// (`conv/direct.rs`); otherwise im2col + GEMM with the batch (or the output
    /// channels) split. Which plan runs depends on the shape alone,
    /// never on the CPU or the thread count.
    #[default]
    Parallel,
}

impl Algo {
    /// All variants, for tests and benchmarks.
    pub const ALL: [Algo; 3] = [Algo::Naive, Algo::Im2col, Algo::Parallel];

    /// Lower-case name (`naive`, `im2col`, `parallel`).
    pub const fn name(self) -> &'static str {
        match self {
            Algo::Naive => "naive",
            Algo::Im2col => "im2col",
            Algo::Parallel => "parallel",
        }
    }
}

/// How one kernel call runs: the algorithm, and whether the call is split into
/// tasks over the rayon threads. Each concept with more than one algorithm decides
/// it in one function from the caller's [`Algo`] and the shape alone, never from
/// the CPU or the thread count ([`conv::plan`], [`fc::plan`]), and its kernels
/// match on the plan; the thread rules themselves are in [`threads`].
///
/// ```
/// use tensor_ops::{conv, Algo, ConvShape, Method, Plan};
///
/// // C3 at batch 32: sixteen images in the vector lanes, one task per group
/// let c3 = ConvShape::square(32, 6, 14, 16, 5);
/// assert_eq!(conv::plan(Algo::Parallel, &c3), Plan { method: Method::Lanes, split: true });
/// // the paper's batch 1: a direct kernel (output pixels or its 16 maps in the lanes), on the calling thread
/// let c3_one = ConvShape::square(1, 6, 14, 16, 5);
/// assert_eq!(conv::plan(Algo::Parallel, &c3_one), Plan { method: Method::Direct, split: false });
/// // C1 at batch 1: its output rows in the vector lanes
/// let c1_one = ConvShape::square(1, 1, 32, 6, 5);
/// assert_eq!(conv::plan(Algo::Parallel, &c1_one), Plan { method: Method::Direct, split: false });
/// // a 3 x 3 kernel on one image: im2col and one matrix product
/// let small = ConvShape::square(1, 4, 12, 8, 3);
/// assert_eq!(conv::plan(Algo::Parallel, &small), Plan { method: Method::Gemm, split: false });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The algorithm.
    pub method: Method,
    /// Split into tasks on the rayon pool (by image, or by rows in
    /// [`threads::GEMM_SPLIT`] blocks), or run on the calling thread.
    pub split: bool,
}

/// The algorithm of a kernel call ([`Plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The readable loops of the `naive` modules: the specification.
    Naive,
    /// A matrix product ([`gemm`]), after unfolding the input's patches (im2col)
    /// for a convolution.
    Gemm,
    /// The direct convolution with sixteen images in the vector lanes
    /// (`conv/lanes.rs`).
    Lanes,
    /// The direct convolution of one image, with its output rows or its sixteen
    /// output maps in the vector lanes (`conv/direct.rs`); the passes it does not
    /// write are im2col's.
    Direct,
}

impl Plan {
    /// The naive loops on the calling thread.
    pub const NAIVE: Plan = Plan {
        method: Method::Naive,
        split: false,
    };

    /// A matrix product, split over the threads when [`threads::splits`] says so.
    pub fn gemm(algo: Algo, batch: usize) -> Plan {
        Plan {
            method: Method::Gemm,
            split: threads::splits(algo, batch),
        }
    }
}

impl std::str::FromStr for Algo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Algo::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| format!("unknown kernel variant {s:?} (naive, im2col, parallel)"))
    }
}

/// Grows a scratch buffer to at least `len` values (never shrinks, so a buffer
/// sized once is reused without allocating; new values are the type's default,
/// zero for `f32` and [`interleaved::Lanes`]) and returns its first `len`. Values
/// already in the buffer are kept: callers overwrite what they use.
///
/// ```
/// let mut buf = Vec::new();
/// assert_eq!(tensor_ops::scratch(&mut buf, 3), &[0.0; 3]);
/// tensor_ops::scratch(&mut buf, 1)[0] = 5.0;
/// assert_eq!(buf, [5.0, 0.0, 0.0]); // never shrinks
/// ```
pub fn scratch<T: Clone + Default>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, T::default());
    }
    &mut buf[..len]
}

/// Do `a` and `b` hold the same values, bit for bit? (For caches keyed by the
/// values they were made from: a float comparison would take `-0.0` for `0.0`.)
/// Compared as bytes, by the C library's `memcmp` (perf of `LeNet5::scores_into`
/// on 1,000 images: 2.6% of the time in a value-by-value loop, 1.75% in `memcmp`).
///
/// ```
/// assert!(tensor_ops::same_bits(&[1.0, 0.0], &[1.0, 0.0]));
/// assert!(!tensor_ops::same_bits(&[1.0, 0.0], &[1.0, -0.0]));
/// assert!(!tensor_ops::same_bits(&[1.0], &[1.0, 2.0]));
/// ```
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    bytemuck::cast_slice::<f32, u8>(a) == bytemuck::cast_slice::<f32, u8>(b)
}

thread_local! {
    static THREAD_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// This thread's grow-only scratch buffer, for kernels without a caller-owned
/// workspace (subsampling and pooling, the last columns of `gemm`'s first
/// form): taken out of the thread-local store, and put back when dropped. (A
/// closure run inside the thread-local's accessor would be compiled apart from
/// the kernel, without its instruction set.)
pub(crate) struct ThreadScratch(Vec<f32>);

impl ThreadScratch {
    #[inline(always)]
    pub(crate) fn take() -> Self {
        ThreadScratch(THREAD_SCRATCH.take())
    }
    /// `len` values of unspecified contents.
    #[inline(always)]
    pub(crate) fn get(&mut self, len: usize) -> &mut [f32] {
        scratch(&mut self.0, len)
    }
}

impl Drop for ThreadScratch {
    fn drop(&mut self) {
        THREAD_SCRATCH.set(std::mem::take(&mut self.0));
    }
}

/// Sum of `v` in 8 interleaved partial sums, added at the end: the same value
/// every time, and a vector loop (a plain `iter().sum()` keeps the strict
/// left-to-right order, one add at a time).
#[inline(always)]
pub(crate) fn sum8(v: &[f32]) -> f32 {
    sum8_zip(v, v, |x, _| x)
}

/// `sum_i f(a[i], b[i])` over the common length, in eight interleaved partial
/// sums: lane `i % 8` takes the whole chunks of eight, the lanes are added in
/// order, then the remainder. A dot product, or a squared distance, that
/// vectorises and gives the same bits on every call.
///
/// ```
/// let (a, b) = ([1.0f32, 2.0, 3.0], [4.0f32, 5.0, 6.0]);
/// assert_eq!(tensor_ops::sum8_zip(&a, &b, |x, y| x * y), 32.0);
/// ```
#[inline(always)]
pub fn sum8_zip(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (a8, b8) in a8.zip(b8) {
        for ((l, &x), &y) in lanes.iter_mut().zip(a8).zip(b8) {
            *l += f(x, y);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Element-wise square into a scratch buffer (for second-derivative passes).
#[inline(always)]
pub(crate) fn squared<'a>(buf: &'a mut Vec<f32>, v: &[f32]) -> &'a [f32] {
    let out = scratch(buf, v.len());
    for (o, &x) in out.iter_mut().zip(v) {
        *o = x * x;
    }
    out
}
