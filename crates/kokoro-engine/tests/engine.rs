//! The engine over the real weights (int8, CPU) and the fetched voices folder: what the CLI and the
//! browser's worker both run.

use std::path::PathBuf;

use kokoro_engine::{Backend, ChunkOptions, Dialect, Engine, SourceNoise, Timeline, Utterance};
use kokoro_model::Kokoro;
use kokoro_voice::DirStore;

fn cache() -> PathBuf {
    std::env::var_os("KOKORO_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/kokoro-burn"))
}

fn engine() -> Engine<DirStore> {
    let device = burn::tensor::Device::flex();
    let kokoro = Kokoro::load(&cache().join("kokoro-v1_0-int8.safetensors"), &device)
        .expect("weights: run `kokoro fetch` (scripts/test.sh does)");
    Engine::new(kokoro, device, Backend::Cpu, DirStore { dir: cache().join("voices") }, 4 * 522_240)
}

fn unpacked() -> ChunkOptions {
    ChunkOptions { pack_sentences: false, ..ChunkOptions::default() }
}

#[test]
fn speaks_a_plan_with_a_mixed_voice_through_the_cache() {
    let e = engine();
    let text = "Hello there. Ünïcode “quotes” come first; then the 2nd sentence.";
    let chunks: Vec<Utterance> =
        e.plan(text, e.dialect(None, "bf_emma").unwrap(), unpacked()).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(chunks.len(), 2, "one utterance per sentence unpacked");
    let packed = e.plan(text, Dialect::EnGb, ChunkOptions::default()).unwrap().count();
    assert_eq!(packed, 1, "packed: both sentences fit one utterance");
    assert!(text[chunks[0].source.clone().unwrap()].starts_with("Hello"));
    // Words carry their text as written, and where it is.
    let first = &chunks[1].words[0];
    assert_eq!((first.text.as_str(), &text[first.source.clone()]), ("Ünïcode", "Ünïcode"));
    assert!(chunks.iter().flat_map(|c| &c.words).all(|w| text[w.source.clone()] == w.text));

    let mix = pollster::block_on(e.voice("af_bella(2)+af_sky(1)")).unwrap();
    let same = pollster::block_on(e.voice(" af_sky(1) + af_bella(2) ")).unwrap();
    assert_eq!(mix.values(), same.values(), "one canonical cache entry for both spellings");
    let stats = e.voice_cache().snapshot().stats;
    assert_eq!((stats.misses, stats.hits), (3, 1), "bella, sky and the mix loaded once; the respelling hit");

    let out = e.synthesize(&chunks[0], &mix, 1.0, SourceNoise::Deterministic).unwrap();
    assert_eq!(out.audio.len(), 600 * out.durations.iter().sum::<u32>() as usize);
    assert!(out.audio.iter().all(|v| v.is_finite()) && out.audio.iter().any(|v| v.abs() > 0.01));
    // The async path (what the browser awaits) computes the same on the CPU.
    let again = pollster::block_on(e.synthesize_async(&chunks[0], &mix, 1.0, SourceNoise::Deterministic)).unwrap();
    assert_eq!((again.durations, again.audio), (out.durations, out.audio));
}

#[test]
fn word_times_are_ordered_inside_the_audio_and_continue_across_chunks() {
    let e = engine();
    let text = "The quick brown fox jumps over the lazy dog. Then it sleeps, and the dog does too! Good night.";
    let voice = pollster::block_on(e.voice("af_heart")).unwrap();
    let mut timeline = Timeline::new();
    let mut words = Vec::new();
    let mut chunk_starts = Vec::new();
    for u in e.plan(text, Dialect::EnUs, unpacked()).unwrap() {
        let u = u.unwrap();
        let spoken = e.synthesize(&u, &voice, 1.0, SourceNoise::Deterministic).unwrap();
        assert_eq!(spoken.words.len(), u.words.len(), "every word of the utterance is timed");
        chunk_starts.push(timeline.samples() as f64 / 24000.0);
        words.extend(timeline.place(&spoken));
    }
    let total = timeline.samples() as f64 / 24000.0;
    assert_eq!(chunk_starts.len(), 3);
    let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(texts.first(), Some(&"The"));
    assert_eq!(texts.iter().filter(|t| t.eq_ignore_ascii_case("dog")).count(), 2);
    for w in &words {
        assert!(0.0 <= w.start && w.start < w.end && w.end <= total, "{w:?} inside 0..{total}");
    }
    for pair in words.windows(2) {
        assert!(pair[0].end <= pair[1].start, "in order, not overlapping: {pair:?}");
    }
    // Chunk 2's first word starts after chunk 1's audio began the timeline anew, within its chunk.
    let then = words.iter().find(|w| w.text == "Then").unwrap();
    assert!(then.start >= chunk_starts[1] && then.start < chunk_starts[2], "{then:?} in chunk 2 from {}", chunk_starts[1]);
    // Words cover most of the speech (the rest is the boundary tokens' and punctuation's silence).
    let spoken: f64 = words.iter().map(|w| w.end - w.start).sum();
    assert!(spoken > 0.6 * total, "words cover {spoken:.2} s of {total:.2} s");
}

#[test]
fn bad_requests_are_named_with_stable_codes() {
    let e = engine();
    let err = |spec: &str| pollster::block_on(e.voice(spec)).unwrap_err();
    assert!(err("af_nobody").to_string().contains("unknown voice \"af_nobody\""), "{}", err("af_nobody"));
    assert_eq!(err("af_nobody").code(), "unknown_voice");
    assert!(err("../../etc/passwd").to_string().contains("expected a voice name"), "{}", err("../../etc/passwd"));
    assert!(err("af_heart(2)+").to_string().contains("at character"), "{}", err("af_heart(2)+"));
    assert_eq!(e.dialect(Some("fr-fr"), "af_heart").unwrap_err().code(), "bad_language");
    assert_eq!(e.dialect(None, "af_heart(1)+bf_emma(2)").unwrap(), Dialect::EnGb);
    assert_eq!(e.dialect(Some("en-us"), "bf_emma").unwrap(), Dialect::EnUs);
    let voice = pollster::block_on(e.voice("af_heart")).unwrap();
    let empty = e.synthesize(&Utterance::from_phonemes(""), &voice, 1.0, SourceNoise::Deterministic).unwrap_err();
    assert_eq!(empty.code(), "nothing_to_say");
    // Unknown characters are dropped and reported, once each.
    let odd = e.synthesize(&Utterance::from_phonemes("h#ˈI#1"), &voice, 1.0, SourceNoise::Deterministic).unwrap();
    assert_eq!((odd.unknown, odd.phoneme_ids), (vec!['#', '1'], 3));
    // Speeds outside the model's range: refused, the range named (the browser client checks the same bounds).
    for speed in [0.0, 0.2, 4.5, f32::NAN] {
        let err = e.synthesize(&Utterance::from_phonemes("hˈI"), &voice, speed, SourceNoise::Deterministic).unwrap_err();
        assert!(err.to_string().contains("between 0.25 and 4"), "{err}");
        assert_eq!(err.code(), "bad_speed");
    }
}

#[test]
fn a_batch_speaks_each_item_as_it_is_spoken_alone_and_a_bad_item_fails_alone() {
    use kokoro_engine::BatchItem;
    use kokoro_model::eval::try_log_mel_distance;
    let e = engine();
    let plan = |text: &str, voice: &str| -> Utterance {
        e.plan(text, e.dialect(None, voice).unwrap(), unpacked()).unwrap().next().unwrap().unwrap()
    };
    let (heart, emma) = (pollster::block_on(e.voice("af_heart")).unwrap(), pollster::block_on(e.voice("bf_emma")).unwrap());
    let utterances = [plan("Good morning, everyone.", "af_heart"), plan("Is it raining?", "bf_emma"), plan("Yes.", "af_heart")];
    let items = [
        BatchItem { utterance: &utterances[0], voice: &heart, speed: 1.0, noise: SourceNoise::Deterministic },
        BatchItem { utterance: &utterances[1], voice: &emma, speed: 1.3, noise: SourceNoise::Seeded(5) },
        BatchItem { utterance: &utterances[2], voice: &heart, speed: 0.8, noise: SourceNoise::Deterministic },
    ];
    let batched = e.synthesize_batch(&items);
    assert_eq!(batched.len(), 3);
    for (item, out) in items.iter().zip(batched) {
        let out = out.unwrap();
        let alone = e.synthesize(item.utterance, item.voice, item.speed, item.noise).unwrap();
        assert_eq!(out.durations, alone.durations, "{:?}: durations", item.utterance.phonemes);
        assert_eq!(out.words, alone.words, "word times follow the durations");
        assert_eq!(out.audio.len(), alone.audio.len());
        // The golden tests' tolerance (kokoro-model tests/batched.rs measures each stage).
        let mel = try_log_mel_distance(&out.audio, &alone.audio).unwrap();
        assert!(mel < 0.05, "{:?}: log-mel distance {mel}", item.utterance.phonemes);
    }
    // An item the model refuses (nothing to say) fails alone; the others are still spoken.
    let empty = Utterance::from_phonemes("");
    let with_bad = [items[0], BatchItem { utterance: &empty, ..items[2] }, items[2]];
    let results = e.synthesize_batch(&with_bad);
    assert_eq!(results[1].as_ref().unwrap_err().code(), "nothing_to_say");
    assert!(results[0].is_ok() && results[2].is_ok());
}
