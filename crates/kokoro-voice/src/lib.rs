//! Everything about Kokoro voices that is not the model: reading every published format, weighted
//! mixing with Kokoro-FastAPI's syntax, and a bounded voice cache ([`cache`]). Voices are plain
//! `f32` arrays here (no burn).
//!
//! Formats ([`format`]): raw `.bin` (510 x 1 x 256 little-endian f32, as kokoro-js and the ONNX
//! exports ship them), PyTorch `.pt` (the official voices; read by a small pickle reader that
//! builds no objects), `.npz` bundles (kokoro-onnx's `voices-v1.0.bin`), safetensors (one tensor
//! per voice). Crates: `zip` for `.npz`, `safetensors` for safetensors; the `.npy` header is parsed here
//! (a dozen lines, no crate needed).

pub mod analytics;
pub mod cache;
pub mod format;
pub mod manifest;
pub mod mix;
pub mod predict;
pub mod prewarm;
pub mod store;
pub mod torch;

use std::sync::Arc;

pub use analytics::UsageAnalytics;
pub use cache::{CacheSnapshot, CacheStats, VoiceCache};
pub use predict::{Prefetcher, predict, replay, synthetic_trace};
pub use prewarm::{Prewarm, PrewarmProgress};
#[cfg(feature = "http")]
pub use store::HttpStore;
pub use store::{DirStore, VoiceStore};
pub use format::{VoiceFormat, read_voices};
pub use manifest::{Gender, Manifest, ManifestEntry, ManifestError};
pub use mix::{MixSpec, MixTerm};

/// Rows in a voice pack: one style vector per utterance length in phoneme ids.
pub const VOICE_ROWS: usize = 510;
/// Values in a style vector (128 for the decoder, then 128 for the prosody predictor).
pub const STYLE_WIDTH: usize = 256;
/// Values in a voice pack.
pub const VOICE_LEN: usize = VOICE_ROWS * STYLE_WIDTH;
/// Bytes of a raw `.bin` voice pack.
pub const VOICE_BIN_BYTES: usize = VOICE_LEN * 4;

/// Errors about voices.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    /// Occurs when a voice name could escape its folder or is otherwise malformed.
    #[error("invalid voice name {0:?}: use letters, digits and _ (like af_heart), at most 64")]
    InvalidName(String),
    /// Occurs when no voice of that name exists.
    #[error("unknown voice {0:?}")]
    Unknown(String),
    /// Occurs when a voice's data has the wrong size or shape.
    #[error("{what}: {message}")]
    BadShape { what: String, message: String },
    /// Occurs when a voice holds NaN or infinity.
    #[error("{what}: non-finite value at row {row}, column {column}")]
    NonFinite { what: String, row: usize, column: usize },
    /// Occurs when a file is not in the format its name says, or is corrupt.
    #[error("{what}: {message}")]
    BadFile { what: String, message: String },
    /// Occurs when a mix specification does not parse.
    #[error(transparent)]
    BadMix(#[from] mix::MixError),
    /// Occurs when a file cannot be read or written.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// One voice pack: 510 style vectors of 256 values, shared cheaply (`Arc`).
#[derive(Debug, Clone, PartialEq)]
pub struct Voice {
    values: Arc<[f32]>,
}

impl Voice {
    /// A voice from its 510 x 256 values, checked for size and finiteness. `what` names the
    /// source in errors.
    pub fn from_values(values: Vec<f32>, what: &str) -> Result<Self, VoiceError> {
        if values.len() != VOICE_LEN {
            return Err(VoiceError::BadShape {
                what: what.to_string(),
                message: format!("a voice is 510 x 256 = {VOICE_LEN} values, got {}", values.len()),
            });
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(VoiceError::NonFinite { what: what.to_string(), row: i / STYLE_WIDTH, column: i % STYLE_WIDTH });
        }
        Ok(Self { values: values.into() })
    }

    /// Parses a raw little-endian `.bin` pack.
    pub fn from_bin_bytes(bytes: &[u8], what: &str) -> Result<Self, VoiceError> {
        if bytes.len() != VOICE_BIN_BYTES {
            return Err(VoiceError::BadShape {
                what: what.to_string(),
                message: format!("a .bin voice is {VOICE_BIN_BYTES} bytes (510 x 1 x 256 f32), got {}", bytes.len()),
            });
        }
        Self::from_values(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(), what)
    }

    /// The raw `.bin` form.
    pub fn to_bin_bytes(&self) -> Vec<u8> {
        self.values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// All 510 x 256 values, row by row.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The style vector for an utterance of `phoneme_ids` ids (boundary pads excluded): row
    /// `phoneme_ids`, clamped to 509.
    pub fn style_for(&self, phoneme_ids: usize) -> [f32; STYLE_WIDTH] {
        let row = phoneme_ids.min(VOICE_ROWS - 1);
        let mut style = [0f32; STYLE_WIDTH];
        style.copy_from_slice(&self.values[row * STYLE_WIDTH..(row + 1) * STYLE_WIDTH]);
        style
    }

    /// Bytes of memory the values take.
    pub fn byte_size(&self) -> usize {
        VOICE_BIN_BYTES
    }
}

/// Is `name` a plain voice name (`af_heart`): ASCII letters, digits and `_`, 1 to 64 characters?
/// Anything else (paths, `..`, separators, spaces) is refused, so a name can never become a path.
pub fn is_valid_voice_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a voice name; see [`is_valid_voice_name`].
pub fn check_voice_name(name: &str) -> Result<&str, VoiceError> {
    if is_valid_voice_name(name) { Ok(name) } else { Err(VoiceError::InvalidName(name.to_string())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn voice_with_row_index() -> Vec<f32> {
        (0..VOICE_ROWS).flat_map(|r| std::iter::repeat_n(r as f32, STYLE_WIDTH)).collect()
    }

    #[test]
    fn style_row_is_length_clamped_to_509() {
        let v = Voice::from_values(voice_with_row_index(), "test").unwrap();
        assert_eq!(v.style_for(13)[0], 13.0);
        assert_eq!(v.style_for(700)[255], 509.0);
        assert_eq!(Voice::from_bin_bytes(&v.to_bin_bytes(), "again").unwrap(), v);
    }

    #[test]
    fn truncated_and_non_finite_voices_are_refused() {
        let mut values = voice_with_row_index();
        let e = Voice::from_bin_bytes(&[0u8; 100], "x.bin").unwrap_err().to_string();
        assert!(e.contains("x.bin") && e.contains("got 100"), "{e}");
        values[2] = f32::NAN;
        let e = Voice::from_values(values, "y").unwrap_err().to_string();
        assert!(e.contains("row 0, column 2"), "{e}");
    }

    #[test]
    fn hostile_names_are_refused() {
        assert!(is_valid_voice_name("af_heart"));
        for bad in ["", "../../etc/passwd", "a/b", "af heart", "x.bin", "..", &"a".repeat(65)] {
            assert!(check_voice_name(bad).is_err(), "{bad}");
        }
    }
}
