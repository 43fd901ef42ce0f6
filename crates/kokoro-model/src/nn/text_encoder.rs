//! The text encoder: phoneme embeddings, three conv blocks and a bi-LSTM, giving `t_en`.
//!
//! Upstream: `kokoro/modules.py` `TextEncoder` (hexgrad/kokoro). Upstream's `cnn.N` is an
//! `nn.Sequential(conv, LayerNorm, LeakyReLU, Dropout)`; its `cnn.N.0` / `cnn.N.1` parameters load
//! into `cnn.N.conv` / `cnn.N.norm` here (see `weights::remap_key`).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv1d;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Int, Tensor};

use super::conv::{conv1d, conv1d_forward};
use super::lstm::{BiLstm, BiLstmConfig};
use super::{TimeMask, masked};

/// Configuration of a [`TextEncoder`].
#[derive(Config, Debug)]
pub struct TextEncoderConfig {
    /// Channels throughout (upstream `hidden_dim`).
    pub channels: usize,
    /// Convolution kernel size.
    pub kernel_size: usize,
    /// Number of conv blocks.
    pub depth: usize,
    /// Rows of the embedding.
    pub n_symbols: usize,
}

/// Embedding -> depth x (conv, channel LayerNorm, LeakyReLU 0.2) -> bi-LSTM.
#[derive(Module, Debug)]
pub struct TextEncoder {
    /// Shape `[n_symbols, channels]`.
    pub embedding: Embedding,
    pub cnn: Vec<ConvBlock>,
    pub lstm: BiLstm,
}

/// One conv block of the text encoder.
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// Weight shape `[channels, channels, kernel]`.
    pub conv: Conv1d,
    /// LayerNorm over channels (eps 1e-5), stored upstream as `gamma` / `beta`.
    pub norm: LayerNorm,
}

impl TextEncoderConfig {
    /// Initializes a [`TextEncoder`].
    pub fn init(&self, device: &Device) -> TextEncoder {
        assert!(self.kernel_size % 2 == 1, "text encoder kernel size must be odd, got {}", self.kernel_size);
        let c = self.channels;
        TextEncoder {
            embedding: EmbeddingConfig::new(self.n_symbols, c).init(device),
            cnn: (0..self.depth)
                .map(|_| ConvBlock {
                    conv: conv1d(c, c, self.kernel_size, 1, (self.kernel_size - 1) / 2, 1, device),
                    norm: LayerNormConfig::new(c).with_epsilon(1e-5).init(device),
                })
                .collect(),
            lstm: BiLstmConfig::new(c, c / 2).init(device),
        }
    }
}

impl TextEncoder {
    /// # Shapes
    /// - input_ids: `[batch, tokens]`
    /// - output (`t_en`): `[batch, channels, tokens]`
    pub fn forward(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        self.forward_masked(input_ids, None)
    }

    /// [`forward`](Self::forward) over a padded batch of `mask.lengths` tokens per row: padded
    /// tokens are zeroed before every conv (their embeddings and the conv biases would not be)
    /// and the bi-LSTM runs within each row's length. Outputs at padded tokens are unspecified.
    ///
    /// # Shapes
    /// - input_ids: `[batch, tokens]`
    /// - mask: `[batch, 1, tokens]`
    /// - output (`t_en`): `[batch, channels, tokens]`
    pub fn forward_masked(&self, input_ids: Tensor<2, Int>, mask: Option<&TimeMask>) -> Tensor<3> {
        let mut x = masked(self.embedding.forward(input_ids).swap_dims(1, 2), mask); // [b, c, t]
        for block in &self.cnn {
            x = conv1d_forward(&block.conv, x);
            x = block.norm.forward(x.swap_dims(1, 2)).swap_dims(1, 2);
            // LayerNorm and LeakyReLU act per token; one mask before the next conv suffices.
            x = masked(leaky_relu(x, 0.2), mask);
        }
        let lengths = mask.map(|m| m.lengths.as_slice());
        self.lstm.forward_masked(x.swap_dims(1, 2), lengths).swap_dims(1, 2)
    }
}
