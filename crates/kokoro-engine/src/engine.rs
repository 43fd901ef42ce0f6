//! The engine: weights on a device, the front ends, the voice cache and its store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use burn::tensor::Device;
use kokoro_model::{ForwardInput, ForwardOutput, Kokoro, SourceNoise, StyleVector, Vocab};
use kokoro_text::{ChunkOptions, Dialect, FrontEnd};
use kokoro_voice::{MixSpec, UsageAnalytics, Voice, VoiceCache, VoiceError, VoiceStore};
use web_time::Instant;

use crate::timeline::word_samples;
use crate::{EngineError, Plan, SpokenChunk, Utterance};

/// What the engine computes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// burn's CPU backend (flex).
    Cpu,
    /// burn-wgpu natively (Vulkan, Metal, DX12): reads block.
    Wgpu,
    /// burn-wgpu on a browser's WebGPU: reads must be awaited ([`Engine::synthesize_async`]).
    WebGpu,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::WebGpu => "webgpu",
        }
    }
}

/// Text in, audio out. Shared by reference between threads natively (`Send + Sync`).
pub struct Engine<S> {
    kokoro: Kokoro,
    device: Device,
    backend: Backend,
    vocab: Vocab,
    /// Front ends by dialect, built on first use (each inflates its lexicons: ~0.3 s).
    fronts: Mutex<HashMap<Dialect, Arc<FrontEnd>>>,
    voices: VoiceCache,
    store: S,
    /// Identity of the weights (their file's sha256 where known): part of the response cache's key.
    weights_id: Arc<str>,
    /// Voice usage since [`take_usage`](Self::take_usage) was last called.
    usage: Mutex<UsageAnalytics>,
}

/// One utterance of a batch and how to speak it.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    pub utterance: &'a Utterance,
    pub voice: &'a Voice,
    pub speed: f32,
    pub noise: SourceNoise,
}

impl<S: VoiceStore> Engine<S> {
    /// An engine over loaded weights; `voice_budget` bounds the voice cache in bytes.
    pub fn new(kokoro: Kokoro, device: Device, backend: Backend, store: S, voice_budget: usize) -> Self {
        let vocab = Vocab::from_config(&kokoro.config);
        Self { kokoro, device, backend, vocab, fronts: Mutex::new(HashMap::new()), voices: VoiceCache::new(voice_budget), store, weights_id: "".into(), usage: Mutex::default() }
    }

    /// Names the weights (e.g. their file's sha256), for keys of cached responses.
    pub fn with_weights_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.weights_id = id.into();
        self
    }

    pub fn weights_id(&self) -> Arc<str> {
        self.weights_id.clone()
    }

    /// The canonical key of a voice spec: `b(1)+a(2)` and `a(2)+b(1)` are one voice.
    pub fn voice_key(&self, spec: &str) -> Result<String, EngineError> {
        let mix = MixSpec::parse(spec).map_err(VoiceError::from)?;
        Ok(mix.canonical().map_err(VoiceError::from)?)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn kokoro(&self) -> &Kokoro {
        &self.kokoro
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Bytes the model's parameters hold on the device (32-bit floats; memory reports).
    pub fn weight_bytes(&self) -> usize {
        use burn::module::Module as _;
        self.kokoro.model.num_params() * std::mem::size_of::<f32>()
    }

    pub fn load_time(&self) -> Duration {
        self.kokoro.load_time
    }

    pub fn voice_cache(&self) -> &VoiceCache {
        &self.voices
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The dialect to read in: `lang` ("en-us", "en-gb") when given, else the voice's. A mix
    /// reads in its heaviest voice's dialect (of equals, the first by name); a voice that is not
    /// English, or a spec that does not parse (its error comes from [`voice`](Self::voice)),
    /// reads as US English.
    pub fn dialect(&self, lang: Option<&str>, voice: &str) -> Result<Dialect, EngineError> {
        dialect_for(lang, voice)
    }

    /// The front end of `dialect`, built on first use.
    pub fn front(&self, dialect: Dialect) -> Result<Arc<FrontEnd>, EngineError> {
        let mut fronts = self.fronts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = fronts.get(&dialect) {
            return Ok(f.clone());
        }
        // Built under the lock: two threads asking at once build it once.
        let front = Arc::new(FrontEnd::new(dialect)?);
        fronts.insert(dialect, front.clone());
        Ok(front)
    }

    /// The utterances of `text`, made lazily (see [`Plan`]).
    pub fn plan(&self, text: impl Into<Arc<str>>, dialect: Dialect, options: ChunkOptions) -> Result<Plan, EngineError> {
        Ok(Plan::text(self.front(dialect)?, text.into(), options))
    }

    /// Phonemes given directly: one utterance.
    pub fn plan_phonemes(&self, phonemes: impl Into<String>) -> Plan {
        Plan::phonemes(phonemes.into())
    }

    /// The voice for a name or a mix (`af_bella(2)+af_sky(1)`, `-` subtracts): from the cache
    /// under its canonical key, else mixed from named parts (each cached, else loaded from the store).
    pub async fn voice(&self, spec: &str) -> Result<Voice, EngineError> {
        let mix = MixSpec::parse(spec).map_err(VoiceError::from)?;
        let key = mix.canonical().map_err(VoiceError::from)?;
        self.usage().record_request(&key, unix_seconds());
        if let Some(v) = self.voices.get(&key) {
            return Ok(v);
        }
        let mut parts = HashMap::new();
        for (name, _) in mix.weights().map_err(VoiceError::from)? {
            let voice = self.part(&name, false).await?;
            parts.insert(name, voice);
        }
        if let Some(name) = mix.single() {
            if let Some(voice) = parts.remove(&name) {
                return Ok(voice);
            }
        }
        let start = Instant::now();
        let voice = mix.mix(|name| parts.get(name).cloned().ok_or_else(|| VoiceError::Unknown(name.to_string())))?;
        self.voices.insert_loaded(&key, voice.clone(), start.elapsed(), false);
        Ok(voice)
    }

    /// One named voice: a cache hit, or a store load inserted (and pinned if asked).
    async fn part(&self, name: &str, pin: bool) -> Result<Voice, EngineError> {
        if let Some(v) = self.voices.get(name) {
            if pin {
                self.voices.pin_cached(name);
            }
            return Ok(v);
        }
        let start = Instant::now();
        let voice = self.store.load(name).await?;
        self.usage().record_load(name, start.elapsed());
        self.voices.insert_loaded(name, voice.clone(), start.elapsed(), pin);
        Ok(voice)
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, UsageAnalytics> {
        self.usage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The voice usage recorded since the last call (requests by canonical key, store loads and
    /// their times), handed over for saving (see `usage::UsageFlusher`).
    pub fn take_usage(&self) -> UsageAnalytics {
        std::mem::take(&mut *self.usage())
    }

    /// Loads and pins `name` (pre-warming): it stays in memory whatever else is used.
    pub async fn pin(&self, name: &str) -> Result<(), EngineError> {
        self.part(name, true).await.map(|_| ())
    }

    /// Speaks one utterance, blocking on the device (the CPU, native wgpu).
    pub fn synthesize(&self, utterance: &Utterance, voice: &Voice, speed: f32, noise: SourceNoise) -> Result<SpokenChunk, EngineError> {
        let (input, kept, unknown) = self.input(utterance, voice, speed, noise);
        let out = self.kokoro.model.forward(&input, &self.device)?;
        Ok(self.spoken(utterance, &kept, unknown, input.ids.len(), out))
    }

    /// Whether one batched forward pass beats separate ones on this backend, i.e. what the
    /// scheduler's [`Batching::Auto`](crate::Batching::Auto) does. Measured on the CPU (flex,
    /// 2 cores): a batch of 4 similar lengths (80-100 ids) took 1.25x the time of 4 separate
    /// passes, mixed lengths (1-510 ids) 3.2x (padding), because the model is compute-bound there and batching only adds
    /// padding and masking. On a GPU one pass over B utterances costs about what one costs, so
    /// batching is on for wgpu (not yet measured on a real GPU: see docs/engine.md).
    pub fn batching_pays(&self) -> bool {
        self.backend != Backend::Cpu
    }

    /// Speaks several utterances, each with its own voice, speed and noise, in one forward pass
    /// ([`KModel::forward_batch`](kokoro_model::KModel::forward_batch)); one result each, in
    /// order. Each equals [`synthesize`](Self::synthesize) of its item alone: identical
    /// durations and word times, audio equal up to float rounding (within the golden tests'
    /// tolerances; not bit for bit). If the batch fails (an item the model refuses, a device
    /// error), the items run one by one, so a bad item fails alone.
    pub fn synthesize_batch(&self, items: &[BatchItem<'_>]) -> Vec<Result<SpokenChunk, EngineError>> {
        if items.len() < 2 {
            return items.iter().map(|i| self.synthesize(i.utterance, i.voice, i.speed, i.noise)).collect();
        }
        let mut inputs = Vec::with_capacity(items.len());
        let mut characters = Vec::with_capacity(items.len());
        for i in items {
            let (input, kept, unknown) = self.input(i.utterance, i.voice, i.speed, i.noise);
            inputs.push(input);
            characters.push((kept, unknown));
        }
        match self.kokoro.model.forward_batch(&inputs, &self.device) {
            Ok(outputs) => items
                .iter()
                .zip(characters)
                .zip(inputs.iter().zip(outputs))
                .map(|((i, (kept, unknown)), (input, out))| Ok(self.spoken(i.utterance, &kept, unknown, input.ids.len(), out)))
                .collect(),
            Err(_) => items.iter().map(|i| self.synthesize(i.utterance, i.voice, i.speed, i.noise)).collect(),
        }
    }

    /// Speaks one utterance, awaiting the device's reads where it cannot block (WebGPU in a browser).
    pub async fn synthesize_async(
        &self,
        utterance: &Utterance,
        voice: &Voice,
        speed: f32,
        noise: SourceNoise,
    ) -> Result<SpokenChunk, EngineError> {
        let (input, kept, unknown) = self.input(utterance, voice, speed, noise);
        let out = match self.backend {
            Backend::WebGpu => self.kokoro.model.forward_async(&input, &self.device).await?,
            Backend::Cpu | Backend::Wgpu => self.kokoro.model.forward(&input, &self.device)?,
        };
        Ok(self.spoken(utterance, &kept, unknown, input.ids.len(), out))
    }

    /// The model's input for an utterance; which phoneme characters it kept, and the unknown ones
    /// (dropped, once each: the one policy for characters outside the vocab).
    fn input(&self, utterance: &Utterance, voice: &Voice, speed: f32, noise: SourceNoise) -> (ForwardInput, Vec<bool>, Vec<char>) {
        let mut ids = Vec::with_capacity(utterance.phonemes.len());
        let mut kept = Vec::with_capacity(utterance.phonemes.len());
        let mut unknown = Vec::new();
        for c in utterance.phonemes.chars() {
            match self.vocab.id(c) {
                Some(id) => ids.push(id),
                None if !unknown.contains(&c) => unknown.push(c),
                None => {}
            }
            kept.push(self.vocab.id(c).is_some());
        }
        let style = StyleVector(voice.style_for(ids.len()));
        (ForwardInput::new(ids, style).with_speed(speed).with_noise(noise), kept, unknown)
    }

    fn spoken(&self, u: &Utterance, kept: &[bool], unknown: Vec<char>, phoneme_ids: usize, out: ForwardOutput) -> SpokenChunk {
        let words = word_samples(u, kept, &out.durations, self.kokoro.config.samples_per_frame());
        SpokenChunk {
            index: u.index,
            source: u.source.clone(),
            phonemes: u.phonemes.clone(),
            phoneme_ids,
            unknown,
            guessed: u.guessed.clone(),
            durations: out.durations,
            audio: out.audio,
            words,
            timings: out.timings,
            queue_wait: std::time::Duration::ZERO,
            from_cache: false,
        }
    }
}

fn unix_seconds() -> u64 {
    web_time::SystemTime::now().duration_since(web_time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// See [`Engine::dialect`].
fn dialect_for(lang: Option<&str>, voice: &str) -> Result<Dialect, EngineError> {
    if let Some(l) = lang.map(str::trim).filter(|l| !l.is_empty()) {
        return l.parse().map_err(|_| EngineError::Language(l.to_string()));
    }
    let weights = MixSpec::parse(voice).ok().and_then(|m| m.weights().ok()).unwrap_or_default();
    let heaviest = weights.iter().fold(None::<&(String, f64)>, |best, w| match best {
        Some(b) if b.1 >= w.1 => Some(b),
        _ => Some(w),
    });
    Ok(heaviest.and_then(|(n, _)| Dialect::for_voice(n)).unwrap_or(Dialect::EnUs))
}

impl<S: VoiceStore> Engine<S> {
    /// Diagnostics: the first half of a forward pass stage by stage, each read back and summarized.
    /// Finds the stage where a device goes wrong.
    pub async fn probe_prosody(&self, phonemes: &str, voice: &Voice) -> Result<Vec<(String, TensorSummary)>, EngineError> {
        use burn::tensor::{Int, Tensor, TensorData};
        let m = &self.kokoro.model;
        let d = &self.device;
        let encoded = self.vocab.encode(phonemes).ids;
        let ids: Vec<i64> = std::iter::once(0).chain(encoded.iter().map(|&i| i as i64)).chain([0]).collect();
        let n = ids.len();
        let style = voice.style_for(n - 2);
        let half = style.len() / 2;
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), d);
        let style = Tensor::<2>::from_data(TensorData::new(style.to_vec(), [1, style.len()]), d).slice([0..1, half..2 * half]);
        let mut out = Vec::new();
        let bert = m.bert.forward(ids, None);
        out.push(("bert".to_string(), summarize(bert.clone()).await?));
        let d_en = m.bert_encoder.forward(bert).swap_dims(1, 2);
        out.push(("d_en".to_string(), summarize(d_en.clone()).await?));
        let dd = m.predictor.text_encoder.forward(d_en, style);
        out.push(("d".to_string(), summarize(dd.clone()).await?));
        let lstm = m.predictor.lstm.forward(dd.clone());
        out.push(("duration_lstm".to_string(), summarize(lstm).await?));
        let sums = m.predictor.durations(dd);
        out.push(("duration_sums".to_string(), summarize(sums).await?));
        Ok(out)
    }
}

/// Shape, NaNs, min, max and mean of a tensor's values.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TensorSummary {
    pub shape: Vec<usize>,
    pub nans: usize,
    pub min: f32,
    pub max: f32,
    pub mean: f64,
}

async fn summarize<const D: usize>(t: burn::tensor::Tensor<D>) -> Result<TensorSummary, EngineError> {
    let data = t.into_data_async().await.map_err(|e| kokoro_model::Error::Device(format!("{e:?}")))?;
    let shape = data.shape().to_vec();
    let v = data.try_to_vec::<f32>().map_err(|e| kokoro_model::Error::Device(format!("{e:?}")))?;
    let finite: Vec<f32> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    Ok(TensorSummary {
        shape,
        nans: v.len() - finite.len(),
        min: finite.iter().copied().fold(f32::INFINITY, f32::min),
        max: finite.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        mean: finite.iter().map(|&x| x as f64).sum::<f64>() / finite.len().max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_reads_in_its_heaviest_voices_dialect() {
        assert_eq!(dialect_for(None, "bf_emma").unwrap(), Dialect::EnGb);
        assert_eq!(dialect_for(None, "af_heart").unwrap(), Dialect::EnUs);
        // The first letter of the spec is American; the heaviest voice is British.
        assert_eq!(dialect_for(None, "af_heart(1)+bf_emma(3)").unwrap(), Dialect::EnGb);
        assert_eq!(dialect_for(None, "bf_emma(1)+af_heart(3)").unwrap(), Dialect::EnUs);
        // Equal weights: the first by name, whatever the order in the spec.
        assert_eq!(dialect_for(None, "bf_emma+af_heart").unwrap(), Dialect::EnUs);
        // Not English, or not a spec: US English; an explicit lang wins.
        assert_eq!(dialect_for(None, "jf_alpha").unwrap(), Dialect::EnUs);
        assert_eq!(dialect_for(None, "((").unwrap(), Dialect::EnUs);
        assert_eq!(dialect_for(Some("en-gb"), "af_heart").unwrap(), Dialect::EnGb);
        assert!(matches!(dialect_for(Some("fr"), "af_heart"), Err(EngineError::Language(_))));
    }

    #[test]
    fn the_engine_is_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Engine<kokoro_voice::DirStore>>();
    }
}
