//! The incremental counterpart of [`Plan`]: utterances of a text that arrives in pieces (an LLM's
//! tokens, a socket, a typing user), made as soon as their sentences are complete.

use std::sync::Arc;

use kokoro_text::{Chunk, ChunkOptions, ChunkerOf, Dialect, FrontEnd, TextError};
use kokoro_voice::VoiceStore;

use crate::utterance::from_chunk;
use crate::{Engine, EngineError, Utterance};

/// Utterances of a text pushed in pieces: `push` returns those its text completed, `flush` forces
/// out the sentence under way (the text's source paused), `finish` the rest. Indices and spans
/// count from the start of everything pushed, across flushes, and words carry their text exactly
/// as [`Plan`](crate::Plan) gives it for the same text at once.
///
/// Sentence splitting and packing are kokoro-text's `Chunker` (the one splitter of the project);
/// this adds the words' text, keeping only the pushed text a chunk still to come may need.
pub struct TextStream {
    chunker: ChunkerOf<Arc<FrontEnd>>,
    /// The pushed text from byte `text_start` of the stream on.
    text: String,
    text_start: usize,
}

impl TextStream {
    /// A stream over `front`'s dialect; [`Engine::text_stream`] picks the engine's front end.
    pub fn new(front: Arc<FrontEnd>, options: ChunkOptions) -> Self {
        Self { chunker: ChunkerOf::new(front, options), text: String::new(), text_start: 0 }
    }

    /// Adds text; returns the utterances it completed.
    pub fn push(&mut self, text: &str) -> Vec<Result<Utterance, EngineError>> {
        self.text.push_str(text);
        let chunks = self.chunker.push(text);
        self.utterances(chunks)
    }

    /// Speaks out everything pushed so far, the sentence under way included; the stream goes on.
    pub fn flush(&mut self) -> Vec<Result<Utterance, EngineError>> {
        let chunks = self.chunker.flush();
        self.utterances(chunks)
    }

    /// The utterances of whatever is left: the end of the text.
    pub fn finish(mut self) -> Vec<Result<Utterance, EngineError>> {
        self.flush()
    }

    /// Bytes pushed so far.
    pub fn len(&self) -> usize {
        self.text_start + self.text.len()
    }

    /// Returns true if and only if nothing has been pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stream offset before which no utterance still to come reaches (see `Chunker::settled`).
    pub fn settled(&self) -> usize {
        self.chunker.settled()
    }

    fn utterances(&mut self, chunks: Vec<Result<Chunk, TextError>>) -> Vec<Result<Utterance, EngineError>> {
        let out = chunks
            .into_iter()
            .map(|c| c.map(|c| from_chunk(c, &self.text, self.text_start)).map_err(EngineError::from))
            .collect();
        // Forget the text no chunk still needs, so a long stream does not keep all of it.
        let forget = self.chunker.settled().saturating_sub(self.text_start);
        if forget > 0 {
            self.text.drain(..forget);
            self.text_start += forget;
        }
        out
    }
}

impl<S: VoiceStore> Engine<S> {
    /// Utterances of a text that arrives in pieces (see [`TextStream`]), read in `dialect`.
    pub fn text_stream(&self, dialect: Dialect, options: ChunkOptions) -> Result<TextStream, EngineError> {
        Ok(TextStream::new(self.front(dialect)?, options))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;
    use crate::Plan;

    static FRONT: LazyLock<Arc<FrontEnd>> = LazyLock::new(|| Arc::new(FrontEnd::new(Dialect::EnUs).unwrap()));

    /// Non-ASCII words (their byte spans must still point at them), a rewritten e-mail address (two
    /// words share one source), an abbreviation and a last sentence without an end.
    const TEXT: &str = "Ünïcode “quotes” come first. Then bob@example.org wrote to Dr. Smith; \
        he answered at 10:30! Nobody knows why the café closed early";

    fn plan(options: ChunkOptions) -> Vec<Utterance> {
        Plan::text(FRONT.clone(), TEXT.into(), options).collect::<Result<_, _>>().unwrap()
    }

    fn streamed<'t>(pieces: impl IntoIterator<Item = &'t str>, options: ChunkOptions) -> Vec<Utterance> {
        let mut stream = TextStream::new(FRONT.clone(), options);
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(stream.push(piece));
        }
        out.extend(stream.finish());
        out.into_iter().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn pushed_in_pieces_gives_the_utterances_of_the_plan() {
        let characters: Vec<&str> = TEXT.char_indices().map(|(i, c)| &TEXT[i..i + c.len_utf8()]).collect();
        let words: Vec<&str> = TEXT.split_inclusive(' ').collect();
        for options in [ChunkOptions::default(), ChunkOptions { pack_sentences: false, ..ChunkOptions::default() }, ChunkOptions { max_phonemes: 40, pack_sentences: true }] {
            let expected = plan(options);
            assert!(expected.iter().flat_map(|u| &u.words).all(|w| TEXT[w.source.clone()] == w.text), "{expected:#?}");
            assert_eq!(streamed(characters.iter().copied(), options), expected, "{options:?}, char by char");
            assert_eq!(streamed(words.iter().copied(), options), expected, "{options:?}, word by word");
        }
    }

    #[test]
    fn flush_speaks_the_sentence_under_way_and_words_keep_their_text() {
        let mut stream = TextStream::new(FRONT.clone(), ChunkOptions::default());
        assert!(stream.push("Ünïcode is").is_empty());
        let first: Vec<Utterance> = stream.flush().into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(first.len(), 1);
        // "Ünïcode" is 9 bytes (Ü and ï take two each), " is" 3 more.
        assert_eq!(first[0].source, Some(0..12));
        assert_eq!(first[0].words.iter().map(|w| (w.text.as_str(), w.source.clone())).collect::<Vec<_>>(), [("Ünïcode", 0..9), ("is", 10..12)]);
        // Everything before the flush is settled and forgotten; spans go on from 12.
        assert_eq!((stream.settled(), stream.len()), (12, 12));
        assert!(stream.push(" spoken here. And").is_empty(), "packed: the chunk stays open");
        let rest: Vec<Utterance> = stream.finish().into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].index, 1);
        assert_eq!(rest[0].words.iter().map(|w| (w.text.as_str(), w.source.clone())).collect::<Vec<_>>(), [("spoken", 13..19), ("here", 20..24), ("And", 26..29)]);
    }
}
