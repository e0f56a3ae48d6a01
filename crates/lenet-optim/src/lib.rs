//! # lenet-optim
//!
//! Optimizers for LeNet-5 (SGD, momentum, stochastic diagonal
//! Levenberg-Marquardt with its Hessian-diagonal estimate) and the `Trainer`
//! that runs epochs over batches.
