//! What the handlers share: the engine behind its scheduler, the configuration, and whether the
//! server is ready or draining.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use kokoro_engine::{ChunkOptions, EngineError, Request, ResponseCacheSnapshot, Scheduler, SchedulerStats, Stream, VoiceStore};
use kokoro_voice::CacheSnapshot;

use serde::Serialize;

use crate::alerts::{Alerts, Observation};
use crate::config::{ConfigError, RateLimitConfig, ServerConfig};
use crate::error::ApiError;
use crate::logging::LogHandle;
use crate::metrics::{Levels, MemoryUse, Metrics, VoiceCacheLevels};
use kokoro_engine::SchedulerConfig;

/// What the server needs of the engine. Implemented by the engine's [`Scheduler`] over any voice
/// store; the trait keeps the store's type out of every handler. Every method may block (voice
/// loads, G2P, waiting on the queue): handlers call them from `spawn_blocking`, never on the
/// async runtime's threads.
pub trait Synthesizer: Send + Sync + 'static {
    /// Queues a request (see [`Scheduler::submit`]).
    fn submit(&self, request: Request) -> Result<Stream, EngineError>;
    /// Queue depths and counters.
    fn stats(&self) -> SchedulerStats;
    /// Every named voice the store holds, sorted.
    fn voice_names(&self) -> Result<Vec<String>, EngineError>;
    /// The raw style rows (510 x 256 f32, little-endian) of a name or a mix.
    fn voice_bytes(&self, spec: &str) -> Result<Vec<u8>, EngineError>;
    /// The phonemes of `text`, one string per chunk, read as `voice` would read it.
    fn phonemize(&self, text: &str, lang: Option<&str>, voice: &str) -> Result<Vec<String>, EngineError>;
    /// Loads and pins a voice (pre-warming).
    fn pin(&self, name: &str) -> Result<(), EngineError>;
    /// The voice cache: entries, bytes, counters.
    fn voice_cache(&self) -> CacheSnapshot;
    /// The response cache: entries, bytes, counters.
    fn response_cache(&self) -> ResponseCacheSnapshot;
    /// Bytes the model's weights hold.
    fn weight_bytes(&self) -> usize;
    /// Drops a voice or mix from the voice cache (pinned or not); whether it was there.
    fn evict_voice(&self, spec: &str) -> Result<bool, EngineError>;
    /// Empties the response cache and the voice cache's unpinned entries.
    fn clear_caches(&self);
    /// New byte budgets for the voice and response caches (evicting down to them).
    fn set_cache_budgets(&self, voice_bytes: usize, response_bytes: usize);
}

impl<S: VoiceStore + Send + Sync + 'static> Synthesizer for Scheduler<S> {
    fn submit(&self, request: Request) -> Result<Stream, EngineError> {
        Scheduler::submit(self, request)
    }

    fn stats(&self) -> SchedulerStats {
        Scheduler::stats(self)
    }

    fn voice_names(&self) -> Result<Vec<String>, EngineError> {
        let mut names = pollster::block_on(self.engine().store().list())?;
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn voice_bytes(&self, spec: &str) -> Result<Vec<u8>, EngineError> {
        Ok(pollster::block_on(self.engine().voice(spec))?.to_bin_bytes())
    }

    fn phonemize(&self, text: &str, lang: Option<&str>, voice: &str) -> Result<Vec<String>, EngineError> {
        let engine = self.engine();
        let dialect = engine.dialect(lang, voice)?;
        engine.plan(text, dialect, ChunkOptions::default())?.map(|u| u.map(|u| u.phonemes)).collect()
    }

    fn pin(&self, name: &str) -> Result<(), EngineError> {
        pollster::block_on(self.engine().pin(name))
    }

    fn voice_cache(&self) -> CacheSnapshot {
        self.engine().voice_cache().snapshot()
    }

    fn response_cache(&self) -> ResponseCacheSnapshot {
        Scheduler::response_cache(self).snapshot()
    }

    fn weight_bytes(&self) -> usize {
        self.engine().weight_bytes()
    }

    fn evict_voice(&self, spec: &str) -> Result<bool, EngineError> {
        let key = self.engine().voice_key(spec)?;
        Ok(self.engine().voice_cache().remove(&key))
    }

    fn clear_caches(&self) {
        Scheduler::response_cache(self).clear();
        self.engine().voice_cache().clear_unpinned();
    }

    fn set_cache_budgets(&self, voice_bytes: usize, response_bytes: usize) {
        self.engine().voice_cache().resize(voice_bytes);
        Scheduler::response_cache(self).set_budget(response_bytes);
    }
}

/// The server's shared state.
pub struct AppState {
    synth: OnceLock<Arc<dyn Synthesizer>>,
    config: RwLock<Arc<ServerConfig>>,
    ready: AtomicBool,
    draining: AtomicBool,
    prewarm: Mutex<PrewarmState>,
    pub started: Instant,
    pub metrics: Arc<Metrics>,
    log: OnceLock<LogHandle>,
    reload: OnceLock<Box<Reloader>>,
    limiter: RwLock<Option<Arc<RateLimiter>>>,
    pub alerts: Alerts,
    pub history: crate::status::History,
    jobs: OnceLock<Arc<crate::jobs::Jobs>>,
}

/// Reads the configuration again (from its file, profile and environment).
pub type Reloader = dyn Fn() -> Result<ServerConfig, ConfigError> + Send + Sync;

/// Per-client limits: keyed by API key or address.
pub type RateLimiter = governor::DefaultKeyedRateLimiter<String>;

/// What a live reload did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Reloaded {
    /// Keys whose new values took effect.
    pub applied: Vec<String>,
    /// Keys that changed in the file but need a restart (the old values stay).
    pub need_restart: Vec<String>,
}

/// Start-up pre-warming, as `/health/ready` and the logs report it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PrewarmState {
    pub done: usize,
    pub total: usize,
    /// Voices that failed to load, with why: the server still becomes ready without them.
    pub failed: Vec<(String, String)>,
}

impl AppState {
    /// A server whose engine is still loading: it answers health checks (not ready) and 503
    /// to work until [`set_synthesizer`](Self::set_synthesizer).
    pub fn starting(config: ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            synth: OnceLock::new(),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            prewarm: Mutex::new(PrewarmState::default()),
            started: Instant::now(),
            metrics: Arc::new(Metrics::new()),
            log: OnceLock::new(),
            reload: OnceLock::new(),
            limiter: RwLock::new(rate_limiter(&config.rate_limit)),
            alerts: Alerts::default(),
            history: crate::status::History::default(),
            jobs: OnceLock::new(),
            config: RwLock::new(Arc::new(config)),
        })
    }

    /// A server over a loaded engine, not ready until [`set_ready`](Self::set_ready) (pre-warm done).
    pub fn new(synth: Arc<dyn Synthesizer>, config: ServerConfig) -> Arc<Self> {
        let app = Self::starting(config);
        app.set_synthesizer(synth);
        app
    }

    /// The engine, once loaded.
    pub fn set_synthesizer(&self, synth: Arc<dyn Synthesizer>) {
        let _ = self.synth.set(synth);
    }

    /// Opens `jobs.dir` (when set) and starts the thread that speaks its jobs: unfinished ones
    /// resume, owed webhooks are delivered. The thread waits for the engine and ends when the
    /// server drains.
    pub fn start_jobs(self: &Arc<Self>) -> std::io::Result<()> {
        let Some(dir) = self.config().jobs.dir.clone() else { return Ok(()) };
        let jobs = crate::jobs::Jobs::open(&dir).map_err(|e| std::io::Error::new(e.kind(), format!("opening the jobs folder {}: {e}", dir.display())))?;
        if self.jobs.set(jobs.clone()).is_err() {
            return Ok(()); // started before
        }
        let app = self.clone();
        jobs.running.store(true, std::sync::atomic::Ordering::SeqCst);
        std::thread::Builder::new().name("kokoro-jobs".into()).spawn(move || crate::jobs::run(app, jobs))?;
        Ok(())
    }

    /// The jobs, when `jobs.dir` is set and [`start_jobs`](Self::start_jobs) ran.
    pub fn jobs(&self) -> Option<Arc<crate::jobs::Jobs>> {
        self.jobs.get().cloned()
    }

    /// The engine, or 503 while the weights load.
    pub fn synth(&self) -> Result<Arc<dyn Synthesizer>, ApiError> {
        self.synth.get().cloned().ok_or_else(|| ApiError::unavailable("starting", "the server is loading the model: retry shortly", std::time::Duration::from_secs(2)))
    }

    /// The engine's queue counters, once loaded.
    pub fn stats(&self) -> Option<SchedulerStats> {
        self.synth.get().map(|s| s.stats())
    }

    /// The configuration now (a live reload swaps it; a request keeps the one it started with).
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the configuration and applies what can change live: limits, aliases, pre-warm
    /// list, rate limits, API keys, the admin token, `/debug`, the log level and the cache
    /// budgets. What needs a restart ([`ServerConfig::needs_restart`]) keeps its old value.
    pub fn set_config(&self, new: ServerConfig) -> Reloaded {
        let old = self.config();
        let need_restart: Vec<String> = old.needs_restart(&new).into_iter().map(String::from).collect();
        let mut applied = Vec::new();
        let mut effective = new.clone();
        effective.listen = old.listen;
        effective.limits.max_body_bytes = old.limits.max_body_bytes;
        effective.security.cors_allow_origins = old.security.cors_allow_origins.clone();
        effective.log.format = old.log.format;
        effective.log.file = old.log.file.clone();
        effective.engine = SchedulerConfig { response_cache_bytes: new.engine.response_cache_bytes, ..old.engine.clone() };
        effective.jobs.dir = old.jobs.dir.clone();
        effective.jobs.max_upload_bytes = old.jobs.max_upload_bytes;
        if effective.log.level != old.log.level {
            if let Some(log) = self.log.get() {
                if let Err(e) = log.set_level(&effective.log.level) {
                    tracing::warn!(error = %e, "log level not changed");
                }
            }
            applied.push("log.level".to_string());
        }
        if effective.rate_limit != old.rate_limit {
            *self.limiter.write().unwrap_or_else(PoisonError::into_inner) = rate_limiter(&effective.rate_limit);
            applied.push("rate_limit".to_string());
        }
        if effective.voices.cache_bytes != old.voices.cache_bytes || effective.engine.response_cache_bytes != old.engine.response_cache_bytes {
            if let Some(synth) = self.synth.get() {
                synth.set_cache_budgets(effective.voices.cache_bytes, effective.engine.response_cache_bytes);
            }
            applied.push("cache budgets".to_string());
        }
        for (key, changed) in [
            ("limits", effective.limits != old.limits),
            ("models", effective.models != old.models),
            ("voices.aliases", effective.voices.aliases != old.voices.aliases),
            ("voices.prewarm", effective.voices.prewarm != old.voices.prewarm),
            ("text", effective.text != old.text),
            ("security", effective.security != old.security),
            ("jobs", effective.jobs != old.jobs),
            ("watch_config_secs", effective.watch_config_secs != old.watch_config_secs),
        ] {
            if changed {
                applied.push(key.to_string());
            }
        }
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(effective);
        Reloaded { applied, need_restart }
    }

    /// How to read the configuration again (`/admin/reload`, SIGHUP).
    pub fn set_reloader(&self, reload: Box<Reloader>) {
        let _ = self.reload.set(reload);
    }

    /// Reads the configuration again and applies it; an invalid one is refused and the old one
    /// stays.
    pub fn reload(&self) -> Result<Reloaded, ApiError> {
        let reload = self.reload.get().ok_or_else(|| ApiError::invalid(None, "no_reload", "this server was not started from a configuration it can read again"))?;
        match reload() {
            Ok(config) => {
                let done = self.set_config(config);
                tracing::info!(applied = ?done.applied, need_restart = ?done.need_restart, "configuration reloaded");
                Ok(done)
            }
            Err(e) => {
                tracing::warn!(error = %e, "configuration reload refused; the old configuration stays");
                Err(ApiError::invalid(None, "invalid_config", format!("the new configuration is invalid, the old one stays: {e}")))
            }
        }
    }

    /// The logger's level control, when this process's logger came from [`crate::logging::init`].
    pub fn set_log_handle(&self, log: LogHandle) {
        let _ = self.log.set(log);
    }

    pub fn log_handle(&self) -> Option<&LogHandle> {
        self.log.get()
    }

    /// The rate limiter now (None: no limit).
    pub fn rate_limiter(&self) -> Option<Arc<RateLimiter>> {
        self.limiter.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Bytes held now, by component.
    pub fn memory(&self) -> MemoryUse {
        let mut m = MemoryUse { process_rss: crate::metrics::process_rss(), ..MemoryUse::default() };
        if let Some(synth) = self.synth.get() {
            m.weights = synth.weight_bytes() as u64;
            m.voice_cache = synth.voice_cache().bytes as u64;
            m.response_cache = synth.response_cache().bytes as u64;
            m.queued_audio = synth.stats().held_audio_bytes as u64;
        }
        m
    }

    /// What the alerts look at now (see [`crate::alerts`]).
    pub fn observe_for_alerts(&self, window: std::time::Duration) -> Observation {
        let (requests, server_errors) = self.metrics.answered();
        let memory = self.memory();
        let mut o = Observation {
            queue_capacity: self.config().engine.max_queued_chunks,
            first_audio: self.metrics.first_audio_within(window),
            requests,
            server_errors,
            rss: memory.process_rss,
            memory_limit: self.config().limits.memory_limit_bytes,
            gpus: self.metrics.gpu_memory(),
            ..Observation::default()
        };
        if let Some(synth) = self.synth.get() {
            o.queued_chunks = synth.stats().queued.iter().sum();
            let v = synth.voice_cache().stats;
            (o.voice_hits, o.voice_misses, o.voice_evictions) = (v.hits, v.misses, v.evictions);
        }
        o
    }

    /// The values `/metrics` reads at scrape time.
    pub fn levels(&self) -> Levels {
        let prewarm = self.prewarm();
        let mut levels = Levels {
            memory: self.memory(),
            memory_limit_bytes: self.config().limits.memory_limit_bytes,
            ready: self.is_ready(),
            draining: self.is_draining(),
            prewarm_done: prewarm.done,
            prewarm_total: prewarm.total,
            prewarm_failed: prewarm.failed.len(),
            alerts_firing: self.alerts.firing().into_iter().map(String::from).collect(),
            queue_capacity: self.config().engine.max_queued_chunks,
            jobs: self.jobs().map(|j| j.counts()),
            ..Levels::default()
        };
        if let Some(synth) = self.synth.get() {
            levels.scheduler = Some(synth.stats());
            let v = synth.voice_cache();
            levels.voice_cache = Some(VoiceCacheLevels { entries: v.entries.len(), bytes: v.bytes, budget: v.budget, stats: v.stats });
            let r = synth.response_cache();
            levels.response_cache = Some(r.stats);
            levels.response_cache_bytes = r.bytes;
            levels.response_cache_entries = r.entries.len();
        }
        levels
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.is_draining()
    }

    /// From now on readiness is 503 and new work is refused with 503; requests in flight go on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn prewarm(&self) -> PrewarmState {
        self.prewarm.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Loads and pins the configured voices one by one (blocking: call from a blocking thread),
    /// logging progress, then marks the server ready. A voice that fails is logged and skipped.
    pub fn run_prewarm(&self) {
        let Some(synth) = self.synth.get().cloned() else {
            tracing::error!("pre-warm before the engine is loaded: nothing to pre-warm with");
            return;
        };
        let voices = self.config().voices.prewarm.clone();
        *self.prewarm.lock().unwrap_or_else(PoisonError::into_inner) = PrewarmState { total: voices.len(), ..PrewarmState::default() };
        let started = Instant::now();
        for (i, voice) in voices.iter().enumerate() {
            let result = synth.pin(voice);
            let mut p = self.prewarm.lock().unwrap_or_else(PoisonError::into_inner);
            p.done = i + 1;
            match result {
                Ok(()) => tracing::info!(voice = %voice, done = i + 1, total = voices.len(), "pre-warmed voice"),
                Err(e) => {
                    tracing::warn!(voice = %voice, error = %e, "pre-warm failed");
                    p.failed.push((voice.clone(), e.to_string()));
                }
            }
        }
        tracing::info!(voices = voices.len(), seconds = started.elapsed().as_secs_f64(), "pre-warm done; ready");
        self.set_ready(true);
    }
}

/// A limiter for `config`, or none when it sets no limit.
fn rate_limiter(config: &RateLimitConfig) -> Option<Arc<RateLimiter>> {
    let per_minute = std::num::NonZeroU32::new(config.requests_per_minute)?;
    let burst = std::num::NonZeroU32::new(config.burst.max(1)).expect("at least 1");
    Some(Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(per_minute).allow_burst(burst))))
}
