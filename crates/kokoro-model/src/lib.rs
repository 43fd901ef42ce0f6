//! Kokoro-82M v1.0 text-to-speech as backend-agnostic [burn](https://burn.dev) modules.
//!
//! The network (PL-BERT, prosody predictor, text encoder, iSTFTNet decoder) lives in [`nn`] and
//! [`model`], one block per file; [`weights`] imports the published checkpoints (the int8 and fp32
//! ONNX exports, the official `.pth`) and reads and writes our canonical safetensors file. The
//! backend is chosen at run time through burn's [`Device`](burn::tensor::Device).
//!
//! ```no_run
//! use kokoro_model::{Kokoro, KokoroConfig, ForwardInput, SourceNoise, StyleVector, Vocab};
//! let device = burn::tensor::Device::flex();
//! let kokoro = Kokoro::load("kokoro-v1_0.safetensors".as_ref(), &device).unwrap();
//! let style = StyleVector([0.1; 256]); // a voice's row for this length (kokoro-voice reads voices)
//! let ids = Vocab::from_config(&KokoroConfig::v1()).encode("həlˈO wˈɜɹld.").ids;
//! let input = ForwardInput::new(ids.clone(), style).with_noise(SourceNoise::Deterministic);
//! let out = kokoro.model.forward(&input, &device).unwrap();
//! assert_eq!(out.audio.len(), 600 * out.durations.iter().sum::<u32>() as usize);
//! ```
//!
//! [`KModel::forward_batch`] runs several utterances (each with its own length, style, speed and
//! noise) as one padded batch and gives each what `forward` gives it alone, up to float rounding.
//!
//! Vocabulary: a *frame* is one aligned step (600 samples); *durations* are frames per token; a
//! *style vector* is the row of a voice pack (`kokoro-voice`) that conditions one utterance.
//!
//! Crates chosen: `burn` (+ `burn-store` to apply named tensors to modules and read `.pth`),
//! `prost` (the ONNX protobuf, decoded from hand-declared messages: no `protoc` at build time),
//! `safetensors` (our canonical file), `thiserror` (typed errors).

pub mod config;
pub mod eval;
pub mod model;
pub mod nn;
pub mod vocab;
pub mod voice;
pub mod weights;

pub use config::{KokoroConfig, MAX_FRAMES, MAX_PHONEME_IDS, MAX_SPEED, MIN_SPEED, SAMPLE_RATE};
pub use model::{ForwardInput, ForwardOutput, HostTensor, Intermediates, KModel, StageTimings};
pub use nn::conv::{ComputePrecision, CpuKernels, compute_precision, cpu_kernels, set_compute_precision, set_cpu_kernels};
pub use nn::source::SourceNoise;
pub use vocab::{Encoded, Vocab};
pub use voice::{STYLE_WIDTH, StyleVector};
pub use weights::{Kokoro, LoadError, Precision, WeightSet};

/// Errors of a forward pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Occurs when an utterance has no phoneme ids (after unknown characters were dropped).
    #[error("no phonemes to speak (the input was empty, or none of its characters are in the vocab)")]
    EmptyInput,
    /// Occurs when an utterance has more ids than one forward pass takes.
    #[error("{got} phoneme ids exceed the model's limit of {max} per utterance; split the text")]
    TooManyIds { got: usize, max: usize },
    /// Occurs when an id is not a phoneme id of the vocab (1..=max).
    #[error("phoneme id {id} is outside the vocab (1..={max})")]
    IdOutOfRange { id: u32, max: u32 },
    /// Occurs when the speed is not a finite number in [`MIN_SPEED`, `MAX_SPEED`].
    #[error("speed must be between {MIN_SPEED} and {MAX_SPEED}, got {0}")]
    BadSpeed(f32),
    /// Occurs when the predicted durations add up to more frames than one pass renders.
    #[error("the utterance would need {got} frames ({seconds:.0} s of audio), over the limit of {max} per pass; raise the speed or split the text", seconds = *got as f64 * 0.025)]
    TooManyFrames { got: usize, max: usize },
    /// Occurs when the compute device fails (for example a lost GPU).
    #[error("compute device error: {0}")]
    Device(String),
}
