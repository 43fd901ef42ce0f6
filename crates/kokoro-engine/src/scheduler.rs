//! Many requests on one engine: a priority queue of chunks with aging, batches of similar
//! length, streams delivered in order, cancellation, deadlines and bounded memory.
//!
//! ```text
//! submit(Request) ── voice resolved, first chunk phonemized (errors come back here, at once)
//!      │                 refused with Overloaded{retry_after} when the queue or held audio is full
//!      v
//! queue of chunks ── by class, then first chunks, then by arrival; a class unserved for
//!      │             `aging` rises one rank
//!      │             each request keeps at most `lookahead` chunks queued: a book is phonemized
//!      │             as it is spoken, and a long text interleaves with short requests
//!      v
//! worker (one per device) ── head chunk + up to max_batch−1 of similar length, waiting at most
//!      │                     max_wait for company ── Engine::synthesize_batch
//!      v
//! Stream (per request) ── chunks in order; progress; cancel or drop frees the queue at once
//! ```
//!
//! Native only (threads). In the browser the worker's message queue is the scheduler.

use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kokoro_model::{SourceNoise, StageTimings};
use kokoro_text::ChunkOptions;
use kokoro_voice::{Voice, VoiceStore};
use serde::{Deserialize, Serialize};

use crate::response_cache::{ResponseCache, ResponseKey};
use crate::{BatchItem, Engine, EngineError, Plan, SpokenChunk, Utterance};

/// How urgent a request is. Lower classes wait; aging lifts them (see [`SchedulerConfig::aging`]).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// A person is waiting for the first audio.
    Interactive,
    #[default]
    Default,
    /// Batch jobs: throughput over latency.
    Bulk,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Interactive, Priority::Default, Priority::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interactive => "interactive",
            Self::Default => "default",
            Self::Bulk => "bulk",
        }
    }

    fn rank(self) -> u32 {
        self as u32
    }
}

impl std::str::FromStr for Priority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "interactive" | "high" => Ok(Self::Interactive),
            "default" | "normal" => Ok(Self::Default),
            "bulk" | "low" | "batch" => Ok(Self::Bulk),
            _ => Err(format!("unknown priority {s:?}: use interactive, default or bulk")),
        }
    }
}

/// What to speak: text (chunked by the engine) or phonemes (one chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Text(Arc<str>),
    Phonemes(Arc<str>),
}

/// One request to the scheduler.
#[derive(Debug, Clone)]
pub struct Request {
    pub input: Input,
    /// A voice name or mix (`af_bella(2)+af_sky(1)`).
    pub voice: String,
    /// `en-us` or `en-gb`; `None` reads in the voice's dialect.
    pub lang: Option<String>,
    pub speed: f32,
    pub noise: SourceNoise,
    pub priority: Priority,
    /// Past this instant the request fails with [`EngineError::Timeout`].
    pub deadline: Option<Instant>,
    pub chunking: ChunkOptions,
}

impl Request {
    /// Text in `voice` at speed 1, deterministic, default priority, no deadline.
    pub fn text(text: impl Into<Arc<str>>, voice: impl Into<String>) -> Self {
        Self {
            input: Input::Text(text.into()),
            voice: voice.into(),
            lang: None,
            speed: 1.0,
            noise: SourceNoise::Deterministic,
            priority: Priority::Default,
            deadline: None,
            chunking: ChunkOptions::default(),
        }
    }

    /// Phonemes in `voice`, as [`text`](Self::text) otherwise.
    pub fn phonemes(phonemes: impl Into<Arc<str>>, voice: impl Into<String>) -> Self {
        Self { input: Input::Phonemes(phonemes.into()), ..Self::text("", voice) }
    }

    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    pub fn speed(mut self, speed: f32) -> Self {
        self.speed = speed;
        self
    }

    pub fn noise(mut self, noise: SourceNoise) -> Self {
        self.noise = noise;
        self
    }

    pub fn lang(mut self, lang: impl Into<String>) -> Self {
        self.lang = Some(lang.into());
        self
    }

    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    pub fn chunking(mut self, chunking: ChunkOptions) -> Self {
        self.chunking = chunking;
        self
    }

    fn input_len(&self) -> usize {
        match &self.input {
            Input::Text(t) | Input::Phonemes(t) => t.len(),
        }
    }
}

/// How the scheduler trades latency, throughput and memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Most chunks in one forward pass (where batching is on).
    pub max_batch: usize,
    /// Whether chunks share forward passes: by default where it pays ([`Engine::batching_pays`]).
    pub batching: Batching,
    /// Longest a chunk waits for company before its batch runs short (milliseconds).
    #[serde(with = "millis")]
    #[cfg_attr(feature = "schema", schemars(with = "u64"))]
    pub max_wait: Duration,
    /// A class not served for this long rises one rank: bulk work waits at most two of these
    /// behind a stream of interactive requests (milliseconds).
    #[serde(with = "millis")]
    #[cfg_attr(feature = "schema", schemars(with = "u64"))]
    pub aging: Duration,
    /// Off: first come, first served (the benchmark's baseline).
    pub priorities: bool,
    /// Within a class, a request's first chunk goes before the later chunks of requests already
    /// speaking: a new request's first audio waits for the pass in flight, not for every other
    /// request's queued chunks (measured in docs/server.md, "Under load"). The later chunks
    /// still come in order of arrival; the bounded number of open requests keeps them from
    /// starving.
    pub first_chunk_first: bool,
    /// Worker threads, each running batches on the one engine (one per device).
    pub workers: usize,
    /// Most chunks waiting in the queue; a submission beyond it is refused.
    pub max_queued_chunks: usize,
    /// Most requests open at once.
    pub max_requests: usize,
    /// Most bytes of finished audio not yet taken by their streams; a submission beyond it is refused.
    pub max_held_audio_bytes: usize,
    /// A request whose stream lags by this many bytes of audio is not planned further until it
    /// catches up (a slow reader holds at most this, plus its chunks already queued).
    pub max_request_audio_bytes: usize,
    /// Chunks phonemized ahead per request.
    pub lookahead: usize,
    /// Byte budget of the response cache (0: no cache).
    pub response_cache_bytes: usize,
    /// Arithmetic of the generator's resblock convolutions on the CPU backend: `f32` (the
    /// reference) or `int8` (AVX512_VNNI: about 1.5 times faster end to end, log-mel distance
    /// ~0.06 from the float reference against ~0.02, WER unchanged; docs/validation.md). One
    /// setting per process: the server applies it at start.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub precision: kokoro_model::ComputePrecision,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_batch: 8,
            batching: Batching::Auto,
            max_wait: Duration::from_millis(10),
            aging: Duration::from_secs(5),
            priorities: true,
            first_chunk_first: true,
            workers: 1,
            max_queued_chunks: 512,
            max_requests: 1024,
            max_held_audio_bytes: 512 << 20,
            max_request_audio_bytes: 32 << 20,
            lookahead: 2,
            response_cache_bytes: 64 << 20,
            precision: kokoro_model::ComputePrecision::F32,
        }
    }
}

/// Whether the scheduler runs several chunks in one forward pass.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Batching {
    /// On where one batched pass beats separate ones ([`Engine::batching_pays`]: GPU backends),
    /// off on the CPU, where a batch only adds padding to compute-bound work.
    #[default]
    Auto,
    /// Up to `max_batch` chunks of similar length per pass, whatever the backend.
    On,
    /// One chunk per pass.
    Off,
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    pub chunks_done: usize,
    /// Known once the whole text is phonemized.
    pub chunks_total: Option<usize>,
    /// Bytes of the input spoken so far, and in all.
    pub input_done: usize,
    pub input_total: usize,
    pub audio_seconds: f64,
    pub elapsed: Duration,
    /// From this request's measured rate once a chunk is done, else the scheduler's.
    pub eta: Option<Duration>,
    pub finished: bool,
}

/// Counters and queue depths at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SchedulerStats {
    pub submitted: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub timed_out: u64,
    /// Refused with [`EngineError::Overloaded`].
    pub rejected: u64,
    /// Served from the response cache.
    pub cache_hits: u64,
    pub chunks: u64,
    pub batches: u64,
    pub audio_seconds: f64,
    /// Wall time the workers spent in forward passes.
    pub busy: Duration,
    /// Chunks queued, by [`Priority::ALL`] order.
    pub queued: [usize; 3],
    pub in_flight: usize,
    pub open_requests: usize,
    pub held_audio_bytes: usize,
}

/// What a worker reports after each forward pass.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    /// Chunks in the pass.
    pub size: usize,
    /// Wall time of the pass.
    pub wall: Duration,
    /// Each chunk's priority and how long it waited in the queue.
    pub waits: Vec<(Priority, Duration)>,
    /// The pass's model stages (those of its first chunk spoken: a batch's chunks share them).
    pub stages: StageTimings,
    /// Audio made, and chunks that failed.
    pub audio_seconds: f64,
    pub failed: usize,
}

/// Told what the scheduler does as it does it, for metrics and stage breakdowns (the server's
/// Prometheus histograms need each observation, not the totals [`SchedulerStats`] keeps).
/// Called on the worker and submitting threads, outside the scheduler's lock: keep it quick.
pub trait SchedulerObserver: Send + Sync {
    /// After each forward pass.
    fn batch(&self, report: &BatchReport);
    /// After a stretch of G2P that produced `chunks` chunks (or failed).
    fn text(&self, elapsed: Duration, chunks: usize);
}

enum Event {
    Chunk(SpokenChunk),
    Failed(EngineError),
    Done,
}

/// A queued chunk.
struct Queued {
    request: u64,
    utterance: Utterance,
    /// Phoneme characters: what "similar length" compares.
    len: usize,
    priority: Priority,
    enqueued: Instant,
    seq: u64,
    /// The request's first chunk (its time to first audio waits on it).
    first: bool,
}

/// An open request.
struct Active {
    voice: Voice,
    speed: f32,
    noise: SourceNoise,
    priority: Priority,
    deadline: Option<Instant>,
    /// `None` while a worker phonemizes its next chunks, or once it is exhausted.
    plan: Option<Plan>,
    planned_all: bool,
    planned: usize,
    queued: usize,
    in_flight: usize,
    /// Finished chunks waiting for an earlier one (batches and workers may finish out of order).
    reorder: BTreeMap<usize, SpokenChunk>,
    next_to_send: usize,
    tx: Sender<Event>,
    /// Bytes sent but not yet received by the stream.
    held: Arc<AtomicUsize>,
    progress: Arc<Mutex<ProgressState>>,
    /// Kept for the response cache when the request is reproducible.
    cache: Option<(ResponseKey, Vec<SpokenChunk>)>,
}

impl Active {
    fn finished(&self) -> bool {
        self.planned_all && self.queued == 0 && self.in_flight == 0 && self.reorder.is_empty()
    }
}

#[derive(Debug)]
struct ProgressState {
    submitted: Instant,
    chunks_done: usize,
    chunks_total: Option<usize>,
    input_done: usize,
    input_total: usize,
    audio_seconds: f64,
    finished: Option<Instant>,
}

struct State {
    requests: HashMap<u64, Active>,
    queue: Vec<Queued>,
    in_flight: usize,
    next_id: u64,
    next_seq: u64,
    /// Workers currently phonemizing (the queue may grow when they are back).
    planning: usize,
    /// When each priority class last got a batch, or last had nothing queued (see `pick`).
    last_served: [Instant; 3],
    shutdown: bool,
    stats: SchedulerStats,
}

struct Shared<S> {
    engine: Arc<Engine<S>>,
    config: SchedulerConfig,
    state: Mutex<State>,
    wake: Condvar,
    held: AtomicUsize,
    /// EWMA of a forward pass's wall seconds per chunk and per input byte (f64 bits).
    secs_per_chunk: AtomicU64,
    secs_per_byte: AtomicU64,
    cache: ResponseCache,
    observer: Option<Arc<dyn SchedulerObserver>>,
}

/// Many requests on one engine. Dropping it finishes the work in flight, fails what is queued
/// with [`EngineError::ShuttingDown`] and joins the workers.
pub struct Scheduler<S: VoiceStore + Send + Sync + 'static> {
    shared: Arc<Shared<S>>,
    workers: Vec<JoinHandle<()>>,
}

impl<S: VoiceStore + Send + Sync + 'static> Scheduler<S> {
    /// Starts `config.workers` worker threads on `engine`.
    pub fn new(engine: Arc<Engine<S>>, config: SchedulerConfig) -> Self {
        Self::start(engine, config, None)
    }

    /// [`new`](Self::new), reporting each forward pass and each stretch of G2P to `observer`.
    pub fn with_observer(engine: Arc<Engine<S>>, config: SchedulerConfig, observer: Arc<dyn SchedulerObserver>) -> Self {
        Self::start(engine, config, Some(observer))
    }

    fn start(engine: Arc<Engine<S>>, config: SchedulerConfig, observer: Option<Arc<dyn SchedulerObserver>>) -> Self {
        let config = SchedulerConfig {
            max_batch: config.max_batch.max(1),
            workers: config.workers.max(1),
            lookahead: config.lookahead.max(1),
            ..config
        };
        let shared = Arc::new(Shared {
            cache: ResponseCache::new(config.response_cache_bytes),
            engine,
            config,
            state: Mutex::new(State {
                requests: HashMap::new(),
                queue: Vec::new(),
                in_flight: 0,
                next_id: 0,
                next_seq: 0,
                planning: 0,
                last_served: [Instant::now(); 3],
                shutdown: false,
                stats: SchedulerStats::default(),
            }),
            wake: Condvar::new(),
            held: AtomicUsize::new(0),
            secs_per_chunk: AtomicU64::new(0f64.to_bits()),
            secs_per_byte: AtomicU64::new(0f64.to_bits()),
            observer,
        });
        let workers = (0..shared.config.workers)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("kokoro-worker-{i}"))
                    .spawn(move || shared.work())
                    .expect("spawning a worker thread")
            })
            .collect();
        Self { shared, workers }
    }

    pub fn engine(&self) -> &Arc<Engine<S>> {
        &self.shared.engine
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.shared.config
    }

    pub fn response_cache(&self) -> &ResponseCache {
        &self.shared.cache
    }

    /// Queues a request. Returns at once: with its stream, or with the error that stops it before
    /// any audio (unknown voice, nothing to say, bad speed, [`EngineError::Overloaded`]). The
    /// calling thread resolves the voice and phonemizes the first chunk.
    pub fn submit(&self, request: Request) -> Result<Stream, EngineError> {
        self.shared.submit(request)
    }

    /// Queue depths and counters.
    pub fn stats(&self) -> SchedulerStats {
        let state = self.shared.lock();
        let mut stats = state.stats.clone();
        for q in &state.queue {
            stats.queued[q.priority.rank() as usize] += 1;
        }
        stats.in_flight = state.in_flight;
        stats.open_requests = state.requests.len();
        stats.held_audio_bytes = self.shared.held.load(Ordering::Relaxed);
        stats
    }

    /// Stops taking work, lets the batches in flight finish, fails the rest, joins the workers.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.shutdown = true;
        }
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<S: VoiceStore + Send + Sync + 'static> Drop for Scheduler<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<S: VoiceStore + Send + Sync + 'static> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn submit(self: &Arc<Self>, request: Request) -> Result<Stream, EngineError> {
        let c = &self.config;
        {
            let mut state = self.lock();
            if state.shutdown {
                return Err(EngineError::ShuttingDown);
            }
            let held = self.held.load(Ordering::Relaxed);
            if state.requests.len() >= c.max_requests || state.queue.len() >= c.max_queued_chunks || held >= c.max_held_audio_bytes {
                state.stats.rejected += 1;
                let retry_after = self.retry_after(&state);
                return Err(EngineError::Overloaded { retry_after });
            }
        }
        if !(crate::MIN_SPEED..=crate::MAX_SPEED).contains(&request.speed) {
            return Err(kokoro_model::Error::BadSpeed(request.speed).into());
        }
        if request.deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(EngineError::Timeout);
        }
        let engine = &self.engine;
        let dialect = engine.dialect(request.lang.as_deref(), &request.voice)?;
        // Natively the stores are synchronous underneath; block_on only drives the future.
        let voice = pollster::block_on(engine.voice(&request.voice))?;
        let key = match request.noise {
            // Seeded noise is drawn from the device's RNG: reproducible only when one worker owns it.
            SourceNoise::Seeded(_) if c.workers > 1 => None,
            _ if c.response_cache_bytes == 0 => None,
            _ => {
                let (input, phonemes) = match &request.input {
                    Input::Text(t) => (t.clone(), false),
                    Input::Phonemes(p) => (p.clone(), true),
                };
                Some(ResponseKey::new(
                    engine.weights_id(),
                    engine.voice_key(&request.voice)?,
                    input,
                    phonemes,
                    dialect,
                    request.speed,
                    request.noise,
                    request.chunking,
                ))
            }
        };
        let (tx, rx) = mpsc::channel();
        let input_total = request.input_len();
        let progress = Arc::new(Mutex::new(ProgressState {
            submitted: Instant::now(),
            chunks_done: 0,
            chunks_total: None,
            input_done: 0,
            input_total,
            audio_seconds: 0.0,
            finished: None,
        }));
        let held = Arc::new(AtomicUsize::new(0));

        if let Some(chunks) = key.as_ref().and_then(|k| self.cache.get(k)) {
            let mut p = progress.lock().unwrap_or_else(PoisonError::into_inner);
            for chunk in chunks.iter() {
                p.chunks_done += 1;
                p.audio_seconds += chunk.seconds();
                let chunk = SpokenChunk { queue_wait: Duration::ZERO, from_cache: true, ..chunk.clone() };
                let _ = tx.send(Event::Chunk(chunk));
            }
            p.chunks_total = Some(chunks.len());
            p.input_done = input_total;
            p.finished = Some(Instant::now());
            drop(p);
            let _ = tx.send(Event::Done);
            let mut state = self.lock();
            state.stats.submitted += 1;
            state.stats.cache_hits += 1;
            state.stats.completed += 1;
            let id = state.next_id;
            state.next_id += 1;
            // Cached audio is not counted as held: it is shared with the cache already.
            return Ok(Stream::new(id, rx, self.clone(), Arc::new(AtomicUsize::new(0)), progress, request.deadline, false));
        }

        let mut plan = match &request.input {
            Input::Text(t) => engine.plan(t.clone(), dialect, request.chunking)?,
            Input::Phonemes(p) => engine.plan_phonemes(p.to_string()),
        };
        let g2p = Instant::now();
        let first = plan.next();
        if let Some(o) = &self.observer {
            o.text(g2p.elapsed(), usize::from(matches!(first, Some(Ok(_)))));
        }
        let first = first.ok_or(EngineError::NothingToSay)??;

        let mut state = self.lock();
        if state.shutdown {
            return Err(EngineError::ShuttingDown);
        }
        // Checked again now that the lock is held: submissions racing past the first check
        // cannot take the queue over its bounds.
        if state.requests.len() >= c.max_requests || state.queue.len() >= c.max_queued_chunks {
            state.stats.rejected += 1;
            let retry_after = self.retry_after(&state);
            return Err(EngineError::Overloaded { retry_after });
        }
        let id = state.next_id;
        state.next_id += 1;
        state.stats.submitted += 1;
        let seq = state.next_seq;
        state.next_seq += 1;
        state.queue.push(Queued { request: id, len: first.phonemes.chars().count(), utterance: first, priority: request.priority, enqueued: Instant::now(), seq, first: true });
        state.requests.insert(
            id,
            Active {
                voice,
                speed: request.speed,
                noise: request.noise,
                priority: request.priority,
                deadline: request.deadline,
                plan: Some(plan),
                planned_all: false,
                planned: 1,
                queued: 1,
                in_flight: 0,
                reorder: BTreeMap::new(),
                next_to_send: 0,
                tx,
                held: held.clone(),
                progress: progress.clone(),
                cache: key.map(|k| (k, Vec::new())),
            },
        );
        drop(state);
        self.wake.notify_all();
        Ok(Stream::new(id, rx, self.clone(), held, progress, request.deadline, true))
    }

    /// When to come back: the queued work at the measured rate, 1 to 60 seconds.
    fn retry_after(&self, state: &State) -> Duration {
        let per_chunk = f64::from_bits(self.secs_per_chunk.load(Ordering::Relaxed));
        let per_chunk = if per_chunk > 0.0 { per_chunk } else { 1.0 };
        let secs = (state.queue.len() + state.in_flight) as f64 * per_chunk / self.config.workers as f64;
        Duration::from_secs_f64(secs.clamp(1.0, 60.0).ceil())
    }

    /// Fails a request: its stream gets `error`, its queued chunks leave the queue.
    fn fail(&self, state: &mut State, id: u64, error: EngineError) {
        let Some(active) = state.requests.remove(&id) else { return };
        state.queue.retain(|q| q.request != id);
        match error {
            EngineError::Timeout => state.stats.timed_out += 1,
            EngineError::Cancelled => state.stats.cancelled += 1,
            _ => state.stats.failed += 1,
        }
        let _ = active.tx.send(Event::Failed(error));
    }

    /// Removes a request whose stream was cancelled or dropped; the chunk in flight finishes and
    /// is thrown away.
    fn cancel_request(&self, id: u64, timed_out: bool) {
        let mut state = self.lock();
        if let Some(active) = state.requests.remove(&id) {
            state.queue.retain(|q| q.request != id);
            if timed_out {
                state.stats.timed_out += 1;
            } else {
                state.stats.cancelled += 1;
            }
            drop(active);
        }
        drop(state);
        self.wake.notify_all();
    }

    /// The worker loop: plan ahead, pick a batch, run it, deliver.
    fn work(self: Arc<Self>) {
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            let expired: Vec<u64> = state.requests.iter().filter(|(_, a)| a.deadline.is_some_and(|d| d <= now)).map(|(id, _)| *id).collect();
            for id in expired {
                self.fail(&mut state, id, EngineError::Timeout);
            }
            if state.shutdown {
                // Requests with nothing in flight end now; the others after their chunk in flight.
                let idle: Vec<u64> = state.requests.iter().filter(|(_, a)| a.in_flight == 0).map(|(id, _)| *id).collect();
                for id in idle {
                    self.fail(&mut state, id, EngineError::ShuttingDown);
                }
                if state.requests.is_empty() {
                    return;
                }
                state = self.wake.wait_timeout(state, Duration::from_millis(50)).unwrap_or_else(PoisonError::into_inner).0;
                continue;
            }
            state = self.plan_ahead(state);
            match self.pick(&mut state, now) {
                Pick::Batch(batch) => {
                    state = self.run(state, batch);
                }
                Pick::Wait(timeout) => {
                    state = self.wake.wait_timeout(state, timeout).unwrap_or_else(PoisonError::into_inner).0;
                }
            }
        }
    }

    /// Phonemizes the next chunks of requests that have fewer than `lookahead` queued, outside
    /// the lock (one sentence of G2P each).
    fn plan_ahead<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let c = &self.config;
        let mut plans = Vec::new();
        for (id, a) in state.requests.iter_mut() {
            if a.plan.is_some() && a.queued < c.lookahead && a.held.load(Ordering::Relaxed) < c.max_request_audio_bytes {
                plans.push((*id, a.plan.take().expect("checked"), c.lookahead - a.queued, a.priority));
            }
        }
        if plans.is_empty() {
            return state;
        }
        state.planning += 1;
        drop(state);
        let mut planned = Vec::new();
        let g2p = Instant::now();
        let mut chunks = 0;
        for (id, mut plan, want, priority) in plans {
            let mut got = Vec::new();
            let mut end = None;
            for _ in 0..want {
                match plan.next() {
                    Some(Ok(u)) => got.push(u),
                    Some(Err(e)) => {
                        end = Some(Err(e));
                        break;
                    }
                    None => {
                        end = Some(Ok(()));
                        break;
                    }
                }
            }
            chunks += got.len();
            planned.push((id, plan, got, end, priority));
        }
        if let Some(o) = &self.observer {
            o.text(g2p.elapsed(), chunks);
        }
        let mut state = self.lock();
        state.planning -= 1;
        for (id, plan, got, end, priority) in planned {
            if !state.requests.contains_key(&id) {
                continue; // cancelled meanwhile
            }
            for utterance in got {
                let seq = state.next_seq;
                state.next_seq += 1;
                state.queue.push(Queued { request: id, len: utterance.phonemes.chars().count(), utterance, priority, enqueued: Instant::now(), seq, first: false });
                let a = state.requests.get_mut(&id).expect("checked");
                a.queued += 1;
                a.planned += 1;
            }
            match end {
                Some(Err(e)) => self.fail(&mut state, id, e),
                Some(Ok(())) => {
                    let a = state.requests.get_mut(&id).expect("checked");
                    a.planned_all = true;
                    a.progress.lock().unwrap_or_else(PoisonError::into_inner).chunks_total = Some(a.planned);
                    if a.finished() {
                        self.complete(&mut state, id);
                    }
                }
                None => state.requests.get_mut(&id).expect("checked").plan = Some(plan),
            }
        }
        state
    }

    /// The next batch: the best-scored chunk and up to `max_batch - 1` more of similar length,
    /// or how long to wait (for work, or for company within `max_wait`).
    fn pick(&self, state: &mut State, now: Instant) -> Pick {
        let c = &self.config;
        // A batch that does not pay only delays the urgent chunk at its head.
        let batching = match c.batching {
            Batching::Auto => self.engine.batching_pays(),
            Batching::On => true,
            Batching::Off => false,
        };
        let max_batch = if batching { c.max_batch } else { 1 };
        if state.queue.is_empty() {
            // Nothing to do: sleep until woken; wake now and then for deadlines.
            return Pick::Wait(Duration::from_millis(100));
        }
        // Aging by class: a class that has waited `aging` without being served rises one rank
        // (bulk reaches interactive after two), gets one batch, and drops back. A class with
        // nothing queued is not waiting. So a fresh interactive chunk goes before a backlog of
        // bulk work, and bulk still gets a batch at least every two agings under any load.
        // (Aging each chunk by its own wait instead let a long bulk backlog, all of it aged,
        // outrank every interactive request: measured, time to first audio p50 51 s.)
        let mut queued = [false; 3];
        for q in &state.queue {
            queued[q.priority.rank() as usize] = true;
        }
        for (served, queued) in state.last_served.iter_mut().zip(queued) {
            if !queued {
                *served = now;
            }
        }
        let aging = c.aging.max(Duration::from_millis(1));
        let rank = |p: Priority| {
            if !c.priorities {
                return 0;
            }
            let lifted = (now.duration_since(state.last_served[p.rank() as usize]).as_nanos() / aging.as_nanos()) as u32;
            p.rank().saturating_sub(lifted)
        };
        let mut order: Vec<usize> = (0..state.queue.len()).collect();
        order.sort_by_key(|&i| {
            let q = &state.queue[i];
            (rank(q.priority), !(c.first_chunk_first && q.first), q.enqueued, q.seq)
        });
        let head = &state.queue[order[0]];
        let (lo, hi) = (head.len * 2 / 3, head.len * 3 / 2 + 1);
        let mut chosen: Vec<usize> = vec![order[0]];
        for &i in &order[1..] {
            if chosen.len() == max_batch {
                break;
            }
            if (lo..=hi).contains(&state.queue[i].len) {
                chosen.push(i);
            }
        }
        let waited = now.duration_since(head.enqueued);
        if chosen.len() < max_batch && waited < c.max_wait {
            return Pick::Wait(c.max_wait - waited);
        }
        chosen.sort_unstable_by(|a, b| b.cmp(a)); // remove from the back first
        let mut batch: Vec<Queued> = chosen.into_iter().map(|i| state.queue.swap_remove(i)).collect();
        batch.sort_by_key(|q| q.seq);
        for q in &batch {
            state.last_served[q.priority.rank() as usize] = now;
        }
        for q in &batch {
            let a = state.requests.get_mut(&q.request).expect("queued chunks belong to open requests");
            a.queued -= 1;
            a.in_flight += 1;
        }
        state.in_flight += batch.len();
        Pick::Batch(batch)
    }

    /// Runs one batch outside the lock and delivers its chunks.
    fn run<'a>(&'a self, state: MutexGuard<'a, State>, batch: Vec<Queued>) -> MutexGuard<'a, State> {
        let items: Vec<(Voice, f32, SourceNoise)> = batch
            .iter()
            .map(|q| {
                let a = &state.requests[&q.request];
                (a.voice.clone(), a.speed, a.noise)
            })
            .collect();
        drop(state);
        let start = Instant::now();
        let batch_items: Vec<BatchItem<'_>> = batch
            .iter()
            .zip(&items)
            .map(|(q, (voice, speed, noise))| BatchItem { utterance: &q.utterance, voice, speed: *speed, noise: *noise })
            .collect();
        // A panic in the model must not take the worker (and every later request) with it.
        let results = catch_unwind(AssertUnwindSafe(|| self.engine.synthesize_batch(&batch_items))).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic")
                .to_string();
            batch_items.iter().map(|_| Err(EngineError::Model(kokoro_model::Error::Device(format!("synthesis panicked: {message}"))))).collect()
        });
        let wall = start.elapsed();
        let bytes: usize = batch.iter().map(|q| q.utterance.source.as_ref().map_or(q.utterance.phonemes.len(), |s| s.len())).sum();
        self.observe(wall, batch.len(), bytes);
        drop(batch_items);
        if let Some(o) = &self.observer {
            let spoken = results.iter().filter_map(|r| r.as_ref().ok());
            o.batch(&BatchReport {
                size: batch.len(),
                wall,
                waits: batch.iter().map(|q| (q.priority, start.saturating_duration_since(q.enqueued))).collect(),
                stages: results.iter().find_map(|r| r.as_ref().ok()).map(|c| c.timings.clone()).unwrap_or_default(),
                audio_seconds: spoken.map(SpokenChunk::seconds).sum(),
                failed: results.iter().filter(|r| r.is_err()).count(),
            });
        }

        let mut state = self.lock();
        state.in_flight -= batch.len();
        state.stats.batches += 1;
        state.stats.busy += wall;
        for (q, result) in batch.into_iter().zip(results) {
            let id = q.request;
            let Some(a) = state.requests.get_mut(&id) else { continue }; // cancelled or failed meanwhile
            a.in_flight -= 1;
            match result {
                Ok(mut chunk) => {
                    chunk.queue_wait = start.saturating_duration_since(q.enqueued);
                    state.stats.chunks += 1;
                    state.stats.audio_seconds += chunk.seconds();
                    let a = state.requests.get_mut(&id).expect("checked");
                    a.reorder.insert(chunk.index, chunk);
                    self.deliver(a);
                    if a.finished() {
                        self.complete(&mut state, id);
                    }
                }
                Err(e) => self.fail(&mut state, id, e),
            }
        }
        drop(state);
        self.wake.notify_all();
        self.lock()
    }

    /// Sends the chunks that are next in order.
    fn deliver(&self, a: &mut Active) {
        while let Some(chunk) = a.reorder.remove(&a.next_to_send) {
            a.next_to_send += 1;
            let bytes = chunk.audio.len() * 4;
            {
                let mut p = a.progress.lock().unwrap_or_else(PoisonError::into_inner);
                p.chunks_done += 1;
                p.audio_seconds += chunk.seconds();
                p.input_done = chunk.source.as_ref().map_or(p.input_total, |s| s.end);
            }
            if let Some((_, kept)) = &mut a.cache {
                kept.push(chunk.clone());
            }
            a.held.fetch_add(bytes, Ordering::Relaxed);
            self.held.fetch_add(bytes, Ordering::Relaxed);
            let _ = a.tx.send(Event::Chunk(chunk));
        }
    }

    fn complete(&self, state: &mut State, id: u64) {
        let Some(a) = state.requests.remove(&id) else { return };
        state.stats.completed += 1;
        {
            let mut p = a.progress.lock().unwrap_or_else(PoisonError::into_inner);
            p.finished = Some(Instant::now());
            p.input_done = p.input_total;
        }
        if let Some((key, chunks)) = a.cache {
            self.cache.insert(key, chunks.into());
        }
        let _ = a.tx.send(Event::Done);
    }

    /// Folds a batch's wall time into the rates behind ETAs and retry-after.
    fn observe(&self, wall: Duration, chunks: usize, bytes: usize) {
        let ewma = |cell: &AtomicU64, sample: f64| {
            let old = f64::from_bits(cell.load(Ordering::Relaxed));
            let new = if old == 0.0 { sample } else { 0.8 * old + 0.2 * sample };
            cell.store(new.to_bits(), Ordering::Relaxed);
        };
        ewma(&self.secs_per_chunk, wall.as_secs_f64() / chunks.max(1) as f64);
        ewma(&self.secs_per_byte, wall.as_secs_f64() / bytes.max(1) as f64);
    }
}

enum Pick {
    Batch(Vec<Queued>),
    Wait(Duration),
}

/// What a [`Stream`] needs from its scheduler, whatever the voice store.
trait Control: Send + Sync {
    fn cancel(&self, id: u64, timed_out: bool);
    fn taken(&self, bytes: usize);
    fn secs_per_byte(&self) -> f64;
}

impl<S: VoiceStore + Send + Sync + 'static> Control for Shared<S> {
    fn cancel(&self, id: u64, timed_out: bool) {
        self.cancel_request(id, timed_out);
    }

    fn taken(&self, bytes: usize) {
        let before = self.held.fetch_sub(bytes, Ordering::Relaxed);
        debug_assert!(before >= bytes);
        // A request paused for lagging may be planned again.
        self.wake.notify_all();
    }

    fn secs_per_byte(&self) -> f64 {
        f64::from_bits(self.secs_per_byte.load(Ordering::Relaxed))
    }
}

/// The chunks of one request, in order, as they are spoken. Iterate it (blocking), or call
/// [`next_timeout`](Self::next_timeout). Dropping it cancels the request.
pub struct Stream {
    id: u64,
    rx: Receiver<Event>,
    control: Arc<dyn Control>,
    held: Arc<AtomicUsize>,
    progress: Arc<Mutex<ProgressState>>,
    deadline: Option<Instant>,
    /// Whether held bytes are counted (not for cache hits).
    counted: bool,
    ended: bool,
}

impl Stream {
    fn new(
        id: u64,
        rx: Receiver<Event>,
        control: Arc<dyn Control>,
        held: Arc<AtomicUsize>,
        progress: Arc<Mutex<ProgressState>>,
        deadline: Option<Instant>,
        counted: bool,
    ) -> Self {
        Self { id, rx, control, held, progress, deadline, counted, ended: false }
    }

    /// The scheduler's id of this request.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Chunks done, audio so far, time left.
    pub fn progress(&self) -> Progress {
        let p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let now = p.finished.unwrap_or_else(Instant::now);
        let elapsed = now.duration_since(p.submitted);
        let left = p.input_total.saturating_sub(p.input_done) as f64;
        let eta = if p.finished.is_some() {
            Some(Duration::ZERO)
        } else if p.input_done > 0 {
            Some(Duration::from_secs_f64(left * elapsed.as_secs_f64() / p.input_done as f64))
        } else {
            let rate = self.control.secs_per_byte();
            (rate > 0.0).then(|| Duration::from_secs_f64(left * rate))
        };
        Progress {
            chunks_done: p.chunks_done,
            chunks_total: p.chunks_total,
            input_done: p.input_done,
            input_total: p.input_total,
            audio_seconds: p.audio_seconds,
            elapsed,
            eta,
            finished: p.finished.is_some(),
        }
    }

    /// The next chunk, waiting at most `timeout`: `Ok(None)` when it did not come in time.
    /// `Err(None)` at the end of the stream.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<SpokenChunk>, Option<EngineError>> {
        if self.ended {
            return Err(None);
        }
        let until_deadline = self.deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let wait = until_deadline.map_or(timeout, |d| d.min(timeout));
        match self.rx.recv_timeout(wait) {
            Ok(event) => self.take(event),
            Err(RecvTimeoutError::Timeout) if until_deadline.is_some_and(|d| d <= wait) => {
                self.end(true);
                Err(Some(EngineError::Timeout))
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                self.ended = true;
                Err(Some(EngineError::ShuttingDown))
            }
        }
    }

    fn take(&mut self, event: Event) -> Result<Option<SpokenChunk>, Option<EngineError>> {
        match event {
            Event::Chunk(chunk) => {
                if self.counted {
                    let bytes = chunk.audio.len() * 4;
                    self.held.fetch_sub(bytes, Ordering::Relaxed);
                    self.control.taken(bytes);
                }
                Ok(Some(chunk))
            }
            Event::Failed(e) => {
                self.ended = true;
                self.release_unread();
                Err(Some(e))
            }
            Event::Done => {
                self.ended = true;
                Err(None)
            }
        }
    }

    /// Stops the request: its queued chunks leave the queue now; a chunk in flight finishes and
    /// is dropped.
    pub fn cancel(mut self) {
        self.end(false);
    }

    fn end(&mut self, timed_out: bool) {
        if !self.ended {
            self.ended = true;
            self.control.cancel(self.id, timed_out);
        }
        self.release_unread();
    }

    /// Audio sent but never to be read no longer counts as held.
    fn release_unread(&mut self) {
        while let Ok(event) = self.rx.try_recv() {
            if let (Event::Chunk(chunk), true) = (event, self.counted) {
                let bytes = chunk.audio.len() * 4;
                self.held.fetch_sub(bytes, Ordering::Relaxed);
                self.control.taken(bytes);
            }
        }
    }

    /// Every remaining chunk, joined: the whole audio (or the first error).
    pub fn collect_audio(self) -> Result<Vec<SpokenChunk>, EngineError> {
        self.collect()
    }
}

impl Iterator for Stream {
    type Item = Result<SpokenChunk, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                Ok(Some(chunk)) => return Some(Ok(chunk)),
                Ok(None) => continue,
                Err(None) => return None,
                Err(Some(e)) => return Some(Err(e)),
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.end(false);
    }
}
