//! The wasm-bindgen surface: what `worker/src/worker.js` calls. Results that are records cross as
//! JSON text (parsed on the JavaScript side); audio crosses as a `Float32Array`.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use js_sys::{Float32Array, Promise, Uint8Array};
use kokoro_engine::{Backend, ChunkOptions, Engine, EngineError, SourceNoise, TextStream, Utterance};
use kokoro_model::{Kokoro, eval};
use kokoro_voice::VoiceStore;
use serde_json::json;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::js::{ChunkInfo, StreamOffsets, Utf16Offsets};
use crate::store::JsVoiceStore;

#[wasm_bindgen(start)]
pub fn start() {
    // A panic reaches the console (console_error_panic_hook) and a global the worker reads after
    // the trap that follows, so that its error says what crashed rather than "unreachable".
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let _ = js_sys::Reflect::set(&js_sys::global(), &"kokoroLastPanic".into(), &info.to_string().into());
    }));
}

/// Sets the precision of the generator's resblock convolutions for this instance: "f32" (the
/// reference) or "int8" (the SIMD128 int8 kernel; fidelity in docs/validation.md). The CPU
/// backend only: on WebGPU the convolutions stay float32.
#[wasm_bindgen(js_name = setComputePrecision)]
pub fn set_compute_precision(precision: &str) -> Result<(), JsError> {
    let precision: kokoro_model::ComputePrecision = precision.parse().map_err(|e: String| JsError::new(&e))?;
    if !precision.available() {
        return Err(JsError::new(&format!("precision {} is not available in this build", precision.as_str())));
    }
    kokoro_model::set_compute_precision(precision);
    Ok(())
}

/// The speeds the model takes, `[MIN_SPEED, MAX_SPEED]`: the client checks a request against its
/// own copy (at once, without the worker), and the browser tests compare the two.
#[wasm_bindgen(js_name = speedRange)]
pub fn speed_range() -> Vec<f32> {
    vec![kokoro_model::MIN_SPEED, kokoro_model::MAX_SPEED]
}

thread_local! {
    /// Test hook: the next `synthesize` panics (see [`debug_trap_next_chunk`]).
    static TRAP_NEXT_CHUNK: Cell<bool> = const { Cell::new(false) };
}

/// Test hook: the next chunk this instance synthesizes panics inside its future, which traps the
/// instance the way a bug or an out-of-memory abort would (the promise never settles; the trap
/// surfaces as an uncaught `WebAssembly.RuntimeError`). The flag lives in this instance only.
#[wasm_bindgen(js_name = debugTrapNextChunk)]
pub fn debug_trap_next_chunk() {
    TRAP_NEXT_CHUNK.with(|t| t.set(true));
}

fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

/// An engine error as a JS `Error` with the engine's stable `code` (`unknown_voice`, `bad_text`,
/// ...), which the worker passes to the page whatever the message says.
fn engine_err(e: EngineError) -> JsValue {
    let error: JsValue = JsError::new(&e.to_string()).into();
    let _ = js_sys::Reflect::set(&error, &"code".into(), &e.code().into());
    error
}

/// The GPU's state, shared with wgpu's device-lost callback.
struct Gpu {
    setup: burn::tensor::wgpu::WgpuSetup,
    lost: Arc<AtomicBool>,
}

/// One loaded model and its voice cache. Methods that await return promises (wasm-bindgen cannot
/// hold `&self` across an await, so they clone the shared engine).
#[wasm_bindgen]
pub struct KokoroEngine {
    inner: Rc<Engine<JsVoiceStore>>,
    gpu: Option<Rc<Gpu>>,
    adapter: String,
}

#[wasm_bindgen]
impl KokoroEngine {
    /// Loads the canonical weights (`weights`: the safetensors file's bytes) onto `device`
    /// ("webgpu" or "cpu"); `store` is the JavaScript voice store; `voice_budget` bounds the
    /// in-memory voice cache in bytes.
    pub async fn create(weights: Uint8Array, device: String, store: JsValue, voice_budget: f64) -> Result<KokoroEngine, JsValue> {
        let (device_handle, backend, gpu, adapter) = match device.as_str() {
            "webgpu" => {
                let (d, setup) = Device::wgpu_options()
                    .init_with_setup_async()
                    .await
                    .map_err(|e| js_err(format!("WebGPU initialization failed: {e}")))?;
                let info = setup.adapter.get_info();
                let adapter = json!({
                    "name": info.name, "vendor": info.vendor, "device": info.device,
                    "driver": info.driver, "driverInfo": info.driver_info,
                    "deviceType": format!("{:?}", info.device_type), "backend": format!("{:?}", info.backend),
                })
                .to_string();
                let lost = Arc::new(AtomicBool::new(false));
                let flag = lost.clone();
                setup.device.set_device_lost_callback(move |_, _| flag.store(true, Ordering::SeqCst));
                (d, Backend::WebGpu, Some(Rc::new(Gpu { setup, lost })), adapter)
            }
            "cpu" => (Device::flex(), Backend::Cpu, None, json!({ "name": "burn-flex (wasm32)" }).to_string()),
            other => return Err(js_err(format!("unknown device {other:?}: use webgpu or cpu"))),
        };
        let bytes = weights.to_vec();
        let kokoro = Kokoro::from_canonical_bytes(&bytes, "model", &device_handle).map_err(js_err)?;
        drop(bytes);
        let engine = Engine::new(kokoro, device_handle, backend, JsVoiceStore::new(store), voice_budget as usize);
        Ok(KokoroEngine { inner: Rc::new(engine), gpu, adapter })
    }

    /// "webgpu" or "cpu".
    pub fn backend(&self) -> String {
        self.inner.backend().as_str().to_string()
    }

    /// The adapter as JSON (name, vendor, driver, backend; for the CPU its name only).
    #[wasm_bindgen(js_name = adapterInfo)]
    pub fn adapter_info(&self) -> String {
        self.adapter.clone()
    }

    /// Milliseconds spent parsing, dequantizing and uploading the weights.
    #[wasm_bindgen(js_name = loadMillis)]
    pub fn load_millis(&self) -> f64 {
        self.inner.load_time().as_secs_f64() * 1000.0
    }

    /// The chunks of `text` (JSON: [`ChunkInfo`]s). `pack`: sentences share a chunk while they fit
    /// (as reference Kokoro does); without, one chunk per sentence, for streaming.
    pub fn chunks(&self, text: &str, lang: &str, voice: &str, pack: bool) -> Result<String, JsValue> {
        let dialect = self.inner.dialect(Some(lang), voice).map_err(engine_err)?;
        let options = ChunkOptions { pack_sentences: pack, ..ChunkOptions::default() };
        let offsets = Utf16Offsets::new(text);
        let chunks = self
            .inner
            .plan(text, dialect, options)
            .map_err(engine_err)?
            .map(|u| u.map(|u| ChunkInfo::new(u, &offsets)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(engine_err)?;
        serde_json::to_string(&chunks).map_err(js_err)
    }

    /// A text stream: text pushed in pieces, chunked as it completes sentences (kokoro-text's
    /// chunker, as [`chunks`](Self::chunks) does for a whole text). `lang`, `voice` and `pack` as there.
    #[wasm_bindgen(js_name = textStream)]
    pub fn text_stream(&self, lang: &str, voice: &str, pack: bool) -> Result<KokoroTextStream, JsValue> {
        let dialect = self.inner.dialect(Some(lang), voice).map_err(engine_err)?;
        let options = ChunkOptions { pack_sentences: pack, ..ChunkOptions::default() };
        let stream = self.inner.text_stream(dialect, options).map_err(engine_err)?;
        Ok(KokoroTextStream { stream, offsets: StreamOffsets::new() })
    }

    #[wasm_bindgen(js_name = resolveVoice)]
    pub fn resolve_voice(&self, spec: String) -> Promise {
        let engine = self.inner.clone();
        future_to_promise(async move {
            engine.voice(&spec).await.map_err(engine_err)?;
            let key = engine.voice_key(&spec).map_err(engine_err)?;
            Ok(key.into())
        })
    }

    /// Speaks one chunk (JSON of a [`ChunkInfo`], as `chunks` gave it). Resolves to `{audio, meta}`:
    /// meta has `durations` (frames per token), `words` (`[text, startSample, endSample]` within this
    /// chunk's audio), `unknown` (phoneme characters dropped) and `timings` (ms per stage).
    /// `deterministic` zeroes the source noise (what the golden tests and the native comparison use).
    pub fn synthesize(&self, chunk: String, voice: String, speed: f32, deterministic: bool, seed: f64) -> Promise {
        let engine = self.inner.clone();
        let gpu = self.gpu.clone();
        future_to_promise(async move {
            if TRAP_NEXT_CHUNK.with(|t| t.replace(false)) {
                panic!("debugTrapNextChunk: simulated crash while synthesizing");
            }
            check_gpu(&gpu)?;
            let chunk: ChunkInfo = serde_json::from_str(&chunk).map_err(|e| js_err(format!("malformed chunk: {e}")))?;
            let noise = if deterministic { SourceNoise::Deterministic } else { SourceNoise::Seeded(seed as u64) };
            let v = engine.voice(&voice).await.map_err(engine_err)?;
            let out = engine.synthesize_async(&chunk.into_utterance(), &v, speed, noise).await.map_err(engine_err)?;
            // A device lost while this chunk ran may have produced garbage: fail it so the worker
            // redoes the chunk on the CPU.
            check_gpu(&gpu)?;
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
            let t = &out.timings;
            let meta = json!({
                "durations": out.durations,
                "words": out.words.iter().map(|(text, r)| json!([text, r.start, r.end])).collect::<Vec<_>>(),
                "unknown": out.unknown.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                "timings": { "bert": ms(t.bert), "predictor": ms(t.predictor), "textEncoder": ms(t.text_encoder),
                             "decoder": ms(t.decoder), "total": ms(t.total) },
            });
            let result = js_sys::Object::new();
            js_sys::Reflect::set(&result, &"audio".into(), &Float32Array::from(out.audio.as_slice()))?;
            js_sys::Reflect::set(&result, &"meta".into(), &meta.to_string().into())?;
            Ok(result.into())
        })
    }

    /// Diagnostics: the prosody stages of `phonemes` summarized as JSON (see `Engine::probe_prosody`).
    #[wasm_bindgen(js_name = probeProsody)]
    pub fn probe_prosody(&self, phonemes: String, voice: String) -> Promise {
        let engine = self.inner.clone();
        future_to_promise(async move {
            let v = engine.voice(&voice).await.map_err(engine_err)?;
            let stages = engine.probe_prosody(&phonemes, &v).await.map_err(engine_err)?;
            Ok(serde_json::to_string(&stages).map_err(js_err)?.into())
        })
    }

    /// Loads and pins each voice in `names`; resolves when all are in memory.
    pub fn pin(&self, name: String) -> Promise {
        let engine = self.inner.clone();
        future_to_promise(async move {
            engine.pin(&name).await.map_err(engine_err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Drops a voice (or mix key) from memory; true if it was there.
    pub fn evict(&self, key: &str) -> bool {
        self.inner.voice_cache().remove(key)
    }

    /// Unpins a voice so that it can be evicted again.
    pub fn unpin(&self, key: &str) {
        self.inner.voice_cache().unpin(key)
    }

    /// Sets the in-memory voice budget in bytes (evicting to fit).
    #[wasm_bindgen(js_name = setVoiceBudget)]
    pub fn set_voice_budget(&self, bytes: f64) {
        self.inner.voice_cache().resize(bytes as usize)
    }

    /// The in-memory voice cache as JSON: budget, bytes, entries (most recent first), counters.
    #[wasm_bindgen(js_name = cacheStats)]
    pub fn cache_stats(&self) -> String {
        let s = self.inner.voice_cache().snapshot();
        let lookups = s.stats.hits + s.stats.misses;
        json!({
            "budget": s.budget,
            "bytes": s.bytes,
            "entries": s.entries.iter().map(|e| json!({
                "key": e.key, "bytes": e.bytes, "pinned": e.pinned, "hits": e.hits,
                "loadMs": e.load_time.as_secs_f64() * 1000.0,
            })).collect::<Vec<_>>(),
            "hits": s.stats.hits,
            "misses": s.stats.misses,
            "loads": s.stats.loads,
            "loadFailures": s.stats.load_failures,
            "evictions": s.stats.evictions,
            "hitRate": if lookups == 0 { 0.0 } else { s.stats.hits as f64 / lookups as f64 },
        })
        .to_string()
    }

    /// The voices the store lists, as `{ name, language, gender }` objects. Language (`"en-us"`)
    /// and gender (`"female"`/`"male"`) come from the voice manifest compiled into the engine;
    /// both are null for a voice it does not list, rather than guessed from the name.
    pub fn voices(&self) -> Promise {
        let engine = self.inner.clone();
        future_to_promise(async move {
            let names = engine.store().list().await.map_err(js_err)?;
            let manifest = kokoro_voice::Manifest::bundled();
            let voices: Vec<serde_json::Value> = names
                .iter()
                .map(|name| {
                    let entry = manifest.get(name);
                    json!({ "name": name, "language": entry.map(|e| &e.language), "gender": entry.map(|e| e.gender) })
                })
                .collect();
            // Parsed by the browser into plain objects, which cross the worker's postMessage as
            // they are (no wasm-bindgen class to copy out or free).
            js_sys::JSON::parse(&serde_json::Value::from(voices).to_string())
        })
    }

    /// Destroys the GPU device, as a driver reset or a lost adapter would (tests and the demo's
    /// "simulate device loss" use it). False on the CPU.
    #[wasm_bindgen(js_name = loseDevice)]
    pub fn lose_device(&self) -> bool {
        match &self.gpu {
            Some(gpu) => {
                gpu.setup.device.destroy();
                true
            }
            None => false,
        }
    }

    /// Has the GPU device been lost?
    #[wasm_bindgen(js_name = deviceLost)]
    pub fn device_lost(&self) -> bool {
        self.gpu.as_ref().is_some_and(|g| g.lost.load(Ordering::SeqCst))
    }
}

/// The chunker of one text stream (see `kokoro_engine::TextStream`). Each call returns the chunks
/// it completed as JSON [`ChunkInfo`]s, their offsets in UTF-16 units from the start of everything
/// pushed (what `String.prototype.slice` takes on the worker's copy of the text). It lives in one
/// wasm instance: after a restart the worker builds a new one and pushes the text again.
#[wasm_bindgen]
pub struct KokoroTextStream {
    stream: TextStream,
    offsets: StreamOffsets,
}

#[wasm_bindgen]
impl KokoroTextStream {
    /// Adds text; the chunks it completed.
    pub fn push(&mut self, text: &str) -> Result<String, JsValue> {
        self.offsets.push(text);
        let made = self.stream.push(text);
        stream_chunks(made, &mut self.offsets, self.stream.settled())
    }

    /// The chunks of everything pushed so far, the sentence under way included; the stream goes on.
    pub fn flush(&mut self) -> Result<String, JsValue> {
        let made = self.stream.flush();
        stream_chunks(made, &mut self.offsets, self.stream.settled())
    }

    /// The last chunks; the stream is used up.
    pub fn finish(self) -> Result<String, JsValue> {
        let Self { stream, mut offsets } = self;
        let end = stream.len();
        stream_chunks(stream.finish(), &mut offsets, end)
    }
}

/// Chunks as JSON (the first error fails the call, with its code, as `chunks` does); then the
/// offsets before `settled` are forgotten.
fn stream_chunks(made: Vec<Result<Utterance, EngineError>>, offsets: &mut StreamOffsets, settled: usize) -> Result<String, JsValue> {
    let chunks = made.into_iter().map(|u| u.map(|u| ChunkInfo::new(u, &*offsets))).collect::<Result<Vec<_>, _>>().map_err(engine_err)?;
    offsets.forget_before(settled);
    serde_json::to_string(&chunks).map_err(js_err)
}

fn check_gpu(gpu: &Option<Rc<Gpu>>) -> Result<(), JsValue> {
    match gpu {
        Some(g) if g.lost.load(Ordering::SeqCst) => {
            let e = JsError::new("GPU device lost");
            let v: JsValue = e.into();
            js_sys::Reflect::set(&v, &"name".into(), &"DeviceLost".into())?;
            Err(v)
        }
        _ => Ok(()),
    }
}

/// Log-mel distance between two 24 kHz signals (mean absolute difference of log-mel frames; the
/// measure the golden tests use), for comparing the browser's audio with the native build's. Fails
/// (an error, not a trap) when they share fewer samples than one spectrogram frame takes.
#[wasm_bindgen(js_name = logMelDistance)]
pub fn log_mel_distance(a: &[f32], b: &[f32]) -> Result<f64, JsValue> {
    eval::try_log_mel_distance(a, b).map_err(js_err)
}

/// Diagnostics: elementwise ops the model uses, evaluated on `device` ("webgpu" or "cpu") at
/// values from -100 to 100, as JSON `{op: [values]}`. Compared with the CPU, it shows a device's
/// numerical problems (a `tanh` that returns NaN for large inputs, say).
#[wasm_bindgen(js_name = probeOps)]
pub async fn probe_ops(device: String) -> Result<String, JsValue> {
    use burn::tensor::{Tensor, TensorData, activation};
    let device = match device.as_str() {
        "webgpu" => Device::wgpu_options().init_async().await.map_err(js_err)?,
        _ => Device::flex(),
    };
    let xs = vec![-100.0f32, -20.0, -1.0, 0.0, 1.0, 20.0, 100.0];
    let x = Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device);
    let ops: Vec<(&str, Tensor<1>)> = vec![
        ("tanh", activation::tanh(x.clone())),
        ("sigmoid", activation::sigmoid(x.clone())),
        ("exp", x.clone().exp()),
        ("sin", x.clone().sin()),
        ("sqrt_abs", x.clone().abs().sqrt()),
        ("gelu", activation::gelu(x.clone())),
        ("leaky_relu", activation::leaky_relu(x.clone(), 0.01)),
        ("sum", x.clone().sum()),
    ];
    let mut out = serde_json::Map::new();
    out.insert("x".into(), json!(xs));
    for (name, t) in ops {
        let v = t.into_data_async().await.map_err(|e| js_err(format!("{e:?}")))?.try_to_vec::<f32>().map_err(|e| js_err(format!("{e:?}")))?;
        out.insert(name.into(), json!(v.iter().map(|v| if v.is_finite() { json!(v) } else { json!(v.to_string()) }).collect::<Vec<_>>()));
    }
    Ok(serde_json::Value::Object(out).to_string())
}
