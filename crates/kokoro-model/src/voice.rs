//! Voice packs: `[510, 1, 256]` float32 style tables, one row per utterance length.
//!
//! A *voice pack* holds one *style vector* per phoneme count; the row for an utterance of `L`
//! phoneme ids (boundary zeros excluded) is row `L`, clamped to 509. The first 128 values of a
//! style vector condition the decoder, the last 128 the prosody predictor.

use std::path::Path;

use crate::Error;

/// Rows in a voice pack.
pub const VOICE_ROWS: usize = 510;
/// Values in a style vector.
pub const STYLE_WIDTH: usize = 256;
/// Bytes of a raw `.bin` voice pack (510 x 1 x 256 little-endian f32).
pub const VOICE_BIN_BYTES: usize = VOICE_ROWS * STYLE_WIDTH * 4;

/// One style vector.
#[derive(Debug, Clone, PartialEq)]
pub struct StyleVector(pub [f32; STYLE_WIDTH]);

/// A voice pack.
#[derive(Debug, Clone)]
pub struct VoicePack {
    rows: Vec<f32>,
}

impl VoicePack {
    /// Parses a raw little-endian `.bin` pack, checking its size and that every value is finite.
    pub fn from_bin_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != VOICE_BIN_BYTES {
            return Err(Error::BadVoice(format!(
                "a voice pack is {VOICE_BIN_BYTES} bytes (510 x 1 x 256 f32), got {}",
                bytes.len()
            )));
        }
        let rows: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(Error::BadVoice(format!("non-finite value at row {}, column {}", i / 256, i % 256)));
        }
        Ok(Self { rows })
    }

    /// Reads a raw `.bin` pack from disk.
    pub fn from_bin_file(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io(path.display().to_string(), e))?;
        Self::from_bin_bytes(&bytes).map_err(|e| match e {
            Error::BadVoice(m) => Error::BadVoice(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Returns the style vector for an utterance of `phoneme_ids` ids (boundary zeros excluded).
    pub fn style_for(&self, phoneme_ids: usize) -> StyleVector {
        let row = phoneme_ids.min(VOICE_ROWS - 1);
        let mut s = [0f32; STYLE_WIDTH];
        s.copy_from_slice(&self.rows[row * STYLE_WIDTH..(row + 1) * STYLE_WIDTH]);
        StyleVector(s)
    }
}

/// Returns true if and only if `name` is a plain voice name (`af_heart`): ASCII letters, digits and
/// `_`, 1 to 64 characters. Anything else (paths, `..`, separators) is refused.
pub fn is_valid_voice_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack_with_row_index() -> Vec<u8> {
        // Row r is filled with the value r, so style_for(L) is easy to check.
        (0..VOICE_ROWS).flat_map(|r| std::iter::repeat_n(r as f32, STYLE_WIDTH)).flat_map(f32::to_le_bytes).collect()
    }

    #[test]
    fn style_row_is_length_clamped_to_509() {
        let p = VoicePack::from_bin_bytes(&pack_with_row_index()).unwrap();
        assert_eq!(p.style_for(13).0[0], 13.0);
        assert_eq!(p.style_for(700).0[255], 509.0);
    }

    #[test]
    fn truncated_and_non_finite_packs_are_refused() {
        let mut b = pack_with_row_index();
        assert!(matches!(VoicePack::from_bin_bytes(&b[..100]), Err(Error::BadVoice(_))));
        b[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        let e = VoicePack::from_bin_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("row 0, column 2"), "{e}");
    }

    #[test]
    fn hostile_names_are_refused() {
        assert!(is_valid_voice_name("af_heart"));
        for bad in ["", "../../etc/passwd", "a/b", "af heart", "x.bin"] {
            assert!(!is_valid_voice_name(bad), "{bad}");
        }
    }
}
