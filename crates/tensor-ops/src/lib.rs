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
//! | [`gemm`] | the one matrix-multiply entry point |
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
    /// im2col + GEMM with the batch (or the output channels) split across rayon threads.
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

/// Into how many tasks the parallel variants split a GEMM's rows (samples, output
/// units or output maps): a fixed number, never the thread count. A GEMM's summation
/// order can depend on its row count (the `gemm` crate picks kernels by shape), so
/// blocks sized by the thread count would make results depend on it; with a fixed
/// split the parallel variants are bit-identical on any number of threads. Two
/// halves keep every GEMM as large as possible on the 2-core machines this is tuned
/// for (finer fixed blocks measured up to 2x slower: C3's weight gradient in blocks
/// of 3 maps, C5 in blocks of 8 samples). Per-image work (convolution forward and
/// input gradient) is split by image and uses every thread.
pub(crate) const GEMM_SPLIT: usize = 2;

/// Rows per task when `rows` rows are split into [`GEMM_SPLIT`] tasks.
pub(crate) fn rows_per_task(rows: usize) -> usize {
    rows.div_ceil(GEMM_SPLIT).max(1)
}

/// Grows a scratch buffer to at least `len` values (never shrinks, so a buffer
/// sized once is reused without allocating) and returns its first `len`.
pub(crate) fn scratch(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// Element-wise square into a scratch buffer (for second-derivative passes).
pub(crate) fn squared<'a>(buf: &'a mut Vec<f32>, v: &[f32]) -> &'a [f32] {
    let out = scratch(buf, v.len());
    for (o, &x) in out.iter_mut().zip(v) {
        *o = x * x;
    }
    out
}
