//! Learns the letter-to-sound tables from the lexicons and writes `data/lts-en-{us,gb}.bin`.
//! `cargo run --release -p kokoro-text --example train_lts`
use kokoro_text::Dialect;
use kokoro_text::fallback::{LetterToSound, lexicon_pairs};

fn main() {
    for dialect in [Dialect::EnUs, Dialect::EnGb] {
        let lts = LetterToSound::train(&lexicon_pairs(dialect), dialect);
        let bytes = lts.to_bytes();
        let path = format!("{}/data/lts-{}.bin", std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"), dialect.as_str());
        std::fs::write(&path, &bytes).unwrap();
        println!("{path}: {} rules, {} bytes", lts.rule_count(), bytes.len());
    }
}
