//! A chunk's audio and what it says when, and the timeline that places chunks one after another.

use std::ops::Range;

use std::time::Duration;

use kokoro_model::{SAMPLE_RATE, StageTimings};
use serde::Serialize;

use crate::Utterance;

/// A word and when it is spoken, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordTime {
    pub text: String,
    pub start: f64,
    pub end: f64,
}

/// One utterance, spoken.
#[derive(Debug, Clone)]
pub struct SpokenChunk {
    pub index: usize,
    /// Byte range of the request's text (`None` for phonemes given directly).
    pub source: Option<Range<usize>>,
    pub phonemes: String,
    /// Phoneme ids the model read (after dropping unknown characters).
    pub phoneme_ids: usize,
    /// Characters outside the model's vocab, dropped (once each).
    pub unknown: Vec<char>,
    /// Words read by letter-to-sound.
    pub guessed: Vec<String>,
    /// Frames per token, the two boundary tokens included.
    pub durations: Vec<u32>,
    /// 24 kHz mono samples.
    pub audio: Vec<f32>,
    /// Words in samples from the start of this chunk's audio: `(text, start..end)`.
    pub words: Vec<(String, Range<usize>)>,
    pub timings: StageTimings,
    /// How long the chunk waited in the scheduler's queue before its forward pass.
    pub queue_wait: Duration,
    /// Served from the response cache (no forward pass).
    pub from_cache: bool,
}

impl SpokenChunk {
    /// Seconds of audio.
    pub fn seconds(&self) -> f64 {
        self.audio.len() as f64 / SAMPLE_RATE as f64
    }
}

/// Where each word of `utterance` starts and ends, in samples of its audio.
///
/// `kept[i]` says whether phoneme character `i` reached the model (unknown ones are dropped);
/// token `t` of the model is boundary, ids..., boundary, and `durations[t]` its frames.
pub(crate) fn word_samples(
    utterance: &Utterance,
    kept: &[bool],
    durations: &[u32],
    samples_per_frame: usize,
) -> Vec<(String, Range<usize>)> {
    // ids_before[i]: ids made from the characters before character i.
    let mut ids_before = Vec::with_capacity(kept.len() + 1);
    let mut n = 0;
    ids_before.push(0);
    for &k in kept {
        n += k as usize;
        ids_before.push(n);
    }
    // frames_before[t]: frames of the tokens before token t.
    let mut frames_before = Vec::with_capacity(durations.len() + 1);
    let mut f = 0usize;
    frames_before.push(0);
    for &d in durations {
        f += d as usize;
        frames_before.push(f);
    }
    let at = |char_index: usize| {
        // Token 0 is the leading boundary, so the id made from character i is token 1 + ids before it.
        let token = 1 + ids_before[char_index.min(kept.len())];
        frames_before[token.min(frames_before.len() - 1)] * samples_per_frame
    };
    utterance.words.iter().map(|w| (w.text.clone(), at(w.phonemes.start)..at(w.phonemes.end))).collect()
}

/// Places chunks one after another: word times in seconds from the start of the whole audio,
/// counted in samples (integers), so that a long text does not drift.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    samples: usize,
}

impl Timeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// The words of `chunk` on the timeline; advances it past the chunk's audio.
    pub fn place(&mut self, chunk: &SpokenChunk) -> Vec<WordTime> {
        let seconds = |s: usize| (self.samples + s) as f64 / SAMPLE_RATE as f64;
        let words = chunk
            .words
            .iter()
            .map(|(text, r)| WordTime { text: text.clone(), start: seconds(r.start), end: seconds(r.end) })
            .collect();
        self.samples += chunk.audio.len();
        words
    }

    /// Samples placed so far.
    pub fn samples(&self) -> usize {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Word;

    fn utterance(words: &[(&str, Range<usize>)], phonemes: &str) -> Utterance {
        Utterance {
            index: 0,
            source: None,
            phonemes: phonemes.to_string(),
            words: words.iter().map(|(t, r)| Word { text: t.to_string(), source: 0..0, phonemes: r.clone() }).collect(),
            guessed: Vec::new(),
        }
    }

    #[test]
    fn words_start_after_the_leading_boundary_and_skip_dropped_characters() {
        // "ab c": a b ' ' c; the boundary token has 2 frames, then 1, 2, 3, 4 frames, end boundary 5.
        let u = utterance(&[("ab", 0..2), ("c", 3..4)], "ab c");
        let w = word_samples(&u, &[true; 4], &[2, 1, 2, 3, 4, 5], 10);
        assert_eq!(w, vec![("ab".to_string(), 20..50), ("c".to_string(), 80..120)]);
        // The same with an unknown character dropped before "c": it takes no frames.
        let u = utterance(&[("ab", 0..2), ("c", 4..5)], "ab #c");
        let w = word_samples(&u, &[true, true, true, false, true], &[2, 1, 2, 3, 4, 5], 10);
        assert_eq!(w, vec![("ab".to_string(), 20..50), ("c".to_string(), 80..120)]);
    }

    #[test]
    fn the_timeline_counts_samples_not_rounded_seconds() {
        let chunk = |n: usize| SpokenChunk {
            index: 0,
            source: None,
            phonemes: String::new(),
            phoneme_ids: 0,
            unknown: Vec::new(),
            guessed: Vec::new(),
            durations: Vec::new(),
            audio: vec![0.0; n],
            words: vec![("w".to_string(), 1..n)],
            timings: StageTimings::default(),
            queue_wait: Duration::ZERO,
            from_cache: false,
        };
        let mut t = Timeline::new();
        // 1,000 chunks of 7 samples each: 1/24000 s steps that float sums would let drift.
        let mut last = None;
        for _ in 0..1000 {
            last = t.place(&chunk(7)).pop();
        }
        let last = last.unwrap();
        assert_eq!(last.start, (999 * 7 + 1) as f64 / 24000.0);
        assert_eq!(last.end, (1000 * 7) as f64 / 24000.0);
        assert_eq!(t.samples(), 7000);
    }
}
