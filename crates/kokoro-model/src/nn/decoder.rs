//! The decoder: F0/N downsampling, AdaIN residual encode/decode blocks, then the generator.
//!
//! Upstream: `kokoro/istftnet.py` `Decoder` (hexgrad/kokoro).

// Field names mirror upstream parameter paths (`LayerNorm`, `F0_proj`), so checkpoints load unrenamed.
#![allow(non_snake_case)]

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv1d;
use burn::tensor::{Device, Tensor};

use super::adain_resblk::{AdainResBlk1d, AdainResBlk1dConfig};
use super::conv::{conv1d, conv1d_forward};
use super::generator::{Generator, GeneratorConfig, GeneratorOutput};
use super::source::SourceNoise;
use super::{TimeMask, masked};

/// Configuration of a [`Decoder`].
#[derive(Config, Debug)]
pub struct DecoderConfig {
    /// Channels of `asr` (upstream `dim_in` = hidden_dim).
    pub dim_in: usize,
    pub style_dim: usize,
    pub generator: GeneratorConfig,
}

/// AdaIN residual stack over `[asr | F0 | N]`, feeding the iSTFTNet generator.
#[derive(Module, Debug)]
#[allow(non_snake_case)]
pub struct Decoder {
    pub encode: AdainResBlk1d,
    pub decode: Vec<AdainResBlk1d>,
    /// Stride-2 conv on the F0 curve. Weight shape `[1, 1, 3]`.
    pub F0_conv: Conv1d,
    /// Stride-2 conv on the energy curve. Weight shape `[1, 1, 3]`.
    pub N_conv: Conv1d,
    /// One 1x1 conv, `asr` to 64 channels (upstream wraps it in an `nn.Sequential`).
    pub asr_res: Vec<Conv1d>,
    pub generator: Generator,
}

/// The decoder's outputs, for golden comparisons.
#[derive(Debug, Clone)]
pub struct DecoderOutput {
    /// Generator input. Shape `[batch, 512, 2 * frames]`.
    pub generator_input: Tensor<3>,
    pub generator: GeneratorOutput,
}

impl DecoderConfig {
    /// Initializes a [`Decoder`].
    pub fn init(&self, device: &Device) -> Decoder {
        let (d, s) = (self.dim_in, self.style_dim);
        let cat = 1024 + 2 + 64;
        Decoder {
            encode: AdainResBlk1dConfig::new(d + 2, 1024, s).init(device),
            decode: vec![
                AdainResBlk1dConfig::new(cat, 1024, s).init(device),
                AdainResBlk1dConfig::new(cat, 1024, s).init(device),
                AdainResBlk1dConfig::new(cat, 1024, s).init(device),
                AdainResBlk1dConfig::new(cat, self.generator.upsample_initial_channel, s)
                    .with_upsample(true)
                    .init(device),
            ],
            F0_conv: conv1d(1, 1, 3, 2, 1, 1, device),
            N_conv: conv1d(1, 1, 3, 2, 1, 1, device),
            asr_res: vec![conv1d(d, 64, 1, 1, 0, 1, device)],
            generator: self.generator.init(device),
        }
    }
}

impl Decoder {
    /// # Shapes
    /// - asr: `[batch, dim_in, frames]`
    /// - f0, n: `[batch, 2 * frames]`
    /// - style: `[batch, style_dim]` (decoder half of the voice's style vector)
    pub fn forward(&self, asr: Tensor<3>, f0: Tensor<2>, n: Tensor<2>, style: Tensor<2>, noise: SourceNoise) -> DecoderOutput {
        let x = self.features(asr, f0.clone(), n, style.clone(), None);
        let generator = self.generator.forward(x.clone(), style, f0, noise);
        DecoderOutput { generator_input: x, generator }
    }

    /// [`forward`](Self::forward) over a padded batch of `mask.lengths` frames per row, each row
    /// with its own source noise. `asr`, `f0` and `n` must be zero past each row's end. The
    /// generator input is zero at padded steps; the audio of row `b` is its first
    /// `600 * lengths[b]` samples (zeros follow).
    ///
    /// # Shapes
    /// - asr: `[batch, dim_in, frames]`
    /// - f0, n: `[batch, 2 * frames]`
    /// - style: `[batch, style_dim]`
    /// - noise: `batch` values
    /// - mask: `[batch, 1, frames]`
    pub fn forward_masked(
        &self,
        asr: Tensor<3>,
        f0: Tensor<2>,
        n: Tensor<2>,
        style: Tensor<2>,
        noise: &[SourceNoise],
        mask: &TimeMask,
    ) -> DecoderOutput {
        let x = self.features(asr, f0.clone(), n, style.clone(), Some(mask));
        let generator = self.generator.forward_masked(x.clone(), style, f0, noise, &mask.scaled(2, 0));
        DecoderOutput { generator_input: x, generator }
    }

    /// The AdaIN residual stack: the generator's input, `[batch, channels, 2 * frames]`.
    fn features(&self, asr: Tensor<3>, f0: Tensor<2>, n: Tensor<2>, style: Tensor<2>, mask: Option<&TimeMask>) -> Tensor<3> {
        // The stride-2 convs' biases are masked: the next convs must read zeros past the end.
        let f0_down = masked(self.F0_conv.forward(f0.unsqueeze_dim(1)), mask);
        let n_down = masked(self.N_conv.forward(n.unsqueeze_dim(1)), mask);
        let mut x = self.encode.forward_masked(
            Tensor::cat(vec![asr.clone(), f0_down.clone(), n_down.clone()], 1),
            style.clone(),
            mask,
        );
        let asr_res = masked(conv1d_forward(&self.asr_res[0], asr), mask);
        let mut mask = mask.cloned();
        let mut residual = true;
        for block in &self.decode {
            if residual {
                x = Tensor::cat(vec![x, asr_res.clone(), f0_down.clone(), n_down.clone()], 1);
            }
            x = block.forward_masked(x, style.clone(), mask.as_ref());
            if block.pool.is_some() {
                residual = false;
                mask = mask.map(|m| m.scaled(2, 0));
            }
        }
        x
    }
}
