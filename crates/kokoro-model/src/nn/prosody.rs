//! The prosody predictor: duration encoder, duration head, and the F0 / energy (N) branches.
//!
//! Upstream: `kokoro/modules.py` `ProsodyPredictor`, `DurationEncoder` (hexgrad/kokoro).

// Field names mirror upstream parameter paths (`LayerNorm`, `F0_proj`), so checkpoints load unrenamed.
#![allow(non_snake_case)]

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv1d;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

use super::adain::{AdaLayerNorm, AdaLayerNormConfig};
use super::adain_resblk::{AdainResBlk1d, AdainResBlk1dConfig};
use super::conv::conv1d;
use super::lstm::{BiLstm, BiLstmConfig};
use super::{TimeMask, masked};

/// Configuration of a [`ProsodyPredictor`].
#[derive(Config, Debug)]
pub struct ProsodyPredictorConfig {
    /// Width of the prosody half of the style vector.
    pub style_dim: usize,
    /// Hidden width (upstream `d_hid`).
    pub d_hid: usize,
    /// LSTM + AdaLayerNorm pairs in the duration encoder.
    pub nlayers: usize,
    /// Duration classes of the duration head.
    pub max_dur: usize,
}

/// Duration encoder, duration head and F0/N branches.
#[derive(Module, Debug)]
#[allow(non_snake_case)]
pub struct ProsodyPredictor {
    pub text_encoder: DurationEncoder,
    pub lstm: BiLstm,
    pub duration_proj: LinearNorm,
    pub shared: BiLstm,
    pub F0: Vec<AdainResBlk1d>,
    pub N: Vec<AdainResBlk1d>,
    /// Weight shape `[1, d_hid / 2, 1]`.
    pub F0_proj: Conv1d,
    /// Weight shape `[1, d_hid / 2, 1]`.
    pub N_proj: Conv1d,
}

/// Upstream's `LinearNorm` wrapper (kept for its parameter path `duration_proj.linear_layer`).
#[derive(Module, Debug)]
pub struct LinearNorm {
    pub linear_layer: Linear,
}

/// Alternating bi-LSTM and AdaLayerNorm layers, as upstream's `lstms` ModuleList.
#[derive(Module, Debug)]
pub struct DurationEncoder {
    pub lstms: Vec<DurationLayer>,
}

/// One entry of [`DurationEncoder::lstms`].
#[derive(Module, Debug)]
pub enum DurationLayer {
    Lstm(BiLstm),
    Norm(AdaLayerNorm),
}

impl ProsodyPredictorConfig {
    /// Initializes a [`ProsodyPredictor`].
    pub fn init(&self, device: &Device) -> ProsodyPredictor {
        let (s, d) = (self.style_dim, self.d_hid);
        let lstms = (0..self.nlayers)
            .flat_map(|_| {
                [
                    DurationLayer::Lstm(BiLstmConfig::new(d + s, d / 2).init(device)),
                    DurationLayer::Norm(AdaLayerNormConfig::new(s, d).init(device)),
                ]
            })
            .collect();
        let branch = || {
            vec![
                AdainResBlk1dConfig::new(d, d, s).init(device),
                AdainResBlk1dConfig::new(d, d / 2, s).with_upsample(true).init(device),
                AdainResBlk1dConfig::new(d / 2, d / 2, s).init(device),
            ]
        };
        ProsodyPredictor {
            text_encoder: DurationEncoder { lstms },
            lstm: BiLstmConfig::new(d + s, d / 2).init(device),
            duration_proj: LinearNorm { linear_layer: LinearConfig::new(d, self.max_dur).init(device) },
            shared: BiLstmConfig::new(d + s, d / 2).init(device),
            F0: branch(),
            N: branch(),
            F0_proj: conv1d(d / 2, 1, 1, 1, 0, 1, device),
            N_proj: conv1d(d / 2, 1, 1, 1, 0, 1, device),
        }
    }
}

impl DurationEncoder {
    /// # Shapes
    /// - d_en: `[batch, hidden, tokens]`
    /// - style: `[batch, style_dim]`
    /// - output (`d`): `[batch, tokens, hidden + style_dim]`
    pub fn forward(&self, d_en: Tensor<3>, style: Tensor<2>) -> Tensor<3> {
        self.forward_masked(d_en, style, None)
    }

    /// [`forward`](Self::forward) over a padded batch of `lengths[b]` tokens per row. AdaLayerNorm
    /// acts per token, so only the bi-LSTMs need the lengths. Outputs at padded tokens are
    /// unspecified.
    pub fn forward_masked(&self, d_en: Tensor<3>, style: Tensor<2>, lengths: Option<&[usize]>) -> Tensor<3> {
        let [batch, _, tokens] = d_en.dims();
        let [_, style_dim] = style.dims();
        let s = style.clone().unsqueeze_dim::<3>(1).expand([batch, tokens, style_dim]);
        let mut x = Tensor::cat(vec![d_en.swap_dims(1, 2), s.clone()], 2);
        for layer in &self.lstms {
            x = match layer {
                DurationLayer::Lstm(lstm) => lstm.forward_masked(x, lengths),
                DurationLayer::Norm(norm) => Tensor::cat(vec![norm.forward(x, style.clone()), s.clone()], 2),
            };
        }
        x
    }
}

impl ProsodyPredictor {
    /// Predicts fractional durations in frames (before `/ speed`, rounding and clamping).
    ///
    /// # Shapes
    /// - d: `[batch, tokens, hidden + style_dim]`
    /// - output: `[batch, tokens]`
    pub fn durations(&self, d: Tensor<3>) -> Tensor<2> {
        self.durations_masked(d, None)
    }

    /// [`durations`](Self::durations) over a padded batch of `lengths[b]` tokens per row; values
    /// at padded tokens are unspecified.
    pub fn durations_masked(&self, d: Tensor<3>, lengths: Option<&[usize]>) -> Tensor<2> {
        let x = self.lstm.forward_masked(d, lengths);
        let logits = self.duration_proj.linear_layer.forward(x);
        sigmoid(logits).sum_dim(2).squeeze_dim(2)
    }

    /// Predicts the F0 and energy curves at twice the frame rate (upstream `F0Ntrain`).
    ///
    /// # Shapes
    /// - en: `[batch, hidden + style_dim, frames]`
    /// - style: `[batch, style_dim]`
    /// - output: (`F0`, `N`), each `[batch, 2 * frames]`
    pub fn f0_n(&self, en: Tensor<3>, style: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        self.f0_n_masked(en, style, None)
    }

    /// [`f0_n`](Self::f0_n) over a padded batch of `mask.lengths` frames per row: the shared
    /// bi-LSTM runs within each row's length, its output is zeroed at padding before the conv
    /// blocks, and the curves are zero past each row's `2 * length` values.
    ///
    /// # Shapes
    /// - en: `[batch, hidden + style_dim, frames]`
    /// - style: `[batch, style_dim]`
    /// - mask: `[batch, 1, frames]`
    /// - output: (`F0`, `N`), each `[batch, 2 * frames]`
    pub fn f0_n_masked(&self, en: Tensor<3>, style: Tensor<2>, mask: Option<&TimeMask>) -> (Tensor<2>, Tensor<2>) {
        let lengths = mask.map(|m| m.lengths.as_slice());
        let x = masked(self.shared.forward_masked(en.swap_dims(1, 2), lengths).swap_dims(1, 2), mask);
        let out_mask = mask.map(|m| m.scaled(2, 0));
        let run = |blocks: &[AdainResBlk1d], proj: &Conv1d| {
            let mut y = x.clone();
            let mut m = mask;
            for b in blocks {
                y = b.forward_masked(y, style.clone(), m);
                if b.pool.is_some() {
                    m = out_mask.as_ref();
                }
            }
            masked(proj.forward(y), m).squeeze_dim::<2>(1)
        };
        (run(&self.F0, &self.F0_proj), run(&self.N, &self.N_proj))
    }
}
