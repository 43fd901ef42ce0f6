//! Format detection and every voice reader (raw .bin, .npz, .pt, safetensors) on arbitrary bytes,
//! as `kokoro` reads a voice file: no panic, memory bounded by the input (-rss_limit_mb), and what
//! reads back survives a safetensors round trip unchanged.
//! From fuzz/, new inputs going to the ignored corpus/, not the committed seeds/:
//! `cargo +nightly fuzz run voice_any corpus/voice_any seeds/voice_any -- -max_total_time=120 -max_len=1200000 -rss_limit_mb=2048`
#![no_main]

use kokoro_voice::format::{VoiceFormat, read_voices, write_safetensors};
use kokoro_voice::{VOICE_BIN_BYTES, VoiceError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match read_voices(data, "fuzz", "fuzz.bin") {
        Ok(voices) => {
            let format = VoiceFormat::detect(data).expect("a file that reads has a format");
            assert!(format != VoiceFormat::Bin || (data.len() == VOICE_BIN_BYTES && voices.len() == 1));
            // Names from a file are arbitrary; safetensors keeps one tensor per distinct name.
            let mut distinct = voices.clone();
            distinct.sort_by(|a, b| a.0.cmp(&b.0));
            distinct.dedup_by(|a, b| a.0 == b.0);
            let bytes = write_safetensors(&distinct).unwrap();
            assert_eq!(read_voices(&bytes, "fuzz", "again").unwrap(), distinct);
        }
        Err(VoiceError::BadFile { .. } | VoiceError::BadShape { .. } | VoiceError::NonFinite { .. }) => {}
        Err(e) => panic!("unexpected error kind: {e}"),
    }
});
