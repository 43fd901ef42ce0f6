//! The one place where text becomes audio: `kokoro say`, `kokoro bench` and the browser's worker
//! all synthesize through [`Engine`].
//!
//! ```text
//! text ── Engine::plan ──> Utterances (lazy: one sentence of G2P at a time, with word spans)
//! voice spec ── Engine::voice ──> Voice (kokoro-voice's byte-bounded cache, then the VoiceStore)
//! Utterance + Voice ── Engine::synthesize ──> SpokenChunk (audio, durations, word times)
//! SpokenChunks ── Timeline ──> word times from the start of the whole audio; wav::PcmWavWriter
//! ```
//!
//! Policies that exist once, here:
//! - **Dialect**: an explicit `lang` wins; else the voice's (a mix reads in its heaviest voice's
//!   dialect; a voice that is not English reads as US English). See [`Engine::dialect`].
//! - **Unknown phoneme characters** (only possible with raw phonemes: the G2P emits the vocab
//!   only) are dropped and reported in [`SpokenChunk::unknown`]; the front ends warn about them.
//! - **Voices** resolve through one cache keyed by the canonical mix key, so `a+b` and `b+a`
//!   share an entry; named parts load through the [`VoiceStore`] (disk, HTTP, IndexedDB).
//! - **Word timestamps** come from the predicted durations, counted in samples from the start of
//!   the whole audio, so they do not drift over a long text ([`Timeline`]).
//! - **Audio out**: 16-bit PCM WAV, clipped to [-1, 1] ([`wav`]).
//!
//! The engine is `Send + Sync` natively (threads share one); it builds for wasm32, where the
//! worker holds it in an `Rc` and awaits its GPU reads ([`Engine::synthesize_async`]).
//!
//! Crates chosen: `burn` (the device), `hound` (WAV: the de-facto Rust WAV codec, no unsafe, wasm
//! friendly), `thiserror` (typed errors), `web-time` (`Instant` that works in browsers).

mod engine;
mod error;
pub mod response_cache;
#[cfg(not(target_arch = "wasm32"))]
pub mod scheduler;
#[cfg(not(target_arch = "wasm32"))]
pub mod usage;
/// Items and manifests of bulk work (`kokoro batch`, the server's jobs).
#[cfg(not(target_arch = "wasm32"))]
pub mod batch;
/// Files written whole or not at all.
#[cfg(not(target_arch = "wasm32"))]
pub mod files;
mod text_stream;
mod timeline;
mod utterance;
pub mod wav;

pub use engine::{Backend, BatchItem, Engine, TensorSummary};
pub use response_cache::{ResponseCache, ResponseCacheSnapshot, ResponseCacheStats, ResponseKey};
#[cfg(not(target_arch = "wasm32"))]
pub use scheduler::{BatchReport, Batching, Input, Priority, Progress, Request, Scheduler, SchedulerConfig, SchedulerObserver, SchedulerStats, Stream};
pub use error::EngineError;
pub use kokoro_model::{MAX_SPEED, MIN_SPEED, SAMPLE_RATE, SourceNoise, StageTimings};
pub use kokoro_text::{ChunkOptions, Dialect};
pub use kokoro_voice::{Voice, VoiceCache, VoiceStore};
pub use text_stream::TextStream;
pub use timeline::{SpokenChunk, Timeline, WordTime};
pub use utterance::{Plan, Utterance, Word};

// The voice crate's rows are what the model takes.
const _: () = assert!(kokoro_voice::STYLE_WIDTH == kokoro_model::STYLE_WIDTH);
