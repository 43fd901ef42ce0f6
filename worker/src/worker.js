// The Web Worker that hosts the engine (kokoro-wasm). Every heavy step runs here: the model
// download, weight loading, G2P, synthesis. The page talks to it through `index.js`.
//
// Protocol: requests {type, id, ...}; answers {type: 'result'|'error'|'progress'|'chunk', id, ...}.

import { IdbVoiceStore, isQuotaError } from './voice-store.js';

const MODEL_CACHE = 'kokoro-burn-model-v1';
let wasm = null;        // the imported glue module
let instances = 0;      // how many times the wasm was instantiated (a lost GPU re-instantiates it)
let engine = null;
let store = null;
let options = null;
const info = { backend: null, adapter: null, loadMs: null, modelBytes: null, modelFrom: null, fallback: null, wasmMs: null };
const cancelled = new Set();
let queue = Promise.resolve();
let gpuInfo = null;

const post = (msg, transfer) => self.postMessage(msg, transfer || []);
const log = (id) => (event) => post({ type: 'log', id, event: { t: Date.now(), ...event } });

async function instantiate() {
  const t0 = performance.now();
  // A fresh module record per instance: after a WebAssembly trap (a lost GPU can cause one) the
  // old instance's memory may be inconsistent, so the CPU fallback starts from a clean one.
  const glue = await import(instances === 0 ? './pkg/kokoro_wasm.js' : `./pkg/kokoro_wasm.js?instance=${instances}`);
  await glue.default({ module_or_path: new URL('./pkg/kokoro_wasm_bg.wasm', import.meta.url) });
  instances += 1;
  info.wasmMs = performance.now() - t0;
  wasm = glue;
}

/** The model file's bytes, from the Cache API, else downloaded (with progress) and kept there. */
async function modelBytes(url, progress) {
  const cache = await caches.open(MODEL_CACHE);
  let resp = await cache.match(url);
  const cached = !!resp;
  if (!resp) {
    resp = await fetch(url);
    if (!resp.ok) throw new Error(`model download failed: HTTP ${resp.status} from ${url}`);
  }
  const total = Number(resp.headers.get('content-length')) || 0;
  const reader = resp.body.getReader();
  const parts = [];
  let loaded = 0;
  const t0 = performance.now();
  let last = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.byteLength;
    const now = performance.now();
    if (now - last > 100 || loaded === total) {
      last = now;
      const rate = loaded / Math.max(1, now - t0) * 1000;
      progress({ phase: cached ? 'cache' : 'download', loaded, total, percent: total ? 100 * loaded / total : null,
                 bytesPerSecond: rate, etaSeconds: total ? (total - loaded) / Math.max(rate, 1) : null });
    }
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const p of parts) { bytes.set(p, at); at += p.byteLength; }
  if (!cached) {
    try {
      await cache.put(url, new Response(bytes, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(loaded) } }));
    } catch (e) {
      // Out of quota: keep going without the cached copy (the next load downloads again).
      progress({ phase: 'cache', warning: `model not cached: ${e.message}`, quota: isQuotaError(e) });
    }
  }
  info.modelBytes = loaded;
  info.modelFrom = cached ? 'cache' : 'network';
  return bytes;
}

async function webgpuUsable() {
  if (!self.navigator.gpu) return 'this browser has no WebGPU (navigator.gpu is missing)';
  const adapter = await self.navigator.gpu.requestAdapter();
  if (!adapter) return 'no WebGPU adapter';
  // wgpu's browser backend leaves its adapter info empty: keep what the browser says.
  const i = adapter.info || {};
  gpuInfo = { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
              isFallbackAdapter: adapter.isFallbackAdapter ?? i.isFallbackAdapter, features: [...adapter.features] };
  return null;
}

async function createEngine(device, progress) {
  const bytes = await modelBytes(options.modelUrl, progress);
  progress({ phase: 'init', device });
  const t0 = performance.now();
  const e = await wasm.KokoroEngine.create(bytes, device, store, options.voiceBudgetBytes);
  info.loadMs = performance.now() - t0;
  info.backend = e.backend();
  info.adapter = info.backend === 'webgpu' ? { ...JSON.parse(e.adapterInfo()), ...gpuInfo } : JSON.parse(e.adapterInfo());
  return e;
}

async function load(id, opts) {
  options = { device: 'auto', voiceBudgetBytes: 16 << 20, storeBudgetBytes: 64 << 20, ...opts };
  const progress = (p) => post({ type: 'progress', id, progress: p });
  store = await IdbVoiceStore.open({ voicesUrl: options.voicesUrl, budgetBytes: options.storeBudgetBytes, log: log(id) });
  await instantiate();
  let device = options.device;
  if (device === 'webgpu') await webgpuUsable();
  if (device === 'auto') {
    const why = await webgpuUsable();
    device = why ? 'cpu' : 'webgpu';
    if (why) info.fallback = { from: 'webgpu', reason: why };
  }
  try {
    engine = await createEngine(device, progress);
  } catch (e) {
    if (device !== 'webgpu' || options.device === 'webgpu' && options.strict) throw e;
    info.fallback = { from: 'webgpu', reason: e.message };
    post({ type: 'log', id, event: { event: 'fallback', reason: e.message } });
    await instantiate();
    engine = await createEngine('cpu', progress);
  }
  // Voices pre-warmed in an earlier session: pin them in memory again, from IndexedDB (no network).
  const warm = await store.prewarmState();
  for (const name of warm?.done ?? []) {
    try { await engine.pin(name); } catch (_) { /* evicted since: it loads on first use */ }
  }
  progress({ phase: 'ready' });
  return status();
}

function status() {
  return { ...info, instances, lost: engine ? engine.deviceLost() : false };
}

/** A failure of the GPU (lost device, trap): move to the CPU and keep going. */
async function fallbackToCpu(id, error) {
  const reason = error?.name === 'DeviceLost' ? 'GPU device lost' : `GPU failure: ${error?.message ?? error}`;
  post({ type: 'log', id, event: { t: Date.now(), event: 'fallback', from: info.backend, reason } });
  try { engine.free(); } catch (_) { /* a trapped instance cannot free */ }
  engine = null;
  await instantiate();
  engine = await createEngine('cpu', (p) => post({ type: 'progress', id, progress: p }));
  info.fallback = { from: 'webgpu', reason, at: Date.now() };
}

async function generate(id, { text, voice = 'af_heart', speed = 1, lang = '', deterministic = false, seed = 0, pack = true }) {
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  if (text.length > (options.maxTextLength ?? 1_000_000)) throw new RangeError(`text is ${text.length} characters; the limit is ${options.maxTextLength ?? 1_000_000}`);
  await engine.resolveVoice(voice);           // a bad or unknown voice fails before any work
  const chunks = JSON.parse(engine.chunks(text, lang, voice, pack));
  const totalPhonemes = chunks.reduce((s, c) => s + c.phonemes.length, 0);
  const t0 = performance.now();
  let donePhonemes = 0;
  let samples = 0;
  for (const c of chunks) {
    if (cancelled.has(id)) throw new DOMException('generation cancelled', 'AbortError');
    let r;
    const backend = engine.backend();
    try {
      r = await engine.synthesize(c.phonemes, voice, speed, deterministic, seed + c.index);
    } catch (e) {
      if (backend !== 'webgpu') throw e;
      await fallbackToCpu(id, e);
      r = await engine.synthesize(c.phonemes, voice, speed, deterministic, seed + c.index);
    }
    const meta = JSON.parse(r.meta);
    donePhonemes += c.phonemes.length;
    samples += r.audio.length;
    const elapsed = performance.now() - t0;
    post({ type: 'chunk', id, chunk: { ...c, text: text.slice(c.start, c.end), audio: r.audio, sampleRate: 24000, backend: engine.backend(), ...meta } }, [r.audio.buffer]);
    post({ type: 'progress', id, progress: { phase: 'synthesize', chunk: c.index + 1, chunks: chunks.length, percent: 100 * donePhonemes / totalPhonemes,
      elapsedMs: elapsed, etaMs: elapsed / donePhonemes * (totalPhonemes - donePhonemes), audioSeconds: samples / 24000 } });
    // Yield so that a cancel message can arrive between chunks.
    await new Promise((r) => setTimeout(r, 0));
  }
  return { chunkCount: chunks.length, samples, sampleRate: 24000, ms: performance.now() - t0, backend: engine.backend() };
}

const handlers = {
  load: (id, m) => load(id, m.options),
  // One synthesis at a time, in arrival order (a second request waits, cancellable meanwhile).
  generate: (id, m) => (queue = queue.catch(() => {}).then(() => generate(id, m))),
  cancel: async (_, m) => { cancelled.add(m.target); return true; },
  info: async () => status(),
  voices: async () => engine.voices(),
  'cache.stats': async () => ({ memory: JSON.parse(engine.cacheStats()), store: await store.stats() }),
  'cache.prewarm': async (id, m) => {
    const state = await store.prewarm(m.names, (p) => post({ type: 'progress', id, progress: p }));
    for (const name of state.done) await engine.pin(name);
    return state;
  },
  'cache.evict': async (_, m) => ({ memory: engine.evict(m.name), store: await store.evict(m.name) }),
  'cache.setBudget': async (_, m) => {
    if (m.memoryBytes != null) engine.setVoiceBudget(m.memoryBytes);
    if (m.storeBytes != null) await store.setBudget(m.storeBytes);
    return true;
  },
  'debug.loseDevice': async () => engine.loseDevice(),
  'debug.failStoreWrites': async (_, m) => { store.failWrites = m.count; return true; },
  'debug.probeProsody': async (_, m) => JSON.parse(await engine.probeProsody(m.phonemes, m.voice)),
  'debug.logMelDistance': async (_, m) => wasm.logMelDistance(m.a, m.b),
};

self.onmessage = async ({ data }) => {
  const { type, id } = data;
  const handler = handlers[type];
  try {
    if (!handler) throw new Error(`unknown request ${type}`);
    if (type !== 'load' && type !== 'cancel' && !engine) throw new Error('the engine is not loaded');
    const value = await handler(id, data);
    post({ type: 'result', id, value });
  } catch (e) {
    post({ type: 'error', id, error: { name: e?.name ?? 'Error', message: e?.message ?? String(e) } });
  } finally {
    if (type === 'generate') cancelled.delete(id);
  }
};
