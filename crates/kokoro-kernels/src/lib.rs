//! CPU kernels for Kokoro's hot loops, on plain slices (no tensor library).
//!
//! About 52 of Kokoro's ~55 GFLOP per second of audio are the iSTFTNet generator's stride-1
//! convolutions (128 and 256 channels, kernels 3 / 7 / 11, dilations 1 / 3 / 5). burn-flex runs
//! them through a general im2col path at about 130 GFLOP/s on the reference machine, 30 % of
//! what sgemm reaches there. [`conv1d`] is a direct convolution written for exactly that shape:
//!
//! - the input is padded once, and each tap reads it at an offset (dilation is an offset, no
//!   im2col buffer);
//! - weights are packed per call into micro-panels of `MR` output channels, which is ~1 % of the
//!   convolution's own work for these sizes;
//! - a register-blocked micro-kernel (AVX-512: 4 channels x 96 steps in 24 registers; AVX2 + FMA:
//!   4 x 24) accumulates over input channels and taps with the bias already in its registers;
//! - time tiles sized to keep one tile's input in L2 are the unit of threading (rayon), one level
//!   only: the micro-kernels themselves are single-threaded.
//!
//! [`adain_snake`] fuses the AdaIN -> Snake pair that precedes each of those convolutions into
//! two passes per row (statistics, then one write), where the tensor version makes about a
//! dozen passes, each allocating a tensor as large as its input.
//!
//! The micro-kernel is chosen at run time (`is_x86_feature_detected!`), so one binary runs on any
//! x86-64; elsewhere (wasm32 with SIMD128, aarch64) a portable kernel that LLVM vectorises is used.
//!
//! Crates: `rayon` (the pool burn-flex already uses, so the two never oversubscribe the cores),
//! `thiserror` (typed errors).

mod adain;
mod conv1d;

pub use adain::{AdaInError, AdaInShape, adain_snake};
pub use conv1d::{Conv1dError, Conv1dShape, Isa, MAX_INT8_TERMS, conv1d, conv1d_with, detected_isa};
