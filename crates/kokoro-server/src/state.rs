//! What the handlers share: the engine behind its scheduler, the configuration, and whether the
//! server is ready or draining.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use kokoro_engine::{ChunkOptions, EngineError, Request, Scheduler, SchedulerStats, Stream, VoiceStore};

use serde::Serialize;

use crate::config::ServerConfig;
use crate::error::ApiError;

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
}

/// The server's shared state.
pub struct AppState {
    synth: OnceLock<Arc<dyn Synthesizer>>,
    config: RwLock<Arc<ServerConfig>>,
    ready: AtomicBool,
    draining: AtomicBool,
    prewarm: Mutex<PrewarmState>,
    pub started: Instant,
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
            config: RwLock::new(Arc::new(config)),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            prewarm: Mutex::new(PrewarmState::default()),
            started: Instant::now(),
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

    pub fn set_config(&self, config: ServerConfig) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
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
        self.prewarm.lock().unwrap_or_else(PoisonError::into_inner).total = voices.len();
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
