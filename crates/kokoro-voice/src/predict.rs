//! Predictive loading: which voices will be asked for next, learned from [`UsageAnalytics`]
//! (voice-to-voice transitions, frequency by hour of day, overall frequency), and a background
//! [`Prefetcher`] with a priority queue (explicit requests before predictions) that cancels
//! predicted loads no longer worth it: superseded by a newer prediction, or too weak to evict
//! anything when the cache is full.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::analytics::{UsageAnalytics, hour_of};
use crate::{VOICE_LEN, Voice, VoiceCache, VoiceError};

/// Weights of the three signals in a prediction's score.
const TRANSITION: f64 = 0.5;
const HOUR: f64 = 0.3;
const OVERALL: f64 = 0.2;

/// Voices most likely to be requested next after `previous` at `hour` (UTC), best first, with a
/// score in [0, 1]; voices for which `skip` says true (already cached, say) are left out.
pub fn predict(
    analytics: &UsageAnalytics,
    previous: Option<&str>,
    hour: usize,
    k: usize,
    skip: impl Fn(&str) -> bool,
) -> Vec<(String, f64)> {
    let total: u64 = analytics.voices.values().map(|u| u.requests).sum();
    let hour_total: u64 = analytics.voices.values().map(|u| u.by_hour[hour % 24]).sum();
    let next = previous.and_then(|p| analytics.transitions.get(p));
    let next_total: u64 = next.map_or(0, |n| n.values().sum());
    let mut scored: Vec<(String, f64)> = analytics
        .voices
        .iter()
        .filter(|(name, _)| !skip(name))
        .map(|(name, u)| {
            let p_next = next.and_then(|n| n.get(name)).map_or(0.0, |&c| c as f64 / next_total.max(1) as f64);
            let p_hour = u.by_hour[hour % 24] as f64 / hour_total.max(1) as f64;
            let p_all = u.requests as f64 / total.max(1) as f64;
            (name.clone(), TRANSITION * p_next + HOUR * p_hour + OVERALL * p_all)
        })
        .filter(|(_, s)| *s > 0.0)
        .collect();
    scored.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

/// A deterministic request trace with daily patterns: `days` days of `per_day` requests over
/// `voices`. Each quarter of the day favours its own quarter of the voices, requests come in
/// sessions that mostly stay on one voice and sometimes switch to its partner (`i ^ 1`), and the
/// night is quieter than the day.
pub fn synthetic_trace(voices: &[String], days: u64, per_day: u64, seed: u64) -> Vec<(u64, String)> {
    let mut rng = XorShift(seed.max(1));
    let n = voices.len();
    let start: u64 = 1_700_006_400; // a midnight, UTC (a multiple of 86,400)
    let mut trace = Vec::new();
    for day in 0..days {
        let mut times: Vec<u64> = (0..per_day)
            .map(|_| loop {
                let t = rng.below(86_400);
                // Daytime (7-22 h) three times as busy as the night.
                if (7..22).contains(&(t / 3600)) || rng.below(3) == 0 {
                    break t;
                }
            })
            .collect();
        times.sort();
        let mut current: Option<usize> = None;
        for t in times {
            let hour = (t / 3600) as usize;
            let voice = match current {
                Some(v) if rng.below(100) < 70 => v,
                Some(v) if rng.below(100) < 50 => (v ^ 1).min(n - 1),
                _ => {
                    let quarter = hour / 6;
                    if rng.below(100) < 75 {
                        let group = (n / 4).max(1);
                        (quarter * group + rng.below(group as u64) as usize).min(n - 1)
                    } else {
                        rng.below(n as u64) as usize
                    }
                }
            };
            current = Some(voice);
            trace.push((start + day * 86_400 + t, voices[voice].clone()));
        }
    }
    trace
}

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// What a replay measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayResult {
    pub requests: u64,
    pub hits: u64,
    pub prefetch_loads: u64,
    pub prefetch_cancelled: u64,
}

impl ReplayResult {
    pub fn hit_rate(&self) -> f64 {
        self.hits as f64 / self.requests.max(1) as f64
    }
}

/// Replays `trace` through a [`VoiceCache`] of `capacity` voices, learning analytics online. After
/// each request, the `prefetch` best predictions not cached are loaded too, except under budget
/// pressure (cache full) where a prediction must score at least `min_score_when_full`.
pub fn replay(trace: &[(u64, String)], capacity: usize, prefetch: usize, min_score_when_full: f64) -> ReplayResult {
    let cache = VoiceCache::new(capacity * crate::VOICE_BIN_BYTES);
    let voice = Voice::from_values(vec![0.0; VOICE_LEN], "replay").unwrap();
    let mut analytics = UsageAnalytics::default();
    let mut result = ReplayResult { requests: 0, hits: 0, prefetch_loads: 0, prefetch_cancelled: 0 };
    for (t, name) in trace {
        result.requests += 1;
        result.hits += u64::from(cache.contains(name));
        cache.get_or_load(name, || Ok(voice.clone())).unwrap();
        analytics.record_request(name, *t);
        if prefetch == 0 {
            continue;
        }
        for (guess, score) in predict(&analytics, Some(name), hour_of(*t), prefetch, |v| cache.contains(v)) {
            if cache.free_bytes() < crate::VOICE_BIN_BYTES && score < min_score_when_full {
                result.prefetch_cancelled += 1;
                continue;
            }
            cache.prefetch(&guess, || Ok(voice.clone())).unwrap();
            result.prefetch_loads += 1;
        }
    }
    result
}

/// Why a job is queued: explicit requests come before predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Predicted,
    Explicit,
}

#[derive(Debug)]
struct Job {
    priority: Priority,
    score: f64,
    seq: u64,
    generation: u64,
    key: String,
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Job {
    fn cmp(&self, other: &Self) -> Ordering {
        // Max-heap: explicit first, then the higher score, then the older job.
        self.priority
            .cmp(&other.priority)
            .then(self.score.partial_cmp(&other.score).unwrap_or(Ordering::Equal))
            .then(other.seq.cmp(&self.seq))
    }
}

/// Counters of a [`Prefetcher`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefetchStats {
    pub explicit_loads: u64,
    pub predicted_loads: u64,
    /// Predicted loads dropped because a newer prediction replaced them.
    pub superseded: u64,
    /// Predicted loads dropped because the cache was full and the prediction too weak.
    pub under_pressure: u64,
    pub failures: u64,
}

struct State {
    queue: BinaryHeap<Job>,
    generation: u64,
    seq: u64,
    busy: bool,
    shutdown: bool,
    stats: PrefetchStats,
    /// Keys loaded, in order (for inspection and tests).
    log: Vec<String>,
}

type Loader = dyn Fn(&str) -> Result<Voice, VoiceError> + Send + Sync;

/// A background loader: one thread taking jobs from a priority queue into a [`VoiceCache`].
pub struct Prefetcher {
    shared: Arc<(Mutex<State>, Condvar)>,
    worker: Option<JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts the loader thread. Under budget pressure (less free room than a voice), predictions
    /// scoring below `min_score_when_full` are dropped.
    pub fn start(cache: Arc<VoiceCache>, load: Arc<Loader>, min_score_when_full: f64) -> Self {
        let shared = Arc::new((
            Mutex::new(State {
                queue: BinaryHeap::new(),
                generation: 0,
                seq: 0,
                busy: false,
                shutdown: false,
                stats: PrefetchStats::default(),
                log: Vec::new(),
            }),
            Condvar::new(),
        ));
        let worker_shared = shared.clone();
        let worker = std::thread::spawn(move || {
            let (lock, cv) = &*worker_shared;
            loop {
                let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
                let job = loop {
                    if state.shutdown {
                        return;
                    }
                    if let Some(job) = state.queue.pop() {
                        break job;
                    }
                    state.busy = false;
                    cv.notify_all();
                    state = cv.wait(state).unwrap_or_else(|p| p.into_inner());
                };
                if job.priority == Priority::Predicted {
                    if job.generation < state.generation {
                        state.stats.superseded += 1;
                        continue;
                    }
                    if cache.free_bytes() < crate::VOICE_BIN_BYTES && job.score < min_score_when_full {
                        state.stats.under_pressure += 1;
                        continue;
                    }
                }
                state.busy = true;
                drop(state);
                let result = if job.priority == Priority::Explicit {
                    cache.get_or_load(&job.key, || load(&job.key)).map(|_| ())
                } else {
                    cache.prefetch(&job.key, || load(&job.key))
                };
                let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
                match (result, job.priority) {
                    (Err(_), _) => state.stats.failures += 1,
                    (Ok(()), Priority::Explicit) => state.stats.explicit_loads += 1,
                    (Ok(()), Priority::Predicted) => state.stats.predicted_loads += 1,
                }
                state.log.push(job.key);
            }
        });
        Self { shared, worker: Some(worker) }
    }

    fn push(&self, key: &str, priority: Priority, score: f64, new_generation: bool) {
        let (lock, cv) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        if new_generation {
            state.generation += 1;
        }
        state.seq += 1;
        let job = Job { priority, score, seq: state.seq, generation: state.generation, key: key.to_string() };
        state.queue.push(job);
        state.busy = true;
        cv.notify_all();
    }

    /// Queues a voice someone asked for: before any prediction.
    pub fn request(&self, key: &str) {
        self.push(key, Priority::Explicit, f64::INFINITY, false);
    }

    /// Queues predictions, replacing (cancelling) every earlier prediction still queued.
    pub fn predict(&self, predictions: &[(String, f64)]) {
        let (lock, _) = &*self.shared;
        lock.lock().unwrap_or_else(|p| p.into_inner()).generation += 1;
        for (key, score) in predictions {
            self.push(key, Priority::Predicted, *score, false);
        }
    }

    /// Waits until the queue is empty and nothing is loading.
    pub fn wait_idle(&self) {
        let (lock, cv) = &*self.shared;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        while state.busy || !state.queue.is_empty() {
            state = cv.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub fn stats(&self) -> PrefetchStats {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner()).stats.clone()
    }

    /// Keys loaded so far, in order.
    pub fn log(&self) -> Vec<String> {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner()).log.clone()
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        let (lock, cv) = &*self.shared;
        lock.lock().unwrap_or_else(|p| p.into_inner()).shutdown = true;
        cv.notify_all();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
