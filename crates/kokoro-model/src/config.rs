//! Hyper-parameters of Kokoro-82M, read from the upstream `config.json`.
//!
//! The structs mirror upstream names and ignore fields they do not need (`dropout`, `multispeaker`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The upstream `config.json` of Kokoro-82M v1.0, shipped inside this crate.
pub const KOKORO_V1_CONFIG_JSON: &str = include_str!("../data/config.json");

/// Top-level model configuration (upstream `config.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct KokoroConfig {
    /// Rows of both embedding tables (phoneme ids `0..n_token`).
    pub n_token: usize,
    /// Width of the prosody predictor and text encoder.
    pub hidden_dim: usize,
    /// Width of each half of a voice's style vector.
    pub style_dim: usize,
    /// Number of LSTM + AdaLayerNorm pairs in the duration encoder and conv blocks in the text encoder.
    pub n_layer: usize,
    /// Number of duration classes summed by the duration head.
    pub max_dur: usize,
    /// Kernel size of the text encoder's convolutions.
    pub text_encoder_kernel_size: usize,
    /// PL-BERT (ALBERT) configuration.
    pub plbert: PlBertConfig,
    /// iSTFTNet decoder configuration.
    pub istftnet: IstftNetConfig,
    /// Phoneme character to id.
    pub vocab: BTreeMap<String, u32>,
}

/// ALBERT hyper-parameters (upstream `plbert`).
#[derive(Debug, Clone, Deserialize)]
pub struct PlBertConfig {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub num_hidden_layers: usize,
    /// ALBERT's factorised embedding width; not in upstream's config (transformers' default 128).
    #[serde(default = "default_embedding_size")]
    pub embedding_size: usize,
}

fn default_embedding_size() -> usize {
    128
}

/// iSTFTNet generator hyper-parameters (upstream `istftnet`).
#[derive(Debug, Clone, Deserialize)]
pub struct IstftNetConfig {
    pub upsample_rates: Vec<usize>,
    pub upsample_kernel_sizes: Vec<usize>,
    pub upsample_initial_channel: usize,
    pub resblock_kernel_sizes: Vec<usize>,
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    pub gen_istft_n_fft: usize,
    pub gen_istft_hop_size: usize,
}

impl KokoroConfig {
    /// Returns the configuration of Kokoro-82M v1.0.
    pub fn v1() -> Self {
        serde_json::from_str(KOKORO_V1_CONFIG_JSON).expect("the bundled config.json parses")
    }

    /// Audio samples per aligned frame: 2 (F0 rate) x the generator's upsampling x the iSTFT hop.
    pub fn samples_per_frame(&self) -> usize {
        2 * self.istftnet.upsample_rates.iter().product::<usize>() * self.istftnet.gen_istft_hop_size
    }
}

/// Output sample rate of Kokoro in Hz.
pub const SAMPLE_RATE: u32 = 24_000;

/// Most phoneme ids one forward pass takes, the two boundary zeros excluded (512 positions).
pub const MAX_PHONEME_IDS: usize = 510;

/// Slowest speaking rate accepted: OpenAI's speech API and Kokoro-FastAPI take 0.25 to 4.0.
/// Durations are divided by the speed, so a rate near zero asks for unbounded audio.
pub const MIN_SPEED: f32 = 0.25;

/// Fastest speaking rate accepted (see [`MIN_SPEED`]).
pub const MAX_SPEED: f32 = 4.0;

/// Most aligned frames one forward pass renders: 12,000 frames of 600 samples are 300 s of audio.
/// 510 ids at speed 0.25 come to about 6,000 frames on real text; the bound stops a pass whose
/// predicted durations would need gigabytes for the decoder before it allocates them.
pub const MAX_FRAMES: usize = 12_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_config_is_v1() {
        let c = KokoroConfig::v1();
        assert_eq!(c.n_token, 178);
        assert_eq!(c.vocab.len(), 114);
        // 2 * (10 * 6) * 5 = 600 samples per frame, as MODEL.md states.
        assert_eq!(c.samples_per_frame(), 600);
    }
}
