//! The browser engine's logic, natively: the same code the worker runs, over the real weights and
//! a folder store instead of IndexedDB.

use std::path::PathBuf;

use kokoro_model::{Kokoro, SourceNoise};
use kokoro_text::Dialect;
use kokoro_voice::DirStore;
use kokoro_wasm::{Backend, Engine};

fn cache() -> PathBuf {
    std::env::var_os("KOKORO_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/kokoro-burn"))
}

fn engine() -> Engine<DirStore> {
    let device = burn::tensor::Device::flex();
    let kokoro = Kokoro::load(&cache().join("kokoro-v1_0-int8.safetensors"), &device)
        .expect("weights: run `cargo run -p kokoro-cli -- fetch` (scripts/test.sh does)");
    Engine::new(kokoro, device, Backend::Cpu, DirStore { dir: cache().join("voices") }, 4 * 522_240)
}

#[test]
fn speaks_chunks_with_mixed_voices_through_the_cache() {
    let e = engine();
    let text = "Hello there. Ünïcode “quotes” come first; then the 2nd sentence.";
    let chunks = e.chunks(text, e.dialect(None, "bf_emma").unwrap(), false).unwrap();
    assert_eq!(chunks.len(), 2, "one chunk per sentence unpacked");
    assert_eq!(e.chunks(text, Dialect::EnGb, true).unwrap().len(), 1, "packed: both sentences fit one chunk");
    assert!(!chunks.is_empty());
    // Offsets are UTF-16 (what the page slices with), covering the text in order.
    let utf16: Vec<u16> = text.encode_utf16().collect();
    let last = chunks.last().unwrap();
    assert!(last.end <= utf16.len() && chunks.windows(2).all(|w| w[0].end <= w[1].start));
    assert!(String::from_utf16(&utf16[chunks[0].start..chunks[0].end]).unwrap().starts_with("Hello"));

    let mix = pollster::block_on(e.voice("af_bella(2)+af_sky(1)")).unwrap();
    let same = pollster::block_on(e.voice(" af_sky(1) + af_bella(2) ")).unwrap();
    assert_eq!(mix.values(), same.values(), "one canonical cache entry for both spellings");
    let stats = e.voice_cache().snapshot().stats;
    assert_eq!((stats.misses, stats.hits), (3, 1), "bella, sky and the mix loaded once; the respelling hit");

    let out = pollster::block_on(e.synthesize(&chunks[0].phonemes, &mix, 1.0, SourceNoise::Deterministic)).unwrap();
    assert_eq!(out.audio.len(), 600 * out.durations.iter().sum::<u32>() as usize);
    assert!(out.audio.iter().all(|v| v.is_finite()) && out.audio.iter().any(|v| v.abs() > 0.01));
}

#[test]
fn bad_requests_are_named() {
    let e = engine();
    let err = |spec: &str| pollster::block_on(e.voice(spec)).unwrap_err().to_string();
    assert!(err("af_nobody").contains("unknown voice \"af_nobody\""), "{}", err("af_nobody"));
    assert!(err("../../etc/passwd").contains("expected a voice name"), "{}", err("../../etc/passwd"));
    assert!(err("af_heart(2)+").contains("at character"), "{}", err("af_heart(2)+"));
    assert!(e.dialect(Some("fr-fr"), "af_heart").is_err());
    assert_eq!(e.dialect(None, "af_heart(1)+bf_emma(2)").unwrap(), Dialect::EnGb);
    assert_eq!(e.dialect(Some("en-us"), "bf_emma").unwrap(), Dialect::EnUs);
    let voice = pollster::block_on(e.voice("af_heart")).unwrap();
    assert!(pollster::block_on(e.synthesize("", &voice, 1.0, SourceNoise::Deterministic)).is_err());
    // Speeds outside the model's range: refused, the range named (the browser client checks the same bounds).
    for speed in [0.0, 0.2, 4.5, f32::NAN] {
        let err = pollster::block_on(e.synthesize("hˈI", &voice, speed, SourceNoise::Deterministic)).unwrap_err().to_string();
        assert!(err.contains("between 0.25 and 4"), "{err}");
    }
}
