//! Weights onto a device, as an engine over the chosen voice source: what `say`, `batch` and
//! `bench` all start with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kokoro_engine::Engine;
use kokoro_engine::usage::UsageFlusher;
use kokoro_model::Kokoro;

use crate::device::DeviceChoice;
use crate::fetch::{self, Cache};
use crate::voices::{SourceStore, VoiceSource};

/// Bytes of voices an engine keeps in memory: mixes and their parts (a voice is 522,240 bytes).
pub const VOICE_CACHE_BYTES: usize = 16 << 20;

/// The weights to load: `weights` if given, else the cache's canonical file (fetched if missing).
pub fn weights_path(cache: &Cache, weights: Option<&PathBuf>) -> Result<PathBuf> {
    Ok(match weights {
        Some(p) => p.clone(),
        None => {
            if !cache.is_complete() {
                eprintln!("weights or voices missing from {}; fetching them first", cache.root.display());
                fetch::fetch(cache, false)?;
            }
            cache.canonical()
        }
    })
}

/// Loads the weights on `device` and returns the engine and the load time.
pub fn engine(
    cache: &Cache,
    weights: Option<&PathBuf>,
    device: DeviceChoice,
    precision: kokoro_model::ComputePrecision,
    voices: &VoiceSource,
) -> Result<(Engine<SourceStore>, Duration)> {
    let weights = weights_path(cache, weights)?;
    let (device, backend) = device.open()?;
    crate::device::apply_precision(precision, backend)?;
    let start = Instant::now();
    let kokoro = Kokoro::load(&weights, &device).with_context(|| format!("loading {}", weights.display()))?;
    let load = start.elapsed();
    let store = SourceStore::new(voices, cache);
    Ok((Engine::new(kokoro, device, backend, store, VOICE_CACHE_BYTES), load))
}

/// Saves the engine's voice usage into the cache folder's `voice-usage.json` every 30 s and at
/// exit (when the returned flusher is dropped), merged with other processes' counts.
pub fn save_usage(cache: &Cache, engine: &Arc<Engine<SourceStore>>) -> UsageFlusher {
    let engine = engine.clone();
    UsageFlusher::start(crate::voices::usage_path(cache), Duration::from_secs(30), move || engine.take_usage())
}
