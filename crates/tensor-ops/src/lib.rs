//! # tensor-ops
//!
//! The numerical core of lenet5-rs: every computation LeNet-5 needs, forward,
//! backward and second-derivative (Gauss-Newton) backward, on batched NCHW `f32`
//! tensors, in three interchangeable variants (naive reference loops, im2col +
//! GEMM, rayon-parallel). Knows nothing of models, files or datasets.
