//! Voice packs for the model: `[510, 1, 256]` float32 style tables, one row per utterance length.
//!
//! Reading, validating and mixing voices belong to `kokoro-voice` (no burn there); this module
//! wraps its [`Voice`] for the model. The row for an utterance of `L` phoneme ids (boundary zeros
//! excluded) is row `L`, clamped to 509. The first 128 values of a style vector condition the
//! decoder, the last 128 the prosody predictor.

use std::path::Path;

pub use kokoro_voice::{STYLE_WIDTH, VOICE_BIN_BYTES, VOICE_ROWS, Voice, is_valid_voice_name};

use crate::Error;

/// One style vector.
#[derive(Debug, Clone, PartialEq)]
pub struct StyleVector(pub [f32; STYLE_WIDTH]);

/// A voice pack.
#[derive(Debug, Clone, PartialEq)]
pub struct VoicePack(pub Voice);

impl VoicePack {
    /// Parses a raw little-endian `.bin` pack, checking its size and that every value is finite.
    pub fn from_bin_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Voice::from_bin_bytes(bytes, "voice pack").map(Self).map_err(|e| Error::BadVoice(e.to_string()))
    }

    /// Reads a raw `.bin` pack from disk.
    pub fn from_bin_file(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io(path.display().to_string(), e))?;
        Voice::from_bin_bytes(&bytes, &path.display().to_string()).map(Self).map_err(|e| Error::BadVoice(e.to_string()))
    }

    /// Returns the style vector for an utterance of `phoneme_ids` ids (boundary zeros excluded).
    pub fn style_for(&self, phoneme_ids: usize) -> StyleVector {
        StyleVector(self.0.style_for(phoneme_ids))
    }
}

impl From<Voice> for VoicePack {
    fn from(voice: Voice) -> Self {
        Self(voice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_row_is_length_clamped_and_errors_are_model_errors() {
        let bytes: Vec<u8> =
            (0..VOICE_ROWS).flat_map(|r| std::iter::repeat_n(r as f32, STYLE_WIDTH)).flat_map(f32::to_le_bytes).collect();
        let p = VoicePack::from_bin_bytes(&bytes).unwrap();
        assert_eq!(p.style_for(13).0[0], 13.0);
        assert_eq!(p.style_for(700).0[255], 509.0);
        assert!(matches!(VoicePack::from_bin_bytes(&bytes[..100]), Err(Error::BadVoice(_))));
    }
}
