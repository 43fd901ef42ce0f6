//! The reader for .pt files (a zip holding a pickle, read by our own pickle reader)
//! on arbitrary bytes, whatever their content looks like: no panic, memory bounded by the input
//! (-rss_limit_mb), and every voice read is a whole, finite one.
//! From fuzz/, new inputs going to the ignored corpus/, not the committed seeds/:
//! `cargo +nightly fuzz run voice_pt corpus/voice_pt seeds/voice_pt -- -max_total_time=120 -max_len=1200000 -rss_limit_mb=2048`
#![no_main]

use kokoro_voice::format::{VoiceFormat, read_voices_as};
use kokoro_voice::{VOICE_LEN, Voice};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(voices) = read_voices_as(VoiceFormat::Pt, data, "fuzz", "fuzz.pt") {
        assert!(!voices.is_empty());
        for (_, voice) in &voices {
            assert!(voice.values().len() == VOICE_LEN && voice.values().iter().all(|v| v.is_finite()));
            assert_eq!(&Voice::from_bin_bytes(&voice.to_bin_bytes(), "again").unwrap(), voice);
        }
    }
});
