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
//! | [`gemm`] | matrix products: the `gemm` crate's, and a register-tile micro-kernel on packed weights |
//!
//! Second derivatives follow the paper's diagonal Gauss-Newton rules: a linear map's
//! input gets `sum w^2 * d2E/da2`, its weights `sum x^2 * d2E/da2`, an activation
//! multiplies by `f'(a)^2`. For linear kernels these are the first-derivative
//! kernels applied to squared operands, so they share one implementation.
//!
//! This crate knows nothing of layers, models, files or datasets. Shape mismatches
//! between slices and the shapes given are programming errors and panic.

pub mod activation;
pub mod conv;
pub mod fc;
pub mod gemm;
pub mod pool;
mod simd;
pub mod subsample;

pub use activation::Activation;
pub use conv::{ConnTable, ConvShape, ConvWorkspace};

/// Which implementation a kernel uses. All give the same results up to float
/// rounding (tested to 1e-5 relative); `Parallel` is the fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// Plain nested loops, written to be read: the specification.
    Naive,
    /// Unfold patches (im2col), one matrix multiply for the whole batch; one thread.
    Im2col,
    /// The fastest kernel per shape, split across rayon threads: for convolutions at
    /// batch >= 8 a direct kernel with eight images in the vector lanes
    /// (`conv/lanes.rs`), otherwise im2col + GEMM with the batch (or the output
    /// channels) split.
    #[default]
    Parallel,
}

impl Algo {
    /// All variants, for tests and benchmarks.
    pub const ALL: [Algo; 3] = [Algo::Naive, Algo::Im2col, Algo::Parallel];

    /// Lower-case name (`naive`, `im2col`, `parallel`).
    pub fn name(self) -> &'static str {
        match self {
            Algo::Naive => "naive",
            Algo::Im2col => "im2col",
            Algo::Parallel => "parallel",
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

/// Into how many tasks the parallel variants split a GEMM's work (samples, output
/// units, or the images whose weight gradients are summed): a fixed number, never
/// the thread count. A GEMM's summation order can depend on its shape (the `gemm`
/// crate picks kernels by shape), so blocks sized by the thread count would make
/// results depend on it; with a fixed split the parallel variants are bit-identical
/// on any number of threads. Two halves keep every GEMM as large as possible on the
/// 2-core machines this is tuned for (finer fixed blocks measured up to 2x slower:
/// C3's weight gradient in blocks of 3 maps, C5 in blocks of 8 samples). Per-image
/// work (convolution forward and input gradient) is split by image and uses every
/// thread.
pub(crate) const GEMM_SPLIT: usize = 2;

/// Rows per task when `rows` rows are split into [`GEMM_SPLIT`] tasks.
pub(crate) fn rows_per_task(rows: usize) -> usize {
    rows.div_ceil(GEMM_SPLIT).max(1)
}

/// Runs a per-image kernel over a batch: `f(images, out)` computes the outputs of
/// the images in `images` into `out` (their `out_per_image` values each). With
/// [`Algo::Parallel`] and enough work, the batch is cut into one task of whole
/// images per thread; otherwise `f` sees the whole batch at once. Images are
/// independent, so the results are the same for every split.
///
/// This is the one place where element-wise layers (activations, pooling,
/// subsampling) decide to use threads.
///
/// ```
/// use tensor_ops::{over_images, Algo};
/// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let mut y = [0.0f32; 6];
/// // 3 images of 2 values: y = 2x
/// over_images(Algo::Parallel, 3, &mut y, 2, |images, out| {
///     let x = &x[images.start * 2..images.end * 2];
///     out.iter_mut().zip(x).for_each(|(o, &v)| *o = 2.0 * v);
/// });
/// assert_eq!(y, [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
/// ```
pub fn over_images<F>(algo: Algo, batch: usize, out: &mut [f32], out_per_image: usize, f: F)
where
    F: Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
{
    use rayon::prelude::*;
    assert_eq!(out.len(), batch * out_per_image, "over_images: output length");
    let threads = rayon::current_num_threads();
    // below this many values a task costs more to hand out than to compute
    const MIN_PER_TASK: usize = 4096;
    let parallel = algo == Algo::Parallel && threads > 1 && out.len() >= 2 * MIN_PER_TASK;
    if !parallel || out_per_image == 0 {
        f(0..batch, out);
        return;
    }
    let per_task = batch.div_ceil(threads).max(MIN_PER_TASK.div_ceil(out_per_image));
    out.par_chunks_mut(per_task * out_per_image)
        .enumerate()
        .for_each(|(t, chunk)| {
            let first = t * per_task;
            f(first..first + chunk.len() / out_per_image, chunk)
        });
}

/// Grows a scratch buffer to at least `len` values (never shrinks, so a buffer
/// sized once is reused without allocating) and returns its first `len`. Values
/// already in the buffer are kept: callers overwrite what they use.
///
/// ```
/// let mut buf = Vec::new();
/// assert_eq!(tensor_ops::scratch(&mut buf, 3), &[0.0; 3]);
/// tensor_ops::scratch(&mut buf, 1)[0] = 5.0;
/// assert_eq!(buf, [5.0, 0.0, 0.0]); // never shrinks
/// ```
pub fn scratch(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

thread_local! {
    static THREAD_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's grow-only scratch buffer, `len` values of unspecified
/// contents, for kernels without a caller-owned workspace (the subsampling
/// coefficient gradient, the fully connected forward pass). `f` must not call it
/// again.
pub(crate) fn with_thread_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    THREAD_SCRATCH.with_borrow_mut(|buf| f(scratch(buf, len)))
}

/// Sum of `v` in 8 interleaved partial sums, added at the end: the same value
/// every time, and a vector loop (a plain `iter().sum()` keeps the strict
/// left-to-right order, one add at a time).
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
#[inline]
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
pub(crate) fn squared<'a>(buf: &'a mut Vec<f32>, v: &[f32]) -> &'a [f32] {
    let out = scratch(buf, v.len());
    for (o, &x) in out.iter_mut().zip(v) {
        *o = x * x;
    }
    out
}
