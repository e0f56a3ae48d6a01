//! # lenet-layers
//!
//! LeNet-5's layers, each with an explicit `forward`, `backward` and
//! `backward_second`, built on `tensor-ops`; the `classic` (1998 paper) and
//! `modern` models; the losses; the safetensors model file. Knows nothing of
//! datasets or the command line.
