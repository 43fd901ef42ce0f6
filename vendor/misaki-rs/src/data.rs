//! The lexicons, embedded gzip-compressed (kokoro-burn fork: ~3 MB instead of ~13 MB of JSON in
//! the binary) and one dialect per cargo feature, so a browser build carries only what it speaks.

use crate::lexicon::PhonemeEntry;
use std::collections::HashMap;
use std::io::Read;

/// Decompresses an embedded gzip member.
pub(crate) fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("embedded data is valid gzip");
    out
}

/// Parses a lexicon from gzip-compressed JSON (as embedded, or as fetched by a browser).
pub fn parse_lexicon_gz(bytes: &[u8]) -> Result<HashMap<String, PhonemeEntry>, serde_json::Error> {
    serde_json::from_slice(&gunzip(bytes))
}

#[cfg(feature = "en-us")]
pub const US_GOLD_GZ: &[u8] = include_bytes!("../data/us_gold.json.gz");
#[cfg(feature = "en-us")]
pub const US_SILVER_GZ: &[u8] = include_bytes!("../data/us_silver.json.gz");
#[cfg(feature = "en-gb")]
pub const GB_GOLD_GZ: &[u8] = include_bytes!("../data/gb_gold.json.gz");
#[cfg(feature = "en-gb")]
pub const GB_SILVER_GZ: &[u8] = include_bytes!("../data/gb_silver.json.gz");

/// Gold and silver lexicons of a dialect, if this build embeds it.
pub fn embedded(british: bool) -> Option<(&'static [u8], &'static [u8])> {
    match british {
        #[cfg(feature = "en-us")]
        false => Some((US_GOLD_GZ, US_SILVER_GZ)),
        #[cfg(feature = "en-gb")]
        true => Some((GB_GOLD_GZ, GB_SILVER_GZ)),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}
