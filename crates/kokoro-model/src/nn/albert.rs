//! PL-BERT: an ALBERT encoder whose 12 layers share one layer's weights.
//!
//! Upstream: `kokoro/modules.py` `CustomAlbert` over `transformers.AlbertModel` (hexgrad/kokoro).
//! Parameter paths follow transformers' `AlbertModel` so that checkpoints load without renames.

// Field names mirror upstream parameter paths (`LayerNorm`, `F0_proj`), so checkpoints load unrenamed.
#![allow(non_snake_case)]

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;

use super::gelu_tanh;
use burn::tensor::{Device, Int, Tensor};

use crate::config::PlBertConfig;

/// transformers' `AlbertConfig.layer_norm_eps` default.
const LAYER_NORM_EPS: f64 = 1e-12;

/// Configuration of an [`Albert`] encoder.
#[derive(Config, Debug)]
pub struct AlbertConfig {
    /// Rows of the token embedding.
    pub vocab_size: usize,
    /// Width of the factorised embeddings. Default: 128.
    #[config(default = 128)]
    pub embedding_size: usize,
    /// Width of the transformer. Default: 768.
    #[config(default = 768)]
    pub hidden_size: usize,
    /// Attention heads. Default: 12.
    #[config(default = 12)]
    pub num_attention_heads: usize,
    /// Width of the feed-forward block. Default: 2048.
    #[config(default = 2048)]
    pub intermediate_size: usize,
    /// Rows of the position embedding. Default: 512.
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Times the shared layer is applied. Default: 12.
    #[config(default = 12)]
    pub num_hidden_layers: usize,
}

impl AlbertConfig {
    /// Builds the configuration from Kokoro's `plbert` section.
    pub fn from_plbert(vocab_size: usize, p: &PlBertConfig) -> Self {
        Self::new(vocab_size)
            .with_embedding_size(p.embedding_size)
            .with_hidden_size(p.hidden_size)
            .with_num_attention_heads(p.num_attention_heads)
            .with_intermediate_size(p.intermediate_size)
            .with_max_position_embeddings(p.max_position_embeddings)
            .with_num_hidden_layers(p.num_hidden_layers)
    }

    /// Initializes an [`Albert`] encoder.
    pub fn init(&self, device: &Device) -> Albert {
        assert!(
            self.hidden_size % self.num_attention_heads == 0,
            "hidden_size {} is not a multiple of num_attention_heads {}",
            self.hidden_size,
            self.num_attention_heads
        );
        let (e, h) = (self.embedding_size, self.hidden_size);
        let ln = |d| LayerNormConfig::new(d).with_epsilon(LAYER_NORM_EPS).init(device);
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        Albert {
            embeddings: AlbertEmbeddings {
                word_embeddings: EmbeddingConfig::new(self.vocab_size, e).init(device),
                position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, e).init(device),
                token_type_embeddings: EmbeddingConfig::new(2, e).init(device),
                LayerNorm: ln(e),
            },
            encoder: AlbertEncoder {
                embedding_hidden_mapping_in: lin(e, h),
                albert_layer_groups: vec![AlbertLayerGroup {
                    albert_layers: vec![AlbertLayer {
                        attention: AlbertAttention {
                            query: lin(h, h),
                            key: lin(h, h),
                            value: lin(h, h),
                            dense: lin(h, h),
                            LayerNorm: ln(h),
                            num_heads: self.num_attention_heads,
                        },
                        ffn: lin(h, self.intermediate_size),
                        ffn_output: lin(self.intermediate_size, h),
                        full_layer_layer_norm: ln(h),
                    }],
                }],
                num_hidden_layers: self.num_hidden_layers,
            },
        }
    }
}

/// ALBERT: embeddings, then one shared transformer layer applied `num_hidden_layers` times.
#[derive(Module, Debug)]
pub struct Albert {
    pub embeddings: AlbertEmbeddings,
    pub encoder: AlbertEncoder,
}

/// Token + position + token-type embeddings, layer-normalised.
#[derive(Module, Debug)]
#[allow(non_snake_case)]
pub struct AlbertEmbeddings {
    /// Shape `[vocab, embedding]`.
    pub word_embeddings: Embedding,
    /// Shape `[positions, embedding]`.
    pub position_embeddings: Embedding,
    /// Shape `[2, embedding]`; Kokoro always uses type 0.
    pub token_type_embeddings: Embedding,
    pub LayerNorm: LayerNorm,
}

/// The embedding-to-hidden projection and the shared layer.
#[derive(Module, Debug)]
pub struct AlbertEncoder {
    /// Weight shape `[embedding, hidden]`.
    pub embedding_hidden_mapping_in: Linear,
    /// One group holding one layer in Kokoro's checkpoint.
    pub albert_layer_groups: Vec<AlbertLayerGroup>,
    pub num_hidden_layers: usize,
}

/// A group of ALBERT layers (transformers' naming).
#[derive(Module, Debug)]
pub struct AlbertLayerGroup {
    pub albert_layers: Vec<AlbertLayer>,
}

/// Post-norm transformer layer: attention, then a GELU (tanh form) feed-forward block.
#[derive(Module, Debug)]
pub struct AlbertLayer {
    pub attention: AlbertAttention,
    /// Weight shape `[hidden, intermediate]`.
    pub ffn: Linear,
    /// Weight shape `[intermediate, hidden]`.
    pub ffn_output: Linear,
    pub full_layer_layer_norm: LayerNorm,
}

/// Multi-head self-attention with its output projection and residual layer norm.
#[derive(Module, Debug)]
#[allow(non_snake_case)]
pub struct AlbertAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub dense: Linear,
    pub LayerNorm: LayerNorm,
    pub num_heads: usize,
}

impl Albert {
    /// Encodes phoneme ids.
    ///
    /// # Shapes
    /// - input_ids: `[batch, tokens]`
    /// - key_padding: `[batch, tokens]`, 1.0 where a token is padding (optional)
    /// - output: `[batch, tokens, hidden]`
    pub fn forward(&self, input_ids: Tensor<2, Int>, key_padding: Option<Tensor<2>>) -> Tensor<3> {
        let [batch, tokens] = input_ids.dims();
        let device = input_ids.device();
        let e = &self.embeddings;
        let positions = Tensor::<1, Int>::arange(0..tokens as i64, &device).reshape([1, tokens]);
        let types = Tensor::<2, Int>::zeros([1, tokens], &device);
        let x = e.word_embeddings.forward(input_ids)
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(types);
        let x = e.LayerNorm.forward(x);

        let mut h = self.encoder.embedding_hidden_mapping_in.forward(x);
        // Padding keys get a large negative score (transformers uses the dtype's minimum).
        let bias = key_padding.map(|m| (m * -1.0e9).reshape([batch, 1, 1, tokens]));
        let layer = &self.encoder.albert_layer_groups[0].albert_layers[0];
        for _ in 0..self.encoder.num_hidden_layers {
            h = layer.forward(h, bias.clone());
        }
        h
    }
}

impl AlbertLayer {
    /// # Shapes
    /// - x: `[batch, tokens, hidden]`
    /// - score_bias: `[batch, 1, 1, tokens]`
    /// - output: `[batch, tokens, hidden]`
    pub fn forward(&self, x: Tensor<3>, score_bias: Option<Tensor<4>>) -> Tensor<3> {
        let a = self.attention.forward(x, score_bias);
        let f = self.ffn_output.forward(gelu_tanh(self.ffn.forward(a.clone())));
        self.full_layer_layer_norm.forward(f + a)
    }
}

impl AlbertAttention {
    /// # Shapes
    /// - x: `[batch, tokens, hidden]`
    /// - output: `[batch, tokens, hidden]`
    pub fn forward(&self, x: Tensor<3>, score_bias: Option<Tensor<4>>) -> Tensor<3> {
        let [b, t, hidden] = x.dims();
        let (nh, hd) = (self.num_heads, hidden / self.num_heads);
        let heads = |y: Tensor<3>| y.reshape([b, t, nh, hd]).swap_dims(1, 2); // [b, heads, t, head_dim]
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x.clone()));
        let mut scores = q.matmul(k.swap_dims(2, 3)) / (hd as f64).sqrt();
        if let Some(bias) = score_bias {
            scores = scores + bias;
        }
        let context = softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([b, t, hidden]);
        self.LayerNorm.forward(self.dense.forward(context) + x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_albert_shapes() {
        let d = Device::ndarray();
        let m = AlbertConfig::new(10)
            .with_embedding_size(4)
            .with_hidden_size(8)
            .with_num_attention_heads(2)
            .with_intermediate_size(16)
            .with_max_position_embeddings(6)
            .with_num_hidden_layers(3)
            .init(&d);
        let y = m.forward(Tensor::from_ints([[0, 3, 4, 0]], &d), None);
        assert_eq!(y.dims(), [1, 4, 8]);
    }

    #[test]
    #[should_panic(expected = "hidden_size 10 is not a multiple of num_attention_heads 3")]
    fn heads_must_divide_hidden() {
        let d = Device::ndarray();
        AlbertConfig::new(10).with_hidden_size(10).with_num_attention_heads(3).init(&d);
    }
}
