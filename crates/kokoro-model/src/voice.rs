//! Style vectors: what the model takes of a voice.
//!
//! A voice pack is a `[510, 1, 256]` table with one style vector per utterance length; reading,
//! validating, mixing and choosing the row belong to `kokoro-voice` (no burn there) and the engine
//! (which joins the two). The model only sees the chosen row: the first 128 values condition the
//! decoder, the last 128 the prosody predictor.

/// Values in one style vector: the decoder's half and the prosody predictor's half
/// (2 x `style_dim` of [`crate::KokoroConfig`]).
pub const STYLE_WIDTH: usize = 256;

/// One style vector.
#[derive(Debug, Clone, PartialEq)]
pub struct StyleVector(pub [f32; STYLE_WIDTH]);
