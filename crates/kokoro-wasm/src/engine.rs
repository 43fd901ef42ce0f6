//! The engine a Web Worker hosts: text -> chunks, voice specs -> style rows (through the voice
//! cache and an async store), phonemes -> audio. Platform-neutral so that it is tested natively;
//! `bindings` puts it behind wasm-bindgen.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use burn::tensor::Device;
use kokoro_model::{ForwardInput, ForwardOutput, Kokoro, SourceNoise, VoicePack, Vocab};
use kokoro_text::{ChunkOptions, Dialect, FrontEnd, TextError};
use kokoro_voice::{MixSpec, Voice, VoiceCache, VoiceError, VoiceStore};
use web_time::Instant;

/// What the engine computes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// burn-wgpu on the browser's WebGPU (or native wgpu): reads are awaited.
    WebGpu,
    /// burn's CPU backend (flex), single-threaded in wasm.
    Cpu,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebGpu => "webgpu",
            Self::Cpu => "cpu",
        }
    }
}

/// Errors an engine call reports (the worker turns them into rejected promises with the message).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Text(#[from] TextError),
    #[error(transparent)]
    Voice(#[from] VoiceError),
    #[error(transparent)]
    Model(#[from] kokoro_model::Error),
    #[error("unknown language {0:?}: use en-us or en-gb")]
    Language(String),
}

/// One chunk of a text, as the worker hands it out.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChunkInfo {
    pub index: usize,
    /// UTF-16 code unit range of the source text (what JavaScript's `slice` takes).
    pub start: usize,
    pub end: usize,
    pub phonemes: String,
    pub guessed: Vec<String>,
}

pub struct Engine<S> {
    kokoro: Kokoro,
    device: Device,
    backend: Backend,
    vocab: Vocab,
    fronts: RefCell<HashMap<Dialect, Rc<FrontEnd>>>,
    voices: VoiceCache,
    store: S,
}

impl<S: VoiceStore> Engine<S> {
    /// An engine over loaded weights; `voice_budget` bounds the in-memory voice cache in bytes.
    pub fn new(kokoro: Kokoro, device: Device, backend: Backend, store: S, voice_budget: usize) -> Self {
        let vocab = Vocab::from_config(&kokoro.config);
        Self {
            kokoro,
            device,
            backend,
            vocab,
            fronts: RefCell::new(HashMap::new()),
            voices: VoiceCache::new(voice_budget),
            store,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
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

    /// The dialect for `lang` ("en-us", "en-gb"), else the one `voice` was trained on (a mix: its
    /// heaviest voice; US when the voice is not English).
    pub fn dialect(&self, lang: Option<&str>, voice: &str) -> Result<Dialect, EngineError> {
        match lang.filter(|l| !l.is_empty()) {
            Some(l) => l.parse().map_err(|_| EngineError::Language(l.to_string())),
            None => {
                // A mix reads with the dialect of its heaviest voice.
                let weights = MixSpec::parse(voice).ok().and_then(|m| m.weights().ok()).unwrap_or_default();
                let heaviest = weights.iter().fold(None::<&(String, f64)>, |best, w| match best {
                    Some(b) if b.1 >= w.1 => Some(b),
                    _ => Some(w),
                });
                Ok(heaviest.and_then(|(n, _)| Dialect::for_voice(n)).unwrap_or(Dialect::EnUs))
            }
        }
    }

    /// The front end of `dialect`, built on first use (it inflates the lexicons: ~0.3 s in wasm).
    fn front(&self, dialect: Dialect) -> Result<Rc<FrontEnd>, EngineError> {
        if let Some(f) = self.fronts.borrow().get(&dialect) {
            return Ok(f.clone());
        }
        let front = Rc::new(FrontEnd::new(dialect)?);
        self.fronts.borrow_mut().insert(dialect, front.clone());
        Ok(front)
    }

    /// Splits `text` into chunks the model takes (at most 510 phonemes, at sentence and clause
    /// edges). `pack`: sentences packed up to 510 phonemes, as reference Kokoro does; without, one
    /// chunk per sentence (the first audio comes sooner: what streaming wants).
    pub fn chunks(&self, text: &str, dialect: Dialect, pack: bool) -> Result<Vec<ChunkInfo>, EngineError> {
        let front = self.front(dialect)?;
        let utf16 = Utf16Offsets::new(text);
        front
            .chunks_with(text, ChunkOptions { pack_sentences: pack, ..ChunkOptions::default() })
            .map(|c| {
                let c = c?;
                Ok(ChunkInfo {
                    index: c.index,
                    start: utf16.at(c.source.start),
                    end: utf16.at(c.source.end),
                    phonemes: c.phonemes,
                    guessed: c.guessed,
                })
            })
            .collect()
    }

    /// The voice for a name or a mix (`af_bella(2)+af_sky(1)`): parts from the cache, else the store.
    pub async fn voice(&self, spec: &str) -> Result<Voice, EngineError> {
        let mix = MixSpec::parse(spec).map_err(VoiceError::from)?;
        let key = mix.canonical().map_err(VoiceError::from)?;
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
        let voice = mix.mix(|name| Ok(parts[name].clone()))?;
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
        self.voices.insert_loaded(name, voice.clone(), start.elapsed(), pin);
        Ok(voice)
    }

    /// Loads and pins `name` (pre-warming): it stays in memory whatever else is used.
    pub async fn pin(&self, name: &str) -> Result<(), EngineError> {
        self.part(name, true).await.map(|_| ())
    }

    /// Synthesizes one chunk's phonemes.
    pub async fn synthesize(
        &self,
        phonemes: &str,
        voice: &Voice,
        speed: f32,
        noise: SourceNoise,
    ) -> Result<ForwardOutput, EngineError> {
        let ids = self.vocab.encode(phonemes).ids;
        let style = VoicePack(voice.clone()).style_for(ids.len());
        let input = ForwardInput::new(ids, style).with_speed(speed).with_noise(noise);
        let out = match self.backend {
            Backend::WebGpu => self.kokoro.model.forward_async(&input, &self.device).await?,
            Backend::Cpu => self.kokoro.model.forward(&input, &self.device)?,
        };
        Ok(out)
    }
}

impl<S: VoiceStore> Engine<S> {
    /// Diagnostics: the first half of a forward pass stage by stage, each read back and summarized
    /// (`[name, values, NaNs, min, max, mean]`). Finds the stage where a device goes wrong.
    pub async fn probe_prosody(&self, phonemes: &str, voice: &Voice) -> Result<Vec<(String, TensorSummary)>, EngineError> {
        use burn::tensor::{Int, Tensor, TensorData};
        let m = &self.kokoro.model;
        let d = &self.device;
        let ids: Vec<i64> = std::iter::once(0).chain(self.vocab.encode(phonemes).ids.iter().map(|&i| i as i64)).chain([0]).collect();
        let n = ids.len();
        let style = VoicePack(voice.clone()).style_for(n - 2);
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), d);
        let style = Tensor::<2>::from_data(TensorData::new(style.0.to_vec(), [1, 256]), d).slice([0..1, 128..256]);
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

/// Count, NaNs, min, max and mean of a tensor's values.
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

/// Maps UTF-8 byte offsets of a text to UTF-16 offsets (JavaScript string indices).
struct Utf16Offsets {
    /// (byte offset, utf16 offset) at every char boundary, plus the end.
    table: Vec<(usize, usize)>,
}

impl Utf16Offsets {
    fn new(text: &str) -> Self {
        let mut table = Vec::with_capacity(text.len() + 1);
        let mut u = 0;
        for (b, c) in text.char_indices() {
            table.push((b, u));
            u += c.len_utf16();
        }
        table.push((text.len(), u));
        Self { table }
    }

    fn at(&self, byte: usize) -> usize {
        match self.table.binary_search_by_key(&byte, |&(b, _)| b) {
            Ok(i) => self.table[i].1,
            Err(i) => self.table[i.saturating_sub(1)].1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_offsets_count_surrogate_pairs() {
        let t = Utf16Offsets::new("é😀a");
        assert_eq!(t.at(0), 0);
        assert_eq!(t.at(2), 1); // after é (2 bytes, 1 unit)
        assert_eq!(t.at(6), 3); // after 😀 (4 bytes, 2 units)
        assert_eq!(t.at(7), 4);
    }
}
