//! What one forward pass speaks, and the lazy plan of a whole request.

use std::ops::Range;
use std::sync::Arc;

use kokoro_text::{Chunk, ChunkOptions, ChunksOf, FrontEnd};

use crate::EngineError;

/// One word of an utterance: its text, where it is in the request's text, and which of the
/// utterance's phoneme characters speak it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// Byte range in the request's text.
    pub source: Range<usize>,
    /// Character range in [`Utterance::phonemes`].
    pub phonemes: Range<usize>,
}

/// One model call's worth of input: a chunk of a text, or phonemes given as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utterance {
    /// 0, 1, 2, ... within its request.
    pub index: usize,
    /// Byte range of the request's text (`None` for phonemes given directly).
    pub source: Option<Range<usize>>,
    /// Kokoro phonemes (misaki's alphabet).
    pub phonemes: String,
    /// The words, in order (empty for phonemes given directly).
    pub words: Vec<Word>,
    /// Words the lexicon lacks, read by letter-to-sound.
    pub guessed: Vec<String>,
}

impl Utterance {
    /// Phonemes given directly: one utterance, no words.
    pub fn from_phonemes(phonemes: impl Into<String>) -> Self {
        Self { index: 0, source: None, phonemes: phonemes.into(), words: Vec::new(), guessed: Vec::new() }
    }
}

/// The utterances of a request, made on demand: each `next()` phonemizes only the sentences it
/// needs, so the first audio of a book does not wait for the G2P of the whole book. Owns its text
/// and front end, so a plan can outlive the call that made it (a stream, a queue).
pub struct Plan {
    source: Source,
}

enum Source {
    Text { text: Arc<str>, chunks: ChunksOf<Arc<FrontEnd>, Arc<str>> },
    Phonemes(Option<Utterance>),
}

impl Plan {
    pub(crate) fn text(front: Arc<FrontEnd>, text: Arc<str>, options: ChunkOptions) -> Self {
        let chunks = ChunksOf::new(front, text.clone(), options);
        Self { source: Source::Text { text, chunks } }
    }

    pub(crate) fn phonemes(phonemes: String) -> Self {
        Self { source: Source::Phonemes(Some(Utterance::from_phonemes(phonemes))) }
    }
}

impl Iterator for Plan {
    type Item = Result<Utterance, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.source {
            Source::Phonemes(one) => one.take().map(Ok),
            Source::Text { text, chunks } => Some(chunks.next()?.map_err(EngineError::from).map(|c| from_chunk(c, text, 0))),
        }
    }
}

/// The utterance of a chunk: the one conversion [`Plan`] and [`TextStream`](crate::TextStream) share.
/// `text` holds the request's text from byte `text_start` on (a stream forgets what no chunk still
/// needs), and the chunk's spans count from the start of the whole text.
pub(crate) fn from_chunk(c: Chunk, text: &str, text_start: usize) -> Utterance {
    let word_text = |source: &Range<usize>| {
        text.get(source.start.saturating_sub(text_start)..source.end.saturating_sub(text_start)).unwrap_or_default().to_string()
    };
    Utterance {
        index: c.index,
        words: c
            .words
            .into_iter()
            .map(|w| Word { text: word_text(&w.source), source: w.source, phonemes: w.phonemes })
            .collect(),
        source: Some(c.source),
        phonemes: c.phonemes,
        guessed: c.guessed,
    }
}
