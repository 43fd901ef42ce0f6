//! English text front end for Kokoro: normalization, misaki-compatible G2P and chunking.
//!
//! ```no_run
//! use kokoro_text::{Dialect, FrontEnd};
//! let front = FrontEnd::new(Dialect::EnUs).unwrap();
//! for chunk in front.chunks("The train leaves at 10:30. Don't be late!") {
//!     let chunk = chunk.unwrap();
//!     println!("{} -> {}", &"The train leaves at 10:30. Don't be late!"[chunk.source.clone()], chunk.phonemes);
//! }
//! ```
//!
//! The pipeline, per sentence:
//! 1. [`segment`]: sentences (and paragraphs) with their byte spans in the input;
//! 2. [`normalize`]: what misaki 0.9.4 leaves unknown or misreads (clock times, URLs, e-mail
//!    addresses, phone numbers, numeric dates, ranges, units, street abbreviations) is rewritten
//!    into words, keeping a map back to the source bytes;
//! 3. G2P: `misaki-rs` (crates.io, MIT), a port of misaki 0.9.4 with its spaCy-compatible
//!    tokenizer and tagger and the gold/silver lexicons; built without its `espeak` feature, which
//!    cannot build for wasm32 and is GPL. Vendored in `vendor/misaki-rs` with its data compressed
//!    and one cargo feature per dialect (`en-us`, `en-gb`), for the browser;
//! 4. out-of-vocabulary words: [`LetterToSound`], a letter-to-sound model learned from the lexicon
//!    itself, instead of misaki's silent drop;
//! 5. [`chunk`]: sentences are packed into chunks of at most 510 phonemes; longer sentences are cut
//!    at clause punctuation, then between words; every chunk carries its source span and the
//!    phoneme span of each word.
//!
//! Why misaki-rs: Kokoro v1.0 was trained on misaki's output, and misaki-rs reproduces it (measured
//! word agreement in `tests/agreement.rs`); the alternatives (espeak-ng, kokoro-js's phonemizer)
//! produce IPA the model never saw.

pub mod chunk;
pub mod fallback;
pub mod normalize;
pub mod segment;

mod front;

pub use chunk::{Chunk, ChunkOptions, Chunker, ChunkerOf, Chunks, ChunksOf, WordSpan};
pub use fallback::LetterToSound;
pub use front::{Dialect, FrontEnd, Phonemized};

/// Errors of the text front end.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// Occurs when a dialect name is neither en-us nor en-gb.
    #[error("unknown dialect {0:?}: expected en-us or en-gb")]
    UnknownDialect(String),
    /// Occurs when this build leaves a dialect out (cargo features `en-us`, `en-gb`).
    #[error("{0} is not built in: enable the kokoro-text feature {0}")]
    DialectNotBuilt(&'static str),
    /// Occurs when the G2P engine fails on a piece of text.
    #[error("G2P failed on {text:?}: {message}")]
    G2p { text: String, message: String },
}
