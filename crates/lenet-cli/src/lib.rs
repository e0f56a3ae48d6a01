//! The library half of the `lenet` binary: the pieces that more than one command
//! (and the fuzz targets) share. The commands themselves live in the binary.
//!
//! - [`digit`]: image bytes (PNG/JPEG) to the 28x28 input the network reads, exactly
//!   as `lenet predict` and `lenet serve` preprocess.

pub mod digit;
