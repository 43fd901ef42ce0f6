// The Web Worker that hosts the engine (kokoro-wasm). Every heavy step runs here: the model
// download, weight loading, G2P, synthesis. The page talks to it through `index.js`.
//
// Protocol: requests {type, id, ...}; answers {type: 'result'|'error'|'progress'|'chunk'|'log', id, ...}.
// Two messages concern a running `generate` and get no answer: {type: 'ack', id} (the page has
// taken the chunk sent last, so the worker starts the next one) and {type: 'cancel', id}.

import { IdbVoiceStore, isQuotaError } from './voice-store.js';

const MODEL_CACHE = 'kokoro-burn-model-v1';
let wasm = null;        // the imported glue module
let instances = 0;      // how many times the wasm was instantiated (a crash or a lost GPU re-instantiates it)
let engine = null;
let store = null;
let options = null;
const info = { backend: null, adapter: null, loadMs: null, modelBytes: null, modelFrom: null, fallback: null, wasmMs: null, speedRange: null };
const active = new Set();     // generate requests queued or running
// The worker's scheduler: one synthesis at a time, the most urgent first. A request's rank is
// its class (interactive 0, default 1, bulk 2) times AGING_MS minus the time it waited, so waiting
// AGING_MS lifts it one class and bulk work never starves (the native scheduler's rule).
const AGING_MS = 5000;
const RANK = { interactive: 0, default: 1, bulk: 2 };
const waitingTurn = [];       // {id, m, rank, at, seq, resolve, reject}
let turnSeq = 0;
let running = false;
const cancelled = new Set();  // ... and of those, the ones cancelled
const waiting = new Map();    // request id -> resolve: a sent chunk waits for the page's ack (or a cancel)
let gpuInfo = null;
let restarting = null;        // a restart in progress (requests wait for it)
let restartError = null;      // why the last restart failed, if it did
let debugTraps = 0;           // test hook: how many of the next chunks trap the instance (debug.trapNextChunks)

const post = (msg, transfer) => self.postMessage(msg, transfer || []);
const log = (id) => (event) => post({ type: 'log', id, event: { t: Date.now(), ...event } });
// A task after the messages already queued for this worker: a message to itself goes through the
// same task source as the page's messages (a timer's task source need not keep that order).
const yieldChannel = new MessageChannel();
const nextTask = () => new Promise((r) => { yieldChannel.port1.onmessage = () => r(); yieldChannel.port2.postMessage(0); });

// A trap in the wasm (a Rust panic, an out-of-memory abort) ends that instance: Rust's state may be
// half-updated and its futures executor stops, so a promise the trap interrupted never settles.
// A trap reaches this worker either thrown from a synchronous export or as an uncaught
// WebAssembly.RuntimeError from the executor's microtask; both mark the instance crashed, every
// call waiting on it fails with the crash, and the next request runs on a new instance.
const isTrap = (e) => e instanceof WebAssembly.RuntimeError;
let crash = crashGuard();

function crashGuard() {
  let fail;
  const failed = new Promise((_, reject) => { fail = reject; });
  failed.catch(() => {});       // raced by `guarded`; nobody else listens
  return { error: null, fail, failed };
}

function crashed(trap) {
  if (!crash.error) {
    // The engine's panic hook left the panic's message here just before the trap.
    const panic = self.kokoroLastPanic?.replace(/\s*\n\s*/g, ' ');
    self.kokoroLastPanic = undefined;
    crash.error = Object.assign(new Error(`the engine crashed: ${panic ?? trap?.message ?? trap}`), { name: 'EngineCrash' });
    crash.fail(crash.error);
  }
  return crash.error;
}

for (const [type, key] of [['error', 'error'], ['unhandledrejection', 'reason']]) {
  self.addEventListener(type, (ev) => {
    if (!isTrap(ev[key])) return;
    ev.preventDefault();        // handled here: the page's client must not take it for a dead worker
    crashed(ev[key]);
  });
}

/** `f()`, a call into the engine; fails with the crash if the instance traps before it settles. */
async function guarded(f) {
  if (crash.error) throw crash.error;
  try {
    return await Promise.race([f(), crash.failed]);
  } catch (e) {
    throw isTrap(e) ? crashed(e) : e;
  }
}

async function instantiate() {
  const t0 = performance.now();
  // A fresh module record per instance: after a trap the old instance's memory may be
  // inconsistent, so the new engine starts from a clean one.
  const glue = await import(instances === 0 ? './pkg/kokoro_wasm.js' : `./pkg/kokoro_wasm.js?instance=${instances}`);
  await glue.default({ module_or_path: new URL('./pkg/kokoro_wasm_bg.wasm', import.meta.url) });
  instances += 1;
  info.wasmMs = performance.now() - t0;
  info.speedRange = Array.from(glue.speedRange());
  wasm = glue;
  crash = crashGuard();
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
  const e = await guarded(() => wasm.KokoroEngine.create(bytes, device, store, options.voiceBudgetBytes));
  info.loadMs = performance.now() - t0;
  info.backend = e.backend();
  info.adapter = info.backend === 'webgpu' ? { ...JSON.parse(e.adapterInfo()), ...gpuInfo } : JSON.parse(e.adapterInfo());
  return e;
}

/** Voices pre-warmed in an earlier session (or before a restart): pinned in memory again, from IndexedDB. */
async function repin() {
  const warm = await store.prewarmState();
  for (const name of warm?.done ?? []) {
    try { await guarded(() => engine.pin(name)); } catch (e) { if (e?.name === 'EngineCrash') throw e; /* evicted since: it loads on first use */ }
  }
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
  await repin();
  progress({ phase: 'ready' });
  return status();
}

function status() {
  return { ...info, instances, lost: engine && !crash.error ? engine.deviceLost() : false };
}

/**
 * A new instance and engine after a crash (on either backend) or a failure of the GPU: on the CPU
 * (a GPU that failed once is not trusted again), same model and options, pre-warmed voices pinned.
 */
function restart(id, error) {
  restarting ??= (async () => {
    const from = info.backend;
    const crashOf = error?.name === 'EngineCrash';
    const reason = crashOf ? error.message : error?.name === 'DeviceLost' ? 'GPU device lost' : `GPU failure: ${error?.message ?? error}`;
    post({ type: 'log', id, event: { t: Date.now(), event: crashOf ? 'restart' : 'fallback', from, to: 'cpu', reason } });
    if (!crash.error) {
      try { engine.free(); } catch (_) { /* freeing is best effort: the instance is dropped anyway */ }
    }
    engine = null;
    try {
      await instantiate();
      engine = await createEngine('cpu', (p) => post({ type: 'progress', id, progress: p }));
      await repin();
      restartError = null;
    } catch (e) {
      engine = null;
      restartError = new Error(`the engine could not restart after "${reason}": ${e?.message ?? e}`);
      throw restartError;
    }
    if (from === 'webgpu') info.fallback = { from: 'webgpu', reason, at: Date.now() };
  })().finally(() => { restarting = null; });
  return restarting;
}

/** Before a request that uses the engine: wait for a restart under way, restart a crashed instance. */
async function ready(id) {
  if (restarting) await restarting.catch(() => {});
  if (engine && crash.error) await restart(id, crash.error);
  if (!engine) throw restartError ?? new Error('the engine is not loaded');
}

/** The worker's own account of a request, for logs and tests: start, then end with what it did. */
const requestEvent = (id, state, extra = {}) => post({ type: 'log', id, event: { t: Date.now(), event: 'request', id, state, ...extra } });

async function generate(id, m) {
  const counts = { synthesized: 0, posted: 0 };
  requestEvent(id, 'start');
  try {
    const value = await speak(id, m, counts);
    requestEvent(id, 'end', { outcome: 'done', ...counts });
    return value;
  } catch (e) {
    requestEvent(id, 'end', { outcome: e?.name === 'AbortError' ? 'cancelled' : 'failed', error: e?.message, ...counts });
    throw e;
  }
}

async function speak(id, { text, voice = 'af_heart', speed = 1, lang = '', deterministic = false, seed = 0, pack = true }, counts) {
  const stopIfCancelled = () => { if (cancelled.has(id)) throw new DOMException('generation cancelled', 'AbortError'); };
  stopIfCancelled();                          // cancelled while queued: no work at all
  await ready(id);
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  if (text.length > (options.maxTextLength ?? 1_000_000)) throw new RangeError(`text is ${text.length} characters; the limit is ${options.maxTextLength ?? 1_000_000}`);
  await guarded(() => engine.resolveVoice(voice));   // a bad or unknown voice fails before any work
  const chunks = JSON.parse(await guarded(() => engine.chunks(text, lang, voice, pack)));
  const totalPhonemes = chunks.reduce((s, c) => s + c.phonemes.length, 0);
  const t0 = performance.now();
  let donePhonemes = 0;
  let samples = 0;
  for (const c of chunks) {
    const r = await synthesize(id, c, { voice, speed, deterministic, seed });
    counts.synthesized += 1;
    // On the CPU a chunk holds this thread: a cancel sent meanwhile is still queued. Let it in, and
    // drop the chunk if the page no longer wants it.
    await nextTask();
    stopIfCancelled();
    const meta = JSON.parse(r.meta);
    // Word times in seconds from the start of the whole audio, counted in samples (no drift).
    meta.words = meta.words.map(([word, start, end]) => ({ text: word, start: (samples + start) / 24000, end: (samples + end) / 24000 }));
    donePhonemes += c.phonemes.length;
    samples += r.audio.length;
    const elapsed = performance.now() - t0;
    post({ type: 'chunk', id, chunk: { ...c, text: text.slice(c.start, c.end), audio: r.audio, sampleRate: 24000, backend: info.backend, ...meta } }, [r.audio.buffer]);
    counts.posted += 1;
    post({ type: 'progress', id, progress: { phase: 'synthesize', chunk: c.index + 1, chunks: chunks.length, percent: 100 * donePhonemes / totalPhonemes,
      elapsedMs: elapsed, etaMs: elapsed / donePhonemes * (totalPhonemes - donePhonemes), audioSeconds: samples / 24000 } });
    // The next chunk starts once the page has taken this one: an abort from its onChunk arrives
    // first, so the worker stops without starting work nobody wants (and never runs ahead of the page).
    if (c.index + 1 < chunks.length) await new Promise((resolve) => waiting.set(id, resolve));
    stopIfCancelled();
  }
  return { chunkCount: chunks.length, samples, sampleRate: 24000, ms: performance.now() - t0, backend: info.backend };
}

/** One chunk. A crash (either backend) or any failure on the GPU: a new instance on the CPU redoes it, once. */
async function synthesize(id, c, { voice, speed, deterministic, seed }) {
  const run = () => guarded(() => {
    if (debugTraps > 0) { debugTraps -= 1; wasm.debugTrapNextChunk(); }
    return engine.synthesize(JSON.stringify(c), voice, speed, deterministic, seed + c.index);
  });
  try {
    return await run();
  } catch (e) {
    if (e?.name !== 'EngineCrash' && info.backend !== 'webgpu') throw e;
    await restart(id, e);
    return await run();
  }
}

/** Runs the waiting requests one at a time, the lowest rank (class x aging - waited) first. */
async function runQueue() {
  if (running) return;
  running = true;
  while (waitingTurn.length) {
    const now = performance.now();
    const score = (r) => r.rank * AGING_MS - (now - r.at);
    let best = 0;
    for (let i = 1; i < waitingTurn.length; i++) {
      const d = score(waitingTurn[i]) - score(waitingTurn[best]);
      if (d < 0 || (d === 0 && waitingTurn[i].seq < waitingTurn[best].seq)) best = i;
    }
    const r = waitingTurn.splice(best, 1)[0];
    try {
      r.resolve(await generate(r.id, r.m));
    } catch (e) {
      r.reject(e);
    } finally {
      active.delete(r.id); cancelled.delete(r.id); waiting.delete(r.id);
    }
  }
  running = false;
}

const handlers = {
  load: (id, m) => load(id, m.options),
  // One synthesis at a time, by priority with aging (a request waiting its turn is cancellable).
  generate: (id, m) => {
    active.add(id);
    return new Promise((resolve, reject) => {
      waitingTurn.push({ id, m, rank: RANK[m.priority] ?? RANK.default, at: performance.now(), seq: turnSeq++, resolve, reject });
      runQueue();
    });
  },
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
  'debug.trapNextChunks': async (_, m) => { debugTraps = m.count; return true; },
  // A crash that kills the worker: an uncaught error, then nothing more (as when it is torn down).
  'debug.crash': async () => { setTimeout(() => { self.close(); throw new Error('debug.crash: simulated worker crash'); }); return true; },
  'debug.probeProsody': async (_, m) => JSON.parse(await engine.probeProsody(m.phonemes, m.voice)),
  'debug.logMelDistance': async (_, m) => wasm.logMelDistance(m.a, m.b),
};

self.onmessage = async ({ data }) => {
  const { type, id } = data;
  if (type === 'ack' || type === 'cancel') {
    if (type === 'cancel' && active.has(id)) cancelled.add(id);
    waiting.get(id)?.();
    waiting.delete(id);
    return;
  }
  const handler = handlers[type];
  try {
    if (!handler) throw new Error(`unknown request ${type}`);
    // `generate` waits for the engine in its turn (and survives a crash); `info` needs no engine; the
    // others wait for it now.
    const own = type === 'load' || type === 'generate' || type === 'info';
    const value = own ? await handler(id, data) : await ready(id).then(() => guarded(() => handler(id, data)));
    post({ type: 'result', id, value });
  } catch (e) {
    post({ type: 'error', id, error: { name: e?.name ?? 'Error', message: e?.message ?? String(e), code: e?.code } });
  }
};
