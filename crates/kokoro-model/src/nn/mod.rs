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

use burn::tensor::{Device, Tensor, TensorData};

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

/// Which time steps of a padded batch are real: each utterance occupies steps `0..length` of its
/// row, padding follows. The batched forward pass keeps padded steps exactly zero before every
/// convolution (so valid steps read the same zeros as an unbatched conv's zero padding) and takes
/// normalisation statistics over valid steps only.
#[derive(Debug, Clone)]
pub struct TimeMask {
    /// Valid steps per row.
    pub lengths: Vec<usize>,
    /// 1 at valid steps, 0 at padding. Shape `[batch, 1, time]`.
    pub mask: Tensor<3>,
    /// Valid steps per row as floats (the divisor of masked means). Shape `[batch, 1, 1]`.
    pub counts: Tensor<3>,
}

impl TimeMask {
    /// A mask of `time` steps per row, the first `lengths[b]` of row `b` valid.
    pub fn new(lengths: Vec<usize>, time: usize, device: &Device) -> Self {
        assert!(lengths.iter().all(|&l| l >= 1 && l <= time), "lengths {lengths:?} must lie in 1..={time}");
        let batch = lengths.len();
        let mask: Vec<f32> =
            lengths.iter().flat_map(|&l| (0..time).map(move |t| if t < l { 1.0 } else { 0.0 })).collect();
        let counts: Vec<f32> = lengths.iter().map(|&l| l as f32).collect();
        Self {
            mask: Tensor::from_data(TensorData::new(mask, [batch, 1, time]), device),
            counts: Tensor::from_data(TensorData::new(counts, [batch, 1, 1]), device),
            lengths,
        }
    }

    /// Steps per row, padding included.
    pub fn time(&self) -> usize {
        self.mask.dims()[2]
    }

    /// The mask after a layer that maps `n` steps to `n * factor + extra` (upsampling, padding).
    pub fn scaled(&self, factor: usize, extra: usize) -> Self {
        let lengths = self.lengths.iter().map(|&l| l * factor + extra).collect();
        Self::new(lengths, self.time() * factor + extra, &self.mask.device())
    }

    /// Zeroes the padded steps of `x: [batch, channels, time]`.
    pub fn apply(&self, x: Tensor<3>) -> Tensor<3> {
        x * self.mask.clone()
    }

    /// Zeroes the padded steps of `x: [batch, time, channels]` (the LSTMs' layout).
    pub fn apply_btc(&self, x: Tensor<3>) -> Tensor<3> {
        x * self.mask.clone().swap_dims(1, 2)
    }
}

/// `mask.apply(x)`, or `x` for an unpadded batch.
pub fn masked(x: Tensor<3>, mask: Option<&TimeMask>) -> Tensor<3> {
    match mask {
        Some(m) => m.apply(x),
        None => x,
    }
}
