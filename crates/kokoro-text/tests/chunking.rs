//! Chunking: limits, coverage of the source, nothing dropped, incremental = whole, vocab.

use std::sync::LazyLock;

use kokoro_text::{ChunkOptions, Chunker, Dialect, FrontEnd};
use proptest::prelude::*;

static FRONT: LazyLock<FrontEnd> = LazyLock::new(|| FrontEnd::new(Dialect::EnUs).unwrap());

fn check_coverage(text: &str, chunks: &[kokoro_text::Chunk], max: usize) {
    let (mut last_start, mut last_end) = (0, 0);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.index, i);
        assert!(c.len() <= max, "chunk {i} has {} phonemes > {max}", c.len());
        assert!(!c.phonemes.is_empty());
        assert!(
            c.source.start >= last_start
                && c.source.end >= last_end
                && c.source.start <= c.source.end
                && c.source.end <= text.len(),
            "{:?} after {last_start}..{last_end}",
            c.source
        );
        // Only whitespace between consecutive chunks (they overlap only inside one rewritten piece).
        if c.source.start > last_end {
            assert!(text[last_end..c.source.start].trim().is_empty(), "gap {:?}", &text[last_end..c.source.start]);
        }
        for w in &c.words {
            assert!(
                w.source.start >= c.source.start && w.source.end <= c.source.end,
                "word {:?} outside chunk {:?} in {text:?}: {chunks:#?}",
                w.source,
                c.source
            );
            assert!(w.phonemes.end <= c.len());
        }
        (last_start, last_end) = (c.source.start, c.source.end);
    }
    if !chunks.is_empty() {
        assert!(text[last_end..].trim().is_empty(), "tail not covered: {:?}", &text[last_end..]);
    }
}

fn sentence_phonemes(text: &str) -> usize {
    kokoro_text::segment::sentences(text)
        .into_iter()
        .map(|r| FRONT.phonemize(&text[r]).unwrap().phonemes.chars().filter(|c| *c != ' ').count())
        .sum()
}

fn text_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(vec![
            "the", "quick", "brown", "fox", "Dr.", "Smith", "lives", "on", "Main", "St.", "read", "lead",
            "NASA", "iPhone", "state-of-the-art", "don't", "$5.50", "10:30", "1990s", "3.14", "-5", "2-3",
            "km", "qzxwv", "flimbertastic", "e-mail", "bob@example.org", "https://example.com/a",
            "555-123-4567", "2024-03-15", "#1", "50%", "&", "I'm", "(see", "this)", "“quoted”",
        ]).prop_map(str::to_string),
        2 => prop::sample::select(vec![".", ",", "!", "?", ";", ":", "—", "...", "\n\n", "\n"]).prop_map(str::to_string),
        1 => "\\PC{0,6}",
        1 => "[a-z]{1,30}",
    ];
    prop::collection::vec(piece, 0..60).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn chunks_cover_the_source_in_order(text in text_strategy(), max in 8usize..80, pack in any::<bool>()) {
        let options = ChunkOptions { max_phonemes: max, pack_sentences: pack };
        let chunks: Vec<_> = FRONT.chunks_with(&text, options).collect::<Result<_, _>>().unwrap();
        check_coverage(&text, &chunks, max);
        // Nothing dropped: the chunks hold every phoneme of every sentence.
        let total: usize = chunks.iter().map(|c| c.phonemes.chars().filter(|c| *c != ' ').count()).sum();
        prop_assert_eq!(total, sentence_phonemes(&text));
    }

    #[test]
    fn incremental_equals_whole(text in text_strategy(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6), pack in any::<bool>()) {
        let options = ChunkOptions { max_phonemes: 60, pack_sentences: pack };
        let whole: Vec<_> = FRONT.chunks_with(&text, options).collect::<Result<_, _>>().unwrap();
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(text.len() + 1)).filter(|&i| text.is_char_boundary(i)).collect();
        at.sort();
        let mut chunker = Chunker::new(&FRONT, options);
        let mut streamed = Vec::new();
        let mut prev = 0;
        for cut in at.into_iter().chain([text.len()]) {
            streamed.extend(chunker.push(&text[prev..cut]));
            prev = cut;
        }
        streamed.extend(chunker.finish());
        let streamed: Vec<_> = streamed.into_iter().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(streamed, whole);
    }
}

#[test]
fn long_text_is_cut_at_the_best_boundary() {
    let sentence = "The committee, which had met every Tuesday for eleven years without once reaching a decision, finally voted; the result surprised everyone, including the chairman himself";
    let text = format!("{sentence}. {sentence}!");
    let chunks: Vec<_> = FRONT
        .chunks_with(&text, ChunkOptions { max_phonemes: 120, pack_sentences: true })
        .collect::<Result<_, _>>()
        .unwrap();
    check_coverage(&text, &chunks, 120);
    // The first cut falls after a clause mark, not inside a clause.
    let first = &text[chunks[0].source.clone()];
    assert!(first.ends_with([',', ';']), "first chunk: {first:?}");
    // A single word longer than the limit is cut, not dropped.
    let word = "a".repeat(40) + "bcdefghijklmnop".repeat(20).as_str();
    let chunks: Vec<_> = FRONT
        .chunks_with(&word, ChunkOptions { max_phonemes: 50, pack_sentences: true })
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(chunks.len() > 1);
    check_coverage(&word, &chunks, 50);
}

#[test]
fn default_chunks_fill_up_to_510() {
    let text = std::fs::read_to_string(format!("{}/tests/fixtures/prose.txt", std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))).unwrap();
    let text: String = text.lines().take(300).collect::<Vec<_>>().join(" ");
    let chunks: Vec<_> = FRONT.chunks(&text).collect::<Result<_, _>>().unwrap();
    check_coverage(&text, &chunks, 510);
    let mean = chunks.iter().map(|c| c.len()).sum::<usize>() as f64 / chunks.len() as f64;
    println!("{} sentences -> {} chunks, mean {mean:.0} phonemes", 300, chunks.len());
    assert!(mean > 350.0, "packing should fill chunks, mean {mean}");
}

#[test]
fn every_output_character_is_in_the_model_vocab() {
    let vocab = kokoro_model::Vocab::from_config(&kokoro_model::KokoroConfig::v1());
    for dialect in [Dialect::EnUs, Dialect::EnGb] {
        let front = FrontEnd::new(dialect).unwrap();
        for name in ["prose", "tricky"] {
            let text =
                std::fs::read_to_string(format!("{}/tests/fixtures/{name}.txt", std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))).unwrap();
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let ph = front.phonemize(line).unwrap();
                let enc = vocab.encode(&ph.phonemes);
                assert!(
                    enc.unknown.is_empty(),
                    "{}: {line:?} -> {:?} has {:?}",
                    dialect.as_str(),
                    ph.phonemes,
                    enc.unknown
                );
                assert!(
                    ph.unknown.is_empty() || ph.unknown.iter().all(|w| !w.chars().any(char::is_alphabetic)),
                    "{line:?}: unread words {:?}",
                    ph.unknown
                );
            }
        }
    }
}

#[test]
fn word_spans_point_at_the_words() {
    let text = "Dr. Smith met us at 10:30 in Leicester.";
    let chunk = FRONT.chunks(text).next().unwrap().unwrap();
    let words: Vec<&str> = chunk.words.iter().map(|w| &text[w.source.clone()]).collect();
    assert_eq!(words, ["Dr.", "Smith", "met", "us", "at", "10:30", "10:30", "in", "Leicester"]);
    let chars: Vec<char> = chunk.phonemes.chars().collect();
    let smith: String = chars[chunk.words[1].phonemes.clone()].iter().collect();
    assert_eq!(smith, "smˈɪθ");
}
