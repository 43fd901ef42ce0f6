//! Whole responses kept for reuse: the same text, voice, speed and noise on the same weights give
//! the same audio, so the second request costs a lookup instead of a forward pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kokoro_model::SourceNoise;
use kokoro_text::{ChunkOptions, Dialect};

use crate::SpokenChunk;

/// Everything that changes the audio of a request. Two requests with equal keys get equal audio.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResponseKey {
    /// Identity of the weights file (its sha256 where the caller computed one).
    pub weights: Arc<str>,
    /// The voice's canonical mix key (`af_bella(2)+af_sky(1)` and `af_sky+af_bella(2)` are one voice).
    pub voice: String,
    /// The text, or the phonemes when given directly (`phonemes` says which).
    pub input: Arc<str>,
    pub phonemes: bool,
    pub dialect: Dialect,
    /// `f32::to_bits` of the speed: `1.0` and `1.00` are one key, `NaN`s never get here.
    pub speed_bits: u32,
    /// `None` for deterministic synthesis, else the noise seed.
    pub seed: Option<u64>,
    /// Chunk boundaries change where the pauses fall.
    pub max_phonemes: usize,
    pub pack_sentences: bool,
}

impl ResponseKey {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        weights: Arc<str>,
        voice: String,
        input: Arc<str>,
        phonemes: bool,
        dialect: Dialect,
        speed: f32,
        noise: SourceNoise,
        chunking: ChunkOptions,
    ) -> Self {
        Self {
            weights,
            voice,
            input,
            phonemes,
            dialect,
            speed_bits: speed.to_bits(),
            seed: match noise {
                SourceNoise::Deterministic => None,
                SourceNoise::Seeded(s) => Some(s),
            },
            max_phonemes: chunking.max_phonemes,
            pack_sentences: chunking.pack_sentences,
        }
    }

    /// Bytes the key itself holds (counted against the budget with the audio).
    fn bytes(&self) -> usize {
        self.weights.len() + self.voice.len() + self.input.len() + std::mem::size_of::<Self>()
    }
}

/// Counters since the cache was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResponseCacheStats {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
    /// Responses larger than the whole budget, not kept.
    pub uncacheable: u64,
}

/// One cached response, as listed by [`ResponseCache::snapshot`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResponseEntryInfo {
    pub voice: String,
    /// The first 60 characters of the text or phonemes.
    pub input: String,
    pub chunks: usize,
    pub audio_seconds: f64,
    pub bytes: usize,
    pub hits: u64,
}

/// The cache's state at one moment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResponseCacheSnapshot {
    pub budget: usize,
    pub bytes: usize,
    /// Most recently used first.
    pub entries: Vec<ResponseEntryInfo>,
    pub stats: ResponseCacheStats,
}

/// A byte-bounded LRU of whole responses (every chunk of a request, in order).
///
/// Bytes counted: each chunk's samples (4 bytes each), its phonemes, durations and words, plus
/// the key. Entries are shared (`Arc`), so a hit copies nothing.
#[derive(Debug)]
pub struct ResponseCache {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    budget: usize,
    bytes: usize,
    tick: u64,
    entries: HashMap<ResponseKey, Entry>,
    stats: ResponseCacheStats,
}

impl Inner {
    /// Evicts the least recently used entries until at most `bytes` are held.
    fn evict_to(&mut self, bytes: usize) {
        while self.bytes > bytes {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone()) else { break };
            let e = self.entries.remove(&oldest).expect("the key was just found");
            self.bytes -= e.bytes;
            self.stats.evictions += 1;
        }
    }
}

#[derive(Debug)]
struct Entry {
    chunks: Arc<[SpokenChunk]>,
    bytes: usize,
    last_used: u64,
    hits: u64,
}

impl ResponseCache {
    /// A cache holding at most `budget` bytes (0 keeps nothing).
    pub fn new(budget: usize) -> Self {
        Self { inner: Mutex::new(Inner { budget, bytes: 0, tick: 0, entries: HashMap::new(), stats: ResponseCacheStats::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The response for `key`, counting a hit or a miss.
    pub fn get(&self, key: &ResponseKey) -> Option<Arc<[SpokenChunk]>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        match inner.entries.get_mut(key) {
            Some(e) => {
                e.last_used = tick;
                e.hits += 1;
                let chunks = e.chunks.clone();
                inner.stats.hits += 1;
                Some(chunks)
            }
            None => {
                inner.stats.misses += 1;
                None
            }
        }
    }

    /// Keeps a finished response, evicting the least recently used ones to fit the budget.
    pub fn insert(&self, key: ResponseKey, chunks: Arc<[SpokenChunk]>) {
        let bytes = key.bytes() + chunks.iter().map(chunk_bytes).sum::<usize>();
        let mut inner = self.lock();
        if bytes > inner.budget {
            inner.stats.uncacheable += 1;
            return;
        }
        if let Some(old) = inner.entries.remove(&key) {
            inner.bytes -= old.bytes;
        }
        let room = inner.budget - bytes;
        inner.evict_to(room);
        inner.tick += 1;
        let last_used = inner.tick;
        inner.bytes += bytes;
        inner.stats.inserts += 1;
        inner.entries.insert(key, Entry { chunks, bytes, last_used, hits: 0 });
    }

    /// Empties the cache (the counters stay).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.bytes = 0;
    }

    /// Changes the budget, evicting what no longer fits.
    pub fn set_budget(&self, budget: usize) {
        let mut inner = self.lock();
        inner.budget = budget;
        inner.evict_to(budget);
    }

    pub fn stats(&self) -> ResponseCacheStats {
        self.lock().stats
    }

    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn snapshot(&self) -> ResponseCacheSnapshot {
        let inner = self.lock();
        let mut entries: Vec<(&ResponseKey, &Entry)> = inner.entries.iter().collect();
        entries.sort_by_key(|(_, e)| std::cmp::Reverse(e.last_used));
        ResponseCacheSnapshot {
            budget: inner.budget,
            bytes: inner.bytes,
            entries: entries
                .into_iter()
                .map(|(k, e)| ResponseEntryInfo {
                    voice: k.voice.clone(),
                    input: k.input.chars().take(60).collect(),
                    chunks: e.chunks.len(),
                    audio_seconds: e.chunks.iter().map(SpokenChunk::seconds).sum(),
                    bytes: e.bytes,
                    hits: e.hits,
                })
                .collect(),
            stats: inner.stats,
        }
    }
}

/// Heap bytes a chunk holds.
fn chunk_bytes(c: &SpokenChunk) -> usize {
    std::mem::size_of::<SpokenChunk>()
        + c.audio.len() * 4
        + c.durations.len() * 4
        + c.phonemes.len()
        + c.words.iter().map(|(w, _)| w.len() + std::mem::size_of::<(String, std::ops::Range<usize>)>()).sum::<usize>()
        + c.guessed.iter().map(String::len).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str, speed: f32, noise: SourceNoise) -> ResponseKey {
        ResponseKey::new("w".into(), "af_heart".into(), text.into(), false, Dialect::EnUs, speed, noise, ChunkOptions::default())
    }

    fn chunk(samples: usize) -> SpokenChunk {
        SpokenChunk {
            index: 0,
            source: None,
            phonemes: String::new(),
            phoneme_ids: 0,
            unknown: Vec::new(),
            guessed: Vec::new(),
            durations: Vec::new(),
            audio: vec![0.0; samples],
            words: Vec::new(),
            timings: Default::default(),
            queue_wait: Default::default(),
            from_cache: false,
        }
    }

    #[test]
    fn everything_that_changes_the_audio_is_in_the_key() {
        let base = key("Hello.", 1.0, SourceNoise::Deterministic);
        assert_ne!(base, key("Hello!", 1.0, SourceNoise::Deterministic));
        assert_ne!(base, key("Hello.", 1.1, SourceNoise::Deterministic));
        assert_ne!(base, key("Hello.", 1.0, SourceNoise::Seeded(0)));
        assert_ne!(key("Hello.", 1.0, SourceNoise::Seeded(1)), key("Hello.", 1.0, SourceNoise::Seeded(2)));
        let mut other = base.clone();
        other.dialect = Dialect::EnGb;
        assert_ne!(base, other);
        let mut other = base.clone();
        other.weights = "v".into();
        assert_ne!(base, other);
        let mut other = base.clone();
        other.pack_sentences = false;
        assert_ne!(base, other);
        assert_eq!(base, key("Hello.", 1.0, SourceNoise::Deterministic));
    }

    #[test]
    fn least_recently_used_goes_first_and_bytes_stay_in_budget() {
        let one = chunk_bytes(&chunk(1000)) + key("a", 1.0, SourceNoise::Deterministic).bytes();
        let cache = ResponseCache::new(2 * one + 10);
        cache.insert(key("a", 1.0, SourceNoise::Deterministic), vec![chunk(1000)].into());
        cache.insert(key("b", 1.0, SourceNoise::Deterministic), vec![chunk(1000)].into());
        assert!(cache.get(&key("a", 1.0, SourceNoise::Deterministic)).is_some()); // a is now newer than b
        cache.insert(key("c", 1.0, SourceNoise::Deterministic), vec![chunk(1000)].into());
        assert!(cache.get(&key("b", 1.0, SourceNoise::Deterministic)).is_none());
        assert!(cache.get(&key("a", 1.0, SourceNoise::Deterministic)).is_some());
        assert!(cache.get(&key("c", 1.0, SourceNoise::Deterministic)).is_some());
        let snap = cache.snapshot();
        assert!(snap.bytes <= snap.budget);
        assert_eq!(snap.entries.len(), 2);
        assert_eq!(snap.entries[0].input, "c");
        assert_eq!(snap.stats, ResponseCacheStats { hits: 3, misses: 1, inserts: 3, evictions: 1, uncacheable: 0 });

        // Larger than the whole budget: not kept, nothing evicted for it.
        cache.insert(key("d", 1.0, SourceNoise::Deterministic), vec![chunk(100_000)].into());
        assert_eq!(cache.stats().uncacheable, 1);
        assert_eq!(cache.snapshot().entries.len(), 2);

        cache.set_budget(one + 10);
        assert_eq!(cache.snapshot().entries.len(), 1);
        cache.clear();
        assert_eq!(cache.bytes(), 0);
    }
}
