//! Kokoro's network blocks, one per file, as burn modules.

pub mod adain;
pub mod adain_resblk;
pub mod albert;
pub mod conv;
pub mod decoder;
pub mod generator;
pub mod lstm;
pub mod prosody;
pub mod source;
pub mod stft;
pub mod text_encoder;

use burn::tensor::Tensor;

/// `tanh`, exact in f32, on every backend. Some WebGPU implementations (SwiftShader, as Chromium
/// ships it) compute `tanh` from exponentials and return NaN for |x| beyond ~44, which turned all
/// of Kokoro's durations into NaN there. In f32, tanh(x) rounds to ±1 for |x| > 9.01, so
/// clamping to ±10 first changes no value.
pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    burn::tensor::activation::tanh(x.clamp(-10.0, 10.0))
}

/// GELU, tanh form (`gelu_new` in transformers, burn's `gelu_approximate`), through [`tanh`] and
/// with `x * x * x` for the cube: WGSL's `pow` is undefined for a negative base.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    const SQRT_2_OVER_PI: f64 = core::f64::consts::FRAC_2_SQRT_PI * core::f64::consts::FRAC_1_SQRT_2;
    let cube = x.clone() * x.clone() * x.clone();
    let inner = (x.clone() + cube * 0.044715) * SQRT_2_OVER_PI;
    (x * (tanh(inner) + 1)) * 0.5
}
