//! Normalization + G2P + chunking on arbitrary input: no panic, and the chunk invariants hold.
//! `cargo +nightly fuzz run text -- -max_total_time=300` (scripts/fuzz.sh).
#![no_main]

use std::sync::LazyLock;

use kokoro_text::{ChunkOptions, Chunker, Dialect, FrontEnd, normalize};
use libfuzzer_sys::fuzz_target;

static US: LazyLock<FrontEnd> = LazyLock::new(|| FrontEnd::new(Dialect::EnUs).unwrap());
static GB: LazyLock<FrontEnd> = LazyLock::new(|| FrontEnd::new(Dialect::EnGb).unwrap());

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let front = if control & 1 == 0 { &*US } else { &*GB };
    let options = ChunkOptions { max_phonemes: 4 + (control as usize >> 1) * 4, pack_sentences: control & 2 == 0 };

    let n = normalize::normalize(text, front.dialect());
    for (norm, src) in &n.rewrites {
        assert!(norm.end <= n.text.len() && src.end <= text.len());
    }
    let mut last_end = 0;
    let mut whole = Vec::new();
    for chunk in front.chunks_with(text, options) {
        let chunk = chunk.expect("the front end has no failing input");
        assert!(chunk.len() <= options.max_phonemes && !chunk.phonemes.is_empty());
        assert!(chunk.source.end <= text.len() && chunk.source.end >= last_end);
        for w in &chunk.words {
            assert!(w.phonemes.end <= chunk.len() && w.source.end <= text.len());
        }
        last_end = chunk.source.end;
        whole.push(chunk);
    }
    // The same text pushed in two halves gives the same chunks.
    let mid = (0..=text.len() / 2).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let mut chunker = Chunker::new(front, options);
    let mut streamed: Vec<_> = chunker.push(&text[..mid]);
    streamed.extend(chunker.push(&text[mid..]));
    streamed.extend(chunker.finish());
    let streamed: Vec<_> = streamed.into_iter().map(Result::unwrap).collect();
    assert_eq!(streamed, whole);
});
