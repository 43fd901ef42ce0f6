//! What crosses to JavaScript: an engine utterance as the worker hands it out (offsets in UTF-16
//! code units, what `String.prototype.slice` takes), and back.

use kokoro_engine::{Utterance, Word};
use serde::{Deserialize, Serialize};

/// One chunk of a text, as the worker hands it out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkInfo {
    pub index: usize,
    /// UTF-16 range of the source text.
    pub start: usize,
    pub end: usize,
    pub phonemes: String,
    pub guessed: Vec<String>,
    /// The words, each with its UTF-16 range and its range of `phonemes` (in characters).
    pub words: Vec<WordInfo>,
}

/// A word of a chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WordInfo {
    pub text: String,
    pub start: usize,
    pub end: usize,
    pub phonemes: [usize; 2],
}

impl ChunkInfo {
    /// The chunk of `utterance`, whose byte offsets are into `offsets`' text.
    pub fn new(u: Utterance, offsets: &impl Utf16At) -> Self {
        let source = u.source.clone().unwrap_or(0..0);
        Self {
            index: u.index,
            start: offsets.at(source.start),
            end: offsets.at(source.end),
            words: u
                .words
                .into_iter()
                .map(|w| WordInfo {
                    start: offsets.at(w.source.start),
                    end: offsets.at(w.source.end),
                    text: w.text,
                    phonemes: [w.phonemes.start, w.phonemes.end],
                })
                .collect(),
            phonemes: u.phonemes,
            guessed: u.guessed,
        }
    }

    /// Back to the engine's utterance (source offsets are not needed to speak it).
    pub fn into_utterance(self) -> Utterance {
        Utterance {
            index: self.index,
            source: None,
            words: self.words.into_iter().map(|w| Word { text: w.text, source: 0..0, phonemes: w.phonemes[0]..w.phonemes[1] }).collect(),
            phonemes: self.phonemes,
            guessed: self.guessed,
        }
    }
}

/// Maps UTF-8 byte offsets of a text to UTF-16 offsets (JavaScript string indices).
pub trait Utf16At {
    fn at(&self, byte: usize) -> usize;
}

impl Utf16At for Utf16Offsets {
    fn at(&self, byte: usize) -> usize {
        Utf16Offsets::at(self, byte)
    }
}

impl Utf16At for StreamOffsets {
    fn at(&self, byte: usize) -> usize {
        StreamOffsets::at(self, byte)
    }
}

/// Maps UTF-8 byte offsets of a whole text to UTF-16 offsets.
pub struct Utf16Offsets {
    /// (byte offset, utf16 offset) at every char boundary, plus the end.
    table: Vec<(usize, usize)>,
}

impl Utf16Offsets {
    pub fn new(text: &str) -> Self {
        let mut table = Vec::with_capacity(text.len() + 1);
        let mut u = 0;
        for (b, c) in text.char_indices() {
            table.push((b, u));
            u += c.len_utf16();
        }
        table.push((text.len(), u));
        Self { table }
    }

    pub fn at(&self, byte: usize) -> usize {
        match self.table.binary_search_by_key(&byte, |&(b, _)| b) {
            Ok(i) => self.table[i].1,
            Err(i) => self.table[i.saturating_sub(1)].1,
        }
    }
}

/// [`Utf16Offsets`] for a text that arrives in pieces (a text stream): byte offsets from the start
/// of everything pushed to UTF-16 offsets from the same start, keeping the table only from where
/// chunks still to come may begin.
#[derive(Default)]
pub struct StreamOffsets {
    /// (byte offset, utf16 offset) at every char boundary of the retained text, plus its end.
    table: std::collections::VecDeque<(usize, usize)>,
}

impl StreamOffsets {
    pub fn new() -> Self {
        Self { table: [(0, 0)].into() }
    }

    pub fn push(&mut self, text: &str) {
        let (mut b, mut u) = *self.table.back().expect("the end is always there");
        for c in text.chars() {
            b += c.len_utf8();
            u += c.len_utf16();
            self.table.push_back((b, u));
        }
    }

    /// Drops the table before byte `settled` (no chunk to come reaches before it).
    pub fn forget_before(&mut self, settled: usize) {
        while self.table.len() > 1 && self.table[1].0 <= settled {
            self.table.pop_front();
        }
    }

    pub fn at(&self, byte: usize) -> usize {
        match self.table.binary_search_by_key(&byte, |&(b, _)| b) {
            Ok(i) => self.table[i].1,
            Err(i) => self.table[i.saturating_sub(1)].1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_offsets_count_surrogate_pairs() {
        let t = Utf16Offsets::new("é😀a");
        assert_eq!(t.at(0), 0);
        assert_eq!(t.at(2), 1); // after é (2 bytes, 1 unit)
        assert_eq!(t.at(6), 3); // after 😀 (4 bytes, 2 units)
        assert_eq!(t.at(7), 4);
    }

    #[test]
    fn a_chunk_goes_to_javascript_and_back_with_its_words() {
        let text = "😀 hi there";
        let u = Utterance {
            index: 2,
            source: Some(5..13),
            phonemes: "hˈI ðɛɹ".to_string(),
            words: vec![
                Word { text: "hi".into(), source: 5..7, phonemes: 0..3 },
                Word { text: "there".into(), source: 8..13, phonemes: 4..7 },
            ],
            guessed: vec![],
        };
        let c = ChunkInfo::new(u.clone(), &Utf16Offsets::new(text));
        assert_eq!((c.start, c.end), (3, 11));
        assert_eq!((c.words[1].start, c.words[1].end), (6, 11));
        let json = serde_json::to_string(&c).unwrap();
        let back: ChunkInfo = serde_json::from_str(&json).unwrap();
        let back = back.into_utterance();
        assert_eq!((back.phonemes, back.words.len(), back.words[1].phonemes.clone()), (u.phonemes, 2, 4..7));
    }

    #[test]
    fn stream_offsets_go_on_across_pushes_and_forgetting() {
        let mut t = StreamOffsets::new();
        t.push("é😀");
        t.push("a");
        assert_eq!((t.at(2), t.at(6), t.at(7)), (1, 3, 4));
        // Forgetting the first two characters keeps later offsets counted from the stream's start.
        t.forget_before(6);
        t.push("b😀");
        assert_eq!((t.at(6), t.at(7), t.at(8), t.at(12)), (3, 4, 5, 7));
    }
}
