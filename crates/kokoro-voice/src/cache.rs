//! A voice cache a busy server can trust: a byte budget with least-recently-used eviction, pinned
//! entries (pre-warmed voices) that are evicted only when the budget shrinks below them, runtime
//! resizing, single-flight loading (concurrent requests for one voice cause one load), and
//! statistics with an inspection snapshot.
//!
//! Keys are whatever the caller chooses; for mixes use [`crate::MixSpec::canonical`] so that equal
//! mixes share one entry. This is the synchronous core (a `Mutex` and a `Condvar`); loads run on
//! the caller's thread, outside the lock.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

// std's Instant panics in a browser; web-time is std's type natively.
use web_time::Instant;

use crate::{Voice, VoiceError};

#[derive(Debug)]
struct Entry {
    voice: Voice,
    bytes: usize,
    last_used: u64,
    pinned: bool,
    hits: u64,
    load_time: Duration,
}

/// Counters since the cache was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub loads: u64,
    pub load_failures: u64,
    pub evictions: u64,
    /// Requests that waited for another caller's load of the same key instead of loading again.
    pub coalesced: u64,
    /// Voices loaded but larger than the whole budget, so not kept.
    pub uncacheable: u64,
    /// Voices loaded ahead of need by [`VoiceCache::prefetch`].
    pub prefetches: u64,
    /// Load times: counts of loads under 1 ms, 10 ms, 100 ms, 1 s, and longer.
    pub load_time_histogram: [u64; 5],
    /// All load times together (with `loads`, the mean; a Prometheus histogram's sum).
    pub load_time_total: Duration,
}

impl CacheStats {
    fn record_load(&mut self, load_time: Duration) {
        self.loads += 1;
        self.load_time_total += load_time;
        let bucket = [1u128, 10, 100, 1000].iter().position(|&ms| load_time.as_millis() < ms).unwrap_or(4);
        self.load_time_histogram[bucket] += 1;
    }
}

/// One entry as [`VoiceCache::snapshot`] shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryInfo {
    pub key: String,
    pub bytes: usize,
    pub pinned: bool,
    pub hits: u64,
    pub load_time: Duration,
}

/// The cache's state at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSnapshot {
    pub budget: usize,
    pub bytes: usize,
    /// Most recently used first.
    pub entries: Vec<EntryInfo>,
    pub stats: CacheStats,
}

#[derive(Debug)]
struct Inner {
    budget: usize,
    bytes: usize,
    clock: u64,
    entries: HashMap<String, Entry>,
    loading: HashSet<String>,
    stats: CacheStats,
}

/// The cache.
#[derive(Debug)]
pub struct VoiceCache {
    inner: Mutex<Inner>,
    loaded: Condvar,
}

impl VoiceCache {
    /// An empty cache holding at most `budget` bytes of voices.
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                budget,
                bytes: 0,
                clock: 0,
                entries: HashMap::new(),
                loading: HashSet::new(),
                stats: CacheStats::default(),
            }),
            loaded: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic in another thread cannot leave Inner half-updated (no user code runs under the
        // lock), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The voice for `key`, from the cache or from `load` (called at most once at a time per key:
    /// concurrent callers for the same key wait for that load).
    pub fn get_or_load(&self, key: &str, load: impl FnOnce() -> Result<Voice, VoiceError>) -> Result<Voice, VoiceError> {
        let mut inner = self.lock();
        let mut waited = false;
        loop {
            inner.clock += 1;
            let now = inner.clock;
            if let Some(e) = inner.entries.get_mut(key) {
                e.last_used = now;
                e.hits += 1;
                let voice = e.voice.clone();
                if waited { inner.stats.coalesced += 1 } else { inner.stats.hits += 1 }
                return Ok(voice);
            }
            if !inner.loading.contains(key) {
                break;
            }
            waited = true;
            inner = self.loaded.wait(inner).unwrap_or_else(|p| p.into_inner());
        }
        inner.stats.misses += 1;
        inner.loading.insert(key.to_string());
        drop(inner);

        let start = Instant::now();
        let result = load();
        let load_time = start.elapsed();

        let mut inner = self.lock();
        inner.loading.remove(key);
        match &result {
            Ok(voice) => {
                inner.stats.record_load(load_time);
                inner.insert(key, voice.clone(), load_time, false);
            }
            Err(_) => inner.stats.load_failures += 1,
        }
        drop(inner);
        self.loaded.notify_all();
        result
    }

    /// The cached voice for `key`, counted as a hit; `None`, counting nothing, when absent. With
    /// [`Self::insert_loaded`] it serves callers whose loads are async (the browser awaits
    /// IndexedDB and the network, which a synchronous `load` closure cannot).
    pub fn get(&self, key: &str) -> Option<Voice> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let e = inner.entries.get_mut(key)?;
        e.last_used = now;
        e.hits += 1;
        let voice = e.voice.clone();
        inner.stats.hits += 1;
        Some(voice)
    }

    /// Inserts a voice the caller loaded after a [`Self::get`] miss, counting the miss and the
    /// load as [`Self::get_or_load`] would; `pinned` keeps it through evictions.
    pub fn insert_loaded(&self, key: &str, voice: Voice, load_time: Duration, pinned: bool) {
        let mut inner = self.lock();
        inner.stats.misses += 1;
        inner.stats.record_load(load_time);
        if let Some(old) = inner.entries.remove(key) {
            inner.bytes -= old.bytes;
        }
        inner.insert(key, voice, load_time, pinned);
    }

    /// Drops `key` (pinned or not); true if it was cached. Counted as an eviction.
    pub fn remove(&self, key: &str) -> bool {
        let mut inner = self.lock();
        let present = inner.entries.contains_key(key);
        inner.remove(key);
        present
    }

    /// Marks a cached entry pinned without loading anything; false if it is not cached.
    pub fn pin_cached(&self, key: &str) -> bool {
        match self.lock().entries.get_mut(key) {
            Some(e) => {
                e.pinned = true;
                true
            }
            None => false,
        }
    }

    /// Keeps `key` (already cached, or loaded now) through evictions, unless the budget shrinks
    /// below the pinned voices.
    pub fn pin(&self, key: &str, load: impl FnOnce() -> Result<Voice, VoiceError>) -> Result<(), VoiceError> {
        self.get_or_load(key, load)?;
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get_mut(key) {
            e.pinned = true;
        }
        Ok(())
    }

    /// Lets a pinned entry be evicted again.
    pub fn unpin(&self, key: &str) {
        if let Some(e) = self.lock().entries.get_mut(key) {
            e.pinned = false;
        }
    }

    /// Changes the budget, evicting (least recently used first, unpinned before pinned) to fit.
    pub fn resize(&self, budget: usize) {
        let mut inner = self.lock();
        inner.budget = budget;
        inner.evict_to(budget);
    }

    /// Drops every unpinned entry.
    pub fn clear_unpinned(&self) {
        let mut inner = self.lock();
        let keys: Vec<String> = inner.entries.iter().filter(|(_, e)| !e.pinned).map(|(k, _)| k.clone()).collect();
        for k in keys {
            inner.remove(&k);
        }
    }

    /// Evicts unpinned entries, least recently used first, until at most `target` bytes remain
    /// (or only pinned ones).
    pub fn shrink_to(&self, target: usize) {
        let mut inner = self.lock();
        while inner.bytes > target {
            let Some(k) = inner.lru(false) else { break };
            inner.remove(&k);
        }
    }

    /// Loads `key` ahead of need if it is not cached, without counting a request (no hit, no
    /// miss) and as the least recently used entry, so a wrong guess is the first to go.
    pub fn prefetch(&self, key: &str, load: impl FnOnce() -> Result<Voice, VoiceError>) -> Result<(), VoiceError> {
        {
            let inner = self.lock();
            if inner.entries.contains_key(key) || inner.loading.contains(key) {
                return Ok(());
            }
        }
        let start = Instant::now();
        let voice = load()?;
        let mut inner = self.lock();
        if !inner.entries.contains_key(key) {
            inner.stats.prefetches += 1;
            inner.insert(key, voice, start.elapsed(), false);
            let oldest = inner.entries.values().map(|e| e.last_used).min().unwrap_or(0);
            if let Some(e) = inner.entries.get_mut(key) {
                e.last_used = oldest.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// Bytes the budget still has room for.
    pub fn free_bytes(&self) -> usize {
        let inner = self.lock();
        inner.budget.saturating_sub(inner.bytes)
    }

    /// Is `key` cached (without counting as a use)?
    pub fn contains(&self, key: &str) -> bool {
        self.lock().entries.contains_key(key)
    }

    /// The state of the cache now.
    pub fn snapshot(&self) -> CacheSnapshot {
        let inner = self.lock();
        let mut entries: Vec<(&String, &Entry)> = inner.entries.iter().collect();
        entries.sort_by_key(|(_, e)| std::cmp::Reverse(e.last_used));
        CacheSnapshot {
            budget: inner.budget,
            bytes: inner.bytes,
            entries: entries
                .into_iter()
                .map(|(k, e)| EntryInfo { key: k.clone(), bytes: e.bytes, pinned: e.pinned, hits: e.hits, load_time: e.load_time })
                .collect(),
            stats: inner.stats.clone(),
        }
    }
}

impl Inner {
    fn insert(&mut self, key: &str, voice: Voice, load_time: Duration, pinned: bool) {
        let bytes = voice.byte_size();
        if bytes > self.budget {
            self.stats.uncacheable += 1;
            return;
        }
        self.remove(key);
        // Room first: unpinned least recently used; pinned ones only if nothing else is left.
        while self.bytes + bytes > self.budget {
            match self.lru(false).or_else(|| self.lru(true)) {
                Some(k) => self.remove(&k),
                None => break,
            }
        }
        self.clock += 1;
        self.bytes += bytes;
        self.entries.insert(key.to_string(), Entry { voice, bytes, last_used: self.clock, pinned, hits: 0, load_time });
    }

    fn lru(&self, pinned: bool) -> Option<String> {
        self.entries.iter().filter(|(_, e)| e.pinned == pinned).min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone())
    }

    fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.bytes -= e.bytes;
            self.stats.evictions += 1;
        }
    }

    fn evict_to(&mut self, budget: usize) {
        while self.bytes > budget {
            match self.lru(false).or_else(|| self.lru(true)) {
                Some(k) => self.remove(&k),
                None => break,
            }
        }
    }
}
