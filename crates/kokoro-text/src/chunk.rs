//! Chunking unbounded text into pieces Kokoro can speak (at most 510 phoneme ids each).
//!
//! Text is cut into sentences ([`crate::segment`]); each sentence is phonemized on its own.
//! A sentence longer than the limit is cut after the last sentence punctuation that fits, else
//! the last `:`/`;`, else the last comma or dash, else between words, and a single word longer
//! than the limit is cut between phonemes: nothing is dropped. With packing on (the default, as
//! reference Kokoro does) consecutive sentences share a chunk while they fit.
//!
//! Source spans cover the input in order: every chunk's `source` starts where the previous one
//! ended (give or take whitespace), so together they cover every non-whitespace byte. Only where
//! a cut falls inside one rewritten piece (a long URL read out word by word) do two spans overlap,
//! both holding that piece.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::ops::Range;

use crate::front::{Phonemized, Token, TokenKind};
use crate::{FrontEnd, TextError, segment};

/// Kokoro's context: 512 positions, two of them the boundary tokens.
pub const MAX_PHONEMES: usize = 510;

/// How to chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Most phoneme ids per chunk (1..=510).
    pub max_phonemes: usize,
    /// Put consecutive sentences in one chunk while they fit. Off, every chunk is at most one
    /// sentence: the first audio comes sooner and a stream never waits for the next sentence.
    pub pack_sentences: bool,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        Self { max_phonemes: MAX_PHONEMES, pack_sentences: true }
    }
}

/// A word's place in the source text and in its chunk's phonemes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordSpan {
    /// Byte range in the input text.
    pub source: Range<usize>,
    /// Character range (= phoneme id range) in [`Chunk::phonemes`].
    pub phonemes: Range<usize>,
}

/// A piece of text ready for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// 0, 1, 2, ... in order.
    pub index: usize,
    /// Byte range of the input this chunk speaks.
    pub source: Range<usize>,
    /// Kokoro phonemes, at most `max_phonemes` characters, every one in the model's vocab.
    pub phonemes: String,
    /// The words, in order.
    pub words: Vec<WordSpan>,
    /// Words the lexicon does not have, read by letter-to-sound (worth a look: they may be wrong).
    pub guessed: Vec<String>,
}

impl Chunk {
    /// Length in phoneme ids.
    pub fn len(&self) -> usize {
        self.phonemes.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.phonemes.is_empty()
    }
}

/// A sentence cut to fit, before packing: phonemes, words (relative), source span.
struct Piece {
    source: Range<usize>,
    phonemes: String,
    words: Vec<WordSpan>,
    guessed: Vec<String>,
}

/// Cuts one phonemized sentence (whose text starts at byte `offset` of the input) into pieces of
/// at most `max` phonemes.
fn pieces(ph: &Phonemized, sentence: &str, offset: usize, max: usize) -> Vec<Piece> {
    let source = offset..offset + sentence.len();
    let chars: Vec<char> = ph.phonemes.chars().collect();
    let tokens = &ph.tokens;
    let mut out = Vec::new();
    if tokens.is_empty() {
        return out;
    }
    let span = |a: usize, b: usize| tokens[a].phonemes.start..tokens[b - 1].phonemes.end;
    let mut cuts: Vec<(usize, Range<usize>)> = Vec::new(); // (next token, char range)
    let mut a = 0;
    while a < tokens.len() {
        let whole = span(a, tokens.len());
        if whole.len() <= max {
            cuts.push((tokens.len(), whole));
            break;
        }
        let fits = |t: usize| span(a, t + 1).len() <= max;
        let levels: [&dyn Fn(&Token) -> bool; 4] = [
            &|t| t.kind == TokenKind::SentenceEnd,
            &|t| t.kind == TokenKind::ClauseEnd,
            &|t| t.kind == TokenKind::Pause,
            &|_| true,
        ];
        let cut = levels.iter().find_map(|level| (a..tokens.len() - 1).rev().find(|&t| level(&tokens[t]) && fits(t)));
        match cut {
            Some(t) => {
                cuts.push((t + 1, span(a, t + 1)));
                a = t + 1;
            }
            None => {
                // One token longer than the limit: cut between phonemes.
                let r = tokens[a].phonemes.clone();
                let mut s = r.start;
                while s < r.end {
                    let e = (s + max).min(r.end);
                    cuts.push((if e == r.end { a + 1 } else { a }, s..e));
                    s = e;
                }
                a += 1;
            }
        }
    }
    let mut src_start = source.start;
    let mut last_end = source.start;
    let mut first_token = 0;
    for (i, (next_token, range)) in cuts.iter().enumerate() {
        let src_end = if i + 1 == cuts.len() {
            source.end
        } else if *next_token < tokens.len() && *next_token > first_token {
            // Up to the next piece's first token, less the whitespace before it.
            let next = tokens[*next_token].source.start;
            (offset + sentence[..next].trim_end().len()).max(src_start)
        } else {
            src_start
        };
        let phonemes: String = chars[range.clone()].iter().collect::<String>();
        let lead = phonemes.chars().take_while(|c| *c == ' ').count();
        let words = tokens[first_token..*next_token.max(&first_token)]
            .iter()
            .filter(|t| t.kind == TokenKind::Word && t.phonemes.start >= range.start && t.phonemes.end <= range.end)
            .map(|t| WordSpan {
                source: offset + t.source.start..offset + t.source.end,
                phonemes: t.phonemes.start - range.start - lead..t.phonemes.end - range.start - lead,
            })
            .collect();
        // A cut inside a rewritten piece ("bob at example dot org" from one e-mail address)
        // leaves words whose source is the whole address: the piece's span widens to hold them,
        // so consecutive spans may overlap there.
        let words: Vec<WordSpan> = words;
        let start = words.iter().map(|w| w.source.start).min().map_or(src_start, |s| s.min(src_start));
        let end = words.iter().map(|w| w.source.end).max().map_or(src_end, |e| e.max(src_end)).max(last_end);
        last_end = end;
        out.push(Piece { source: start..end, phonemes: phonemes.trim().to_string(), words, guessed: Vec::new() });
        src_start = src_end;
        first_token = *next_token;
    }
    out
}

/// Packs pieces into chunks.
struct Packer {
    options: ChunkOptions,
    open: Option<Chunk>,
    next_index: usize,
    /// Start of sources that produced no phonemes, to be taken by the next chunk.
    carried_start: Option<usize>,
}

impl Packer {
    fn new(options: ChunkOptions) -> Self {
        Self { options, open: None, next_index: 0, carried_start: None }
    }

    fn add(&mut self, piece: Piece, ready: &mut VecDeque<Result<Chunk, TextError>>) {
        if piece.phonemes.is_empty() {
            match &mut self.open {
                Some(open) => open.source.end = open.source.end.max(piece.source.end),
                None => {
                    self.carried_start.get_or_insert(piece.source.start);
                }
            }
            return;
        }
        if let Some(open) = &mut self.open {
            let fits = self.options.pack_sentences
                && open.len() + 1 + piece.phonemes.chars().count() <= self.options.max_phonemes;
            if fits {
                let shift = open.len() + 1;
                open.phonemes.push(' ');
                open.phonemes.push_str(&piece.phonemes);
                open.source.end = open.source.end.max(piece.source.end);
                open.words.extend(
                    piece
                        .words
                        .into_iter()
                        .map(|w| WordSpan { phonemes: w.phonemes.start + shift..w.phonemes.end + shift, ..w }),
                );
                open.guessed.extend(piece.guessed);
                return;
            }
            ready.push_back(Ok(self.open.take().unwrap()));
        }
        let start = self.carried_start.take().unwrap_or(piece.source.start).min(piece.source.start);
        self.open = Some(Chunk {
            index: self.next_index,
            source: start..piece.source.end,
            phonemes: piece.phonemes,
            words: piece.words,
            guessed: piece.guessed,
        });
        self.next_index += 1;
    }

    fn finish(&mut self, ready: &mut VecDeque<Result<Chunk, TextError>>) {
        if let Some(open) = self.open.take() {
            ready.push_back(Ok(open));
        }
    }
}

fn process_sentence(
    front: &FrontEnd,
    text: &str,
    range: Range<usize>,
    offset: usize,
    packer: &mut Packer,
    ready: &mut VecDeque<Result<Chunk, TextError>>,
) {
    match front.phonemize(&text[range.clone()]) {
        Ok(ph) => {
            let source = offset + range.start..offset + range.end;
            let mut pieces = pieces(&ph, &text[range.clone()], offset + range.start, packer.options.max_phonemes);
            match pieces.first_mut() {
                Some(first) => first.guessed = ph.guessed,
                None => {
                    packer.add(Piece { source, phonemes: String::new(), words: Vec::new(), guessed: Vec::new() }, ready)
                }
            }
            for piece in pieces {
                packer.add(piece, ready);
            }
        }
        Err(e) => ready.push_back(Err(e)),
    }
}

/// Chunks of a whole text, phonemized lazily: each `next()` does only the work for the chunks it
/// returns (plus one sentence of look-ahead when packing).
///
/// Generic over how the front end and the text are held: borrowed ([`Chunks`], what
/// [`FrontEnd::chunks`] returns) or owned (`ChunksOf<Arc<FrontEnd>, Arc<str>>`, what a request
/// that outlives its caller's stack frame keeps, e.g. in a scheduler's queue).
pub struct ChunksOf<F, T> {
    front: F,
    text: T,
    sentences: std::vec::IntoIter<Range<usize>>,
    packer: Packer,
    ready: VecDeque<Result<Chunk, TextError>>,
    done: bool,
}

/// Chunks of a borrowed text with a borrowed front end.
pub type Chunks<'a> = ChunksOf<&'a FrontEnd, &'a str>;

impl<F: Borrow<FrontEnd>, T: AsRef<str>> ChunksOf<F, T> {
    /// The chunks of `text`, made on demand.
    pub fn new(front: F, text: T, options: ChunkOptions) -> Self {
        let options = ChunkOptions { max_phonemes: options.max_phonemes.clamp(1, MAX_PHONEMES), ..options };
        let sentences = segment::sentences(text.as_ref()).into_iter();
        Self { front, text, sentences, packer: Packer::new(options), ready: VecDeque::new(), done: false }
    }
}

impl<F: Borrow<FrontEnd>, T: AsRef<str>> Iterator for ChunksOf<F, T> {
    type Item = Result<Chunk, TextError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Some(chunk);
            }
            if self.done {
                return None;
            }
            match self.sentences.next() {
                Some(range) => {
                    process_sentence(self.front.borrow(), self.text.as_ref(), range, 0, &mut self.packer, &mut self.ready)
                }
                None => {
                    self.packer.finish(&mut self.ready);
                    self.done = true;
                }
            }
        }
    }
}

/// Incremental chunking for text that arrives in pieces (a stream, a socket, a typing user, an
/// LLM's tokens): `push` returns the chunks that are complete so far, `flush` forces out the
/// sentence under way, `finish` the rest. Source spans count bytes from the start of everything
/// pushed, and indices and spans go on across a `flush`.
///
/// Generic over how the front end is held, as [`ChunksOf`] is: borrowed ([`Chunker`]) or owned
/// (`ChunkerOf<Arc<FrontEnd>>`, for a stream that outlives its caller's stack frame).
pub struct ChunkerOf<F> {
    front: F,
    packer: Packer,
    /// Text not yet processed; `base` is the stream offset of its first byte.
    buffer: String,
    base: usize,
}

/// Incremental chunking with a borrowed front end.
pub type Chunker<'a> = ChunkerOf<&'a FrontEnd>;

impl<F: Borrow<FrontEnd>> ChunkerOf<F> {
    pub fn new(front: F, options: ChunkOptions) -> Self {
        let options = ChunkOptions { max_phonemes: options.max_phonemes.clamp(1, MAX_PHONEMES), ..options };
        Self { front, packer: Packer::new(options), buffer: String::new(), base: 0 }
    }

    /// Adds text; returns the chunks completed by it.
    pub fn push(&mut self, text: &str) -> Vec<Result<Chunk, TextError>> {
        self.buffer.push_str(text);
        let sentences = segment::sentences(&self.buffer);
        // The last sentence may go on in the next push: even "... St. " may continue with a name.
        let complete = sentences.len().saturating_sub(1);
        let mut out = self.process(&sentences[..complete], sentences.get(complete).map_or(self.buffer.len(), |r| r.start));
        // Unpacked, the open chunk is done once the next sentence will make phonemes of its own
        // (ASCII letters and digits are always read): out now, not when that sentence is complete,
        // so a stream speaks each sentence as soon as the next one begins. Until then it stays
        // open, as in `ChunksOf`, because text that makes no phonemes ("...") extends it.
        if !self.packer.options.pack_sentences && self.buffer.chars().any(|c| c.is_ascii_alphanumeric()) {
            let mut ready = VecDeque::new();
            self.packer.finish(&mut ready);
            out.extend(ready);
        }
        out
    }

    /// Processes everything pushed so far, the sentence under way included (as if the text ended
    /// here), and closes the open chunk; the chunker stays usable, and text pushed later starts a
    /// new sentence and a new chunk. What a stream calls when its source pauses (the end of an
    /// LLM's turn) and the audio should not wait for a full stop that may never come.
    pub fn flush(&mut self) -> Vec<Result<Chunk, TextError>> {
        let sentences = segment::sentences(&self.buffer);
        let mut out = self.process(&sentences, self.buffer.len());
        let mut ready = VecDeque::new();
        self.packer.finish(&mut ready);
        out.extend(ready);
        out
    }

    /// Processes whatever is left and closes the last chunk.
    pub fn finish(mut self) -> Vec<Result<Chunk, TextError>> {
        self.flush()
    }

    /// The stream offset before which no chunk still to come reaches: the start of the open chunk,
    /// else of text that made no phonemes yet (taken by the next chunk), else of the unprocessed
    /// text. A caller that keeps the pushed text (for the words' text, say) may forget what lies
    /// before it.
    pub fn settled(&self) -> usize {
        let open = self.packer.open.as_ref().map(|c| c.source.start);
        [open, self.packer.carried_start].into_iter().flatten().fold(self.base, usize::min)
    }

    fn process(&mut self, sentences: &[Range<usize>], consumed: usize) -> Vec<Result<Chunk, TextError>> {
        let mut ready = VecDeque::new();
        for range in sentences {
            process_sentence(self.front.borrow(), &self.buffer, range.clone(), self.base, &mut self.packer, &mut ready);
        }
        self.buffer.drain(..consumed);
        self.base += consumed;
        ready.into()
    }
}

impl FrontEnd {
    /// The chunks of `text` with the default options (510 ids, sentences packed).
    pub fn chunks<'a>(&'a self, text: &'a str) -> Chunks<'a> {
        Chunks::new(self, text, ChunkOptions::default())
    }

    /// The chunks of `text` with explicit options.
    pub fn chunks_with<'a>(&'a self, text: &'a str, options: ChunkOptions) -> Chunks<'a> {
        Chunks::new(self, text, options)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;
    use crate::Dialect;

    static FRONT: LazyLock<FrontEnd> = LazyLock::new(|| FrontEnd::new(Dialect::EnUs).unwrap());

    /// Abbreviations, initials, decimals, a clock time, an e-mail address (rewritten into words),
    /// quotes, a blank line and a last sentence without an end: each a place where a sentence
    /// boundary seen too early (half a word, half an abbreviation) would change the chunks.
    const TEXT: &str = "Dr. Smith met J. R. Tolkien at 3.5 p.m. on Main St. today! \u{201c}Stop,\u{201d} she said... \
        Then the 2nd train left at 10:30; bob@example.org wrote back, and nobody, not even the \
        conductor who had seen everything, could say why.\n\nA new paragraph without an end";

    fn whole(options: ChunkOptions) -> Vec<Chunk> {
        FRONT
            .chunks_with(TEXT, options)
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn pushed_in<'t>(
        pieces: impl IntoIterator<Item = &'t str>,
        options: ChunkOptions,
    ) -> Vec<Chunk> {
        let mut chunker = Chunker::new(&FRONT, options);
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(chunker.push(piece));
        }
        out.extend(chunker.finish());
        out.into_iter().collect::<Result<_, _>>().unwrap()
    }

    /// Both packings, and a limit low enough (60 phonemes) that the long sentence is cut.
    fn option_sets() -> [ChunkOptions; 3] {
        [
            ChunkOptions::default(),
            ChunkOptions {
                pack_sentences: false,
                ..ChunkOptions::default()
            },
            ChunkOptions {
                max_phonemes: 60,
                pack_sentences: true,
            },
        ]
    }

    #[test]
    fn text_pushed_character_by_character_chunks_as_the_whole_text() {
        let characters: Vec<&str> = TEXT
            .char_indices()
            .map(|(i, c)| &TEXT[i..i + c.len_utf8()])
            .collect();
        for options in option_sets() {
            let expected = whole(options);
            // Unpacked or cut at 60 phonemes, several chunks: the packer's state crosses pushes.
            assert!(
                expected.len() >= 3 || options == ChunkOptions::default(),
                "{expected:#?}"
            );
            assert_eq!(
                pushed_in(characters.iter().copied(), options),
                expected,
                "{options:?}"
            );
        }
    }

    #[test]
    fn text_pushed_word_by_word_chunks_as_the_whole_text() {
        // As an LLM's tokens come: each word with the whitespace before it.
        let mut words = Vec::new();
        let mut start = 0;
        for (i, c) in TEXT.char_indices() {
            if c.is_whitespace() && i > start && !TEXT[start..i].trim().is_empty() {
                words.push(&TEXT[start..i]);
                start = i;
            }
        }
        words.push(&TEXT[start..]);
        assert_eq!(words.concat(), TEXT);
        for options in option_sets() {
            assert_eq!(
                pushed_in(words.iter().copied(), options),
                whole(options),
                "{options:?}"
            );
        }
    }

    #[test]
    fn flush_forces_out_the_sentence_under_way_and_offsets_go_on() {
        let mut chunker = Chunker::new(&FRONT, ChunkOptions::default());
        // No sentence is complete: it may go on with the next push.
        assert!(chunker.push("Hello there, how are").is_empty());
        let flushed: Vec<Chunk> = chunker
            .flush()
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(flushed.len(), 1);
        assert_eq!((flushed[0].index, flushed[0].source.clone()), (0, 0..20));
        assert_eq!(flushed[0].words.len(), 4, "{:?}", flushed[0].words);
        // Nothing is left to flush twice.
        assert!(chunker.flush().is_empty());
        // Pushed 20 bytes so far; " you today? Fine." starts a new chunk (packed with what follows,
        // not with what was flushed): "you" is bytes 21..24 of everything pushed.
        assert!(
            chunker.push(" you today? Fine.").is_empty(),
            "packing waits for the text's end"
        );
        let rest: Vec<Chunk> = chunker
            .finish()
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].index, rest[0].source.clone()), (1, 21..37));
        assert_eq!(rest[0].words[0].source, 21..24);
        assert_eq!(rest[0].words.last().unwrap().source, 32..36, "\"Fine\"");
    }

    #[test]
    fn unpacked_a_sentence_comes_out_as_soon_as_the_next_one_begins() {
        let mut chunker = Chunker::new(&FRONT, ChunkOptions { pack_sentences: false, ..ChunkOptions::default() });
        // Complete, but "..." could still follow and extend its chunk.
        assert!(chunker.push("One sentence. ").is_empty());
        let first: Vec<Chunk> = chunker.push("And").into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].source, 0..13);
        // Packed, it waits: the next sentence may join its chunk.
        let mut packed = Chunker::new(&FRONT, ChunkOptions::default());
        assert!(packed.push("One sentence. And").is_empty());
    }

    #[test]
    fn settled_is_where_the_open_chunk_starts() {
        let mut chunker = Chunker::new(&FRONT, ChunkOptions::default());
        assert_eq!(chunker.settled(), 0);
        // "One." is processed into the open (packed) chunk, which may still grow: from 0.
        assert!(chunker.push("One. Two").is_empty());
        assert_eq!(chunker.settled(), 0);
        chunker.flush();
        // Nothing open and nothing unprocessed: all 8 bytes are settled.
        assert_eq!(chunker.settled(), 8);
    }
}
