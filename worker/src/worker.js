// @ts-check
// The Web Worker that hosts the engine (kokoro-wasm). Every heavy step runs here: the model
// download, weight loading, G2P, synthesis. The page talks to it through `index.js`.
//
// Protocol (every message typed in protocol.d.ts): requests {type, id, ...}; answers {type:
// 'result'|'error'|'progress'|'chunk'|'log', id, ...}. Notices concern a running synthesis request
// and get no answer: {type: 'ack', id} (the page has taken the chunk sent last, so the worker starts
// the next one), {type: 'cancel', id}, and a text stream's {type: 'stream.push', id, text},
// {type: 'stream.flush', id} and {type: 'stream.close', id}.

/** @typedef {import('./protocol').ToWorker} ToWorker */
/** @typedef {import('./protocol').FromWorker} FromWorker */
/** @typedef {import('./protocol').Notice} Notice */
/** @typedef {import('./protocol').RequestType} RequestType */
/** @typedef {import('./protocol').SynthesisOptions} SynthesisOptions */
/** @typedef {import('./protocol').SynthesisSummary} SynthesisSummary */
/** @typedef {{ index: number, start: number, end: number, phonemes: string, guessed: string[], words: unknown[] }} WorkerChunk a chunk as the engine hands it out (kokoro-wasm's ChunkInfo) */

import { IdbVoiceStore, isQuotaError } from './voice-store.js';

const MODEL_CACHE = 'kokoro-burn-model-v1';
let wasm = null;        // the imported glue module
let instances = 0;      // how many times the wasm was instantiated (a crash or a lost GPU re-instantiates it)
let engine = null;
let store = null;
/** @type {Record<string, any>} the load options */
let options = {};
/** What info() reports (EngineInfo once loaded; nulls before). @type {Record<string, any>} */
const info = { backend: null, adapter: null, loadMs: null, modelBytes: null, modelFrom: null, fallback: null, wasmMs: null, speedRange: null };
const active = new Set();     // generate requests queued or running
// The worker's scheduler: one synthesis at a time, the most urgent first. A request's rank is
// its class (interactive 0, default 1, bulk 2) times AGING_MS minus the time it waited, so waiting
// AGING_MS lifts it one class and bulk work never starves (the native scheduler's rule).
const AGING_MS = 5000;
const RANK = { interactive: 0, default: 1, bulk: 2 };
let running = false;
const cancelled = new Set();  // ... and of those, the ones cancelled
const waiting = new Map();    // request id -> resolve: a sent chunk waits for the page's ack (or a cancel)
let gpuInfo = null;
let restarting = null;        // a restart in progress (requests wait for it)
let restartError = null;      // why the last restart failed, if it did
let debugTraps = 0;           // test hook: how many of the next chunks trap the instance (debug.trapNextChunks)

/** @param {FromWorker} msg @param {Transferable[]} [transfer] */
const post = (msg, transfer) => self.postMessage(msg, { transfer: transfer || [] });
const log = (id) => (event) => post({ type: 'log', id, event: { t: Date.now(), ...event } });
// A task after the messages already queued for this worker: a message to itself goes through the
// same task source as the page's messages (a timer's task source need not keep that order).
const yieldChannel = new MessageChannel();
const nextTask = () => /** @type {Promise<void>} */ (new Promise((r) => { yieldChannel.port1.onmessage = () => r(); yieldChannel.port2.postMessage(0); }));

// A trap in the wasm (a Rust panic, an out-of-memory abort) ends that instance: Rust's state may be
// half-updated and its futures executor stops, so a promise the trap interrupted never settles.
// A trap reaches this worker either thrown from a synchronous export or as an uncaught
// WebAssembly.RuntimeError from the executor's microtask; both mark the instance crashed, every
// call waiting on it fails with the crash, and the next request runs on a new instance.
const isTrap = (e) => e instanceof WebAssembly.RuntimeError;
let crash = crashGuard();

/** @returns {{ error: Error | null, fail: (e: Error) => void, failed: Promise<never> }} */
function crashGuard() {
  /** @type {(e: Error) => void} */
  let fail = () => {};
  const failed = /** @type {Promise<never>} */ (new Promise((_, reject) => { fail = reject; }));
  failed.catch(() => {});       // raced by `guarded`; nobody else listens
  return { error: null, fail, failed };
}

function crashed(trap) {
  if (!crash.error) {
    // The engine's panic hook left the panic's message here just before the trap.
    // (a global of the worker, which the page's `dom` types do not know)
    const scope = /** @type {any} */ (self);
    const panic = scope.kokoroLastPanic?.replace(/\s*\n\s*/g, ' ');
    scope.kokoroLastPanic = undefined;
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
  // Per instance (a restarted engine gets a fresh module): set it again each time.
  glue.setComputePrecision(options?.precision ?? 'f32');
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
  if (!resp.body) throw new Error(`model download failed: no body from ${url}`);
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
  // WebGPU's types are not in TypeScript's `dom` library.
  const gpu = /** @type {any} */ (self.navigator).gpu;
  if (!gpu) return 'this browser has no WebGPU (navigator.gpu is missing)';
  const adapter = await gpu.requestAdapter();
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

/** @returns {import('./index').EngineInfo} (its fields null before the engine is loaded) */
function status() {
  return /** @type {import('./index').EngineInfo} */ ({ ...info, instances, lost: engine && !crash.error ? engine.deviceLost() : false });
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

const abortError = () => new DOMException('generation cancelled', 'AbortError');
/** Throws if the page cancelled request `id`. */
const stopIfCancelled = (id) => { if (cancelled.has(id)) throw abortError(); };

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

/** A request's defaults (voice, speed, ...). @param {SynthesisOptions} m */
const synthesisOptions = ({ voice = 'af_heart', speed = 1, lang = '', deterministic = false, seed = 0, pack = true }) => ({ voice, speed, lang, deterministic, seed, pack });

/** @param {number} id @param {import('./protocol').Requests['generate']} m */
async function speak(id, m, counts) {
  const { text } = m;
  const o = synthesisOptions(m);
  stopIfCancelled(id);                        // cancelled while queued: no work at all
  await ready(id);
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  checkLength(text.length);
  await guarded(() => engine.resolveVoice(o.voice));   // a bad or unknown voice fails before any work
  /** @type {WorkerChunk[]} */
  const chunks = JSON.parse(await guarded(() => engine.chunks(text, o.lang, o.voice, o.pack)));
  const tally = newTally();
  tally.totalPhonemes = chunks.reduce((s, c) => s + c.phonemes.length, 0);
  tally.chunks = chunks.length;
  for (const c of chunks) {
    await speakChunk(id, c, text, o, tally, counts);
    // The next chunk starts once the page has taken this one: an abort from its onChunk arrives
    // first, so the worker stops without starting work nobody wants (and never runs ahead of the page).
    if (c.index + 1 < chunks.length) await new Promise((resolve) => waiting.set(id, resolve));
    stopIfCancelled(id);
  }
  return summary(tally);
}

function checkLength(length) {
  const limit = options.maxTextLength ?? 1_000_000;
  if (length > limit) throw new RangeError(`text is ${length} characters; the limit is ${limit}`);
}

/** A request's running totals, for progress and its summary. */
const newTally = () => ({ t0: performance.now(), samples: 0, donePhonemes: 0, totalPhonemes: 0, chunks: 0, open: false });

/** @returns {SynthesisSummary} */
const summary = (tally) => ({ chunkCount: tally.chunks, samples: tally.samples, sampleRate: 24000, ms: performance.now() - tally.t0, backend: info.backend });

/**
 * Speaks one chunk of request `id` and posts it with its progress: the path every request's chunks
 * take (`text` is the request's text, which the chunk's UTF-16 span indexes).
 * @param {number} id @param {WorkerChunk} c @param {string} text
 */
async function speakChunk(id, c, text, o, tally, counts) {
  const r = await synthesize(id, c, o);
  counts.synthesized += 1;
  // On the CPU a chunk holds this thread: a cancel sent meanwhile is still queued. Let it in, and
  // drop the chunk if the page no longer wants it.
  await nextTask();
  stopIfCancelled(id);
  const meta = JSON.parse(r.meta);
  // Word times in seconds from the start of the whole audio, counted in samples (no drift).
  meta.words = meta.words.map(([word, start, end]) => ({ text: word, start: (tally.samples + start) / 24000, end: (tally.samples + end) / 24000 }));
  tally.donePhonemes += c.phonemes.length;
  tally.samples += r.audio.length;
  const elapsed = performance.now() - tally.t0;
  post({ type: 'chunk', id, chunk: { ...c, text: text.slice(c.start, c.end), audio: r.audio, sampleRate: 24000, backend: info.backend, ...meta } }, [r.audio.buffer]);
  counts.posted += 1;
  post({ type: 'progress', id, progress: { phase: 'synthesize', chunk: c.index + 1, chunks: tally.chunks, percent: 100 * tally.donePhonemes / tally.totalPhonemes,
    elapsedMs: elapsed, etaMs: elapsed / tally.donePhonemes * (tally.totalPhonemes - tally.donePhonemes), audioSeconds: tally.samples / 24000,
    ...(tally.open ? { open: true } : {}) } });
}

// Text streams: text arrives in `stream.push` notices while the request waits or runs. A stream
// whose chunks are all spoken while its text is still open is parked: it leaves the queue (other
// requests run) and goes back into it when more text, a flush or the close arrives.
const PARKED = Symbol('parked');
/** @type {Map<number, TextStreamState>} */
const streams = new Map();
/**
 * @typedef {object} TextStreamState
 * @property {SynthesisOptions} m the request
 * @property {number} rank
 * @property {Notice[]} notices pushes, flushes and the close not yet given to the chunker
 * @property {string} text everything pushed (chunk spans index it; replayed into a new chunker after a restart)
 * @property {number[]} flushes where in `text` the page flushed
 * @property {WorkerChunk[]} ready chunks made, not yet spoken
 * @property {number} made chunks the chunker has handed out
 * @property {any} chunker the wasm text stream (KokoroTextStream), null before the first turn and once finished
 * @property {number} instance the wasm instance the chunker lives in
 * @property {boolean} closed the chunker has had all the text
 * @property {'queued' | 'running' | 'parked'} state
 * @property {boolean} started
 * @property {ReturnType<typeof newTally>} tally
 * @property {{ synthesized: number, posted: number }} counts
 * @property {(v: SynthesisSummary) => void} resolve
 * @property {(e: unknown) => void} reject
 */

/** Queues a turn of text stream `id`. @param {number} id @param {TextStreamState} s */
function scheduleStream(id, s) {
  s.state = 'queued';
  enqueue(id, s.rank, () => streamTurn(id, s));
}

/** @param {number} id @param {TextStreamState} s */
async function streamTurn(id, s) {
  s.state = 'running';
  if (!s.started) { s.started = true; requestEvent(id, 'start'); }
  try {
    const value = await speakStream(id, s);
    if (value === PARKED) {
      // Text that came during the last chunk (after the chunker was fed) gets a turn at once.
      if (s.notices.length) scheduleStream(id, s); else s.state = 'parked';
      return;
    }
    endStream(id, s, null, value);
  } catch (e) {
    endStream(id, s, e);
  }
}

/** @param {number} id @param {TextStreamState} s @param {any} error @param {SynthesisSummary} [value] */
function endStream(id, s, error, value) {
  if (!streams.has(id)) return;
  streams.delete(id);
  // A stream cancelled or failed before its close still holds a chunker in the wasm memory.
  if (s.chunker && s.instance === instances && !crash.error) {
    try { s.chunker.free(); } catch (_) { /* best effort, as for the engine */ }
  }
  s.chunker = null;
  if (!s.started) requestEvent(id, 'start');
  if (error) requestEvent(id, 'end', { outcome: error?.name === 'AbortError' ? 'cancelled' : 'failed', error: error?.message, ...s.counts });
  else requestEvent(id, 'end', { outcome: 'done', ...s.counts });
  forget(id);
  if (error) s.reject(error); else if (value) s.resolve(value);
}

/** Speaks the chunks the stream's text has made so far; PARKED when it waits for more text. @param {number} id @param {TextStreamState} s */
async function speakStream(id, s) {
  const o = synthesisOptions({ ...s.m, pack: s.m.pack ?? false });
  stopIfCancelled(id);
  await ready(id);
  if (!s.chunker && !s.closed) {
    s.chunker = await guarded(() => engine.textStream(o.lang, o.voice, o.pack));   // a bad language fails here
    s.instance = instances;
    await guarded(() => engine.resolveVoice(o.voice));   // a bad or unknown voice fails before any work
  }
  for (;;) {
    await feed(s, o);
    const c = s.ready.shift();
    if (!c) return s.closed ? summary(s.tally) : PARKED;
    s.tally.open = !s.closed;
    await speakChunk(id, c, s.text, o, s.tally, s.counts);
    // The page acks every chunk of a stream: whether this one was the last is known only at the close.
    await new Promise((resolve) => waiting.set(id, resolve));
    stopIfCancelled(id);
  }
}

/** Gives the stream's notices to its chunker; the chunks they complete join `s.ready`. @param {TextStreamState} s */
async function feed(s, o) {
  if (s.closed && !s.notices.length) return;
  if (s.instance !== instances) {
    // The chunker lived in an instance that crashed since: a new one, given the same text (its
    // chunks are the same; those already made are skipped by index).
    s.chunker = await guarded(() => engine.textStream(o.lang, o.voice, o.pack));
    s.instance = instances;
    let at = 0;
    for (const f of s.flushes) { await take(s, () => s.chunker.push(s.text.slice(at, f))); await take(s, () => s.chunker.flush()); at = f; }
    await take(s, () => s.chunker.push(s.text.slice(at)));
  }
  for (const n of s.notices.splice(0)) {
    if (s.closed) break;
    if (n.type === 'stream.push') {
      checkLength(s.text.length + n.text.length);
      s.text += n.text;
      await take(s, () => s.chunker.push(n.text));
    } else if (n.type === 'stream.flush') {
      s.flushes.push(s.text.length);
      await take(s, () => s.chunker.flush());
    } else if (n.type === 'stream.close') {
      const chunker = s.chunker;
      s.chunker = null;
      s.closed = true;
      await take(s, () => chunker.finish());
    }
  }
}

/** The chunks one chunker call made, less those made before a restart. @param {TextStreamState} s @param {() => string} call */
async function take(s, call) {
  /** @type {WorkerChunk[]} */
  const chunks = JSON.parse(await guarded(call));
  for (const c of chunks) {
    if (c.index < s.made) continue;
    s.made = c.index + 1;
    s.ready.push(c);
    s.tally.chunks = s.made;
    s.tally.totalPhonemes += c.phonemes.length;
  }
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

// The worker's scheduler runs turns one at a time: a `generate` request is one turn; a text stream
// takes a turn whenever it has chunks to speak.
/** @type {{ id: number, rank: number, at: number, seq: number, run: () => Promise<void> }[]} */
const waitingTurn = [];
let turnSeq = 0;

/** Queues a turn (`run` never throws) and starts the queue if idle. */
function enqueue(id, rank, run) {
  waitingTurn.push({ id, rank, at: performance.now(), seq: turnSeq++, run });
  runQueue();
}

/** The request is over: forget its cancel and ack state. */
function forget(id) {
  active.delete(id); cancelled.delete(id); waiting.delete(id);
}

/** Runs the waiting turns one at a time, the lowest rank (class x aging - waited) first. */
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
    await r.run();
  }
  running = false;
}

const rankOf = (priority) => RANK[priority] ?? RANK.default;

/**
 * One handler per request type, answering with its result (protocol.d.ts's `Results`).
 * @type {{ [K in RequestType]: (id: number, m: import('./protocol').Request<K>) => Promise<import('./protocol').Results[K]> }}
 */
const handlers = {
  load: (id, m) => load(id, m.options),
  // One synthesis at a time, by priority with aging (a request waiting its turn is cancellable).
  generate: (id, m) => {
    active.add(id);
    return new Promise((resolve, reject) => enqueue(id, rankOf(m.priority), async () => {
      try { resolve(await generate(id, m)); } catch (e) { reject(e); } finally { forget(id); }
    }));
  },
  stream: (id, m) => {
    active.add(id);
    return new Promise((resolve, reject) => {
      /** @type {TextStreamState} */
      const s = { m, rank: rankOf(m.priority), notices: [], text: '', flushes: [], ready: [], made: 0, chunker: null, instance: instances,
        closed: false, state: 'queued', started: false, tally: { ...newTally(), open: true }, counts: { synthesized: 0, posted: 0 }, resolve, reject };
      streams.set(id, s);
      scheduleStream(id, s);
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

/** A notice about a running request: no answer. @param {Notice} n */
function notice(n) {
  const { type, id } = n;
  if (type === 'ack' || type === 'cancel') {
    if (type === 'cancel' && active.has(id)) cancelled.add(id);
    waiting.get(id)?.();
    waiting.delete(id);
    // A parked text stream has no turn to notice the cancel in: it ends now.
    const s = streams.get(id);
    if (type === 'cancel' && s?.state === 'parked') endStream(id, s, abortError());
    return;
  }
  const s = streams.get(id);
  if (!s) return;     // the stream has ended (cancelled, failed): the page's later text has nowhere to go
  s.notices.push(n);
  if (s.state === 'parked') scheduleStream(id, s);
}

const isNotice = (/** @type {ToWorker} */ m) => m.type === 'ack' || m.type === 'cancel' || m.type.startsWith('stream.');

/** @param {MessageEvent<ToWorker>} event */
self.onmessage = async ({ data }) => {
  if (isNotice(data)) { notice(/** @type {Notice} */ (data)); return; }
  const request = /** @type {import('./protocol').Request} */ (data);
  const { type, id } = request;
  /** @type {(id: number, m: any) => Promise<any>} */
  const handler = handlers[type];
  try {
    if (!handler) throw new Error(`unknown request ${type}`);
    // Synthesis waits for the engine in its turn (and survives a crash); `info` needs no engine; the
    // others wait for it now.
    const own = type === 'load' || type === 'generate' || type === 'stream' || type === 'info';
    const value = own ? await handler(id, request) : await ready(id).then(() => guarded(() => handler(id, request)));
    post({ type: 'result', id, value });
  } catch (e) {
    post({ type: 'error', id, error: { name: e?.name ?? 'Error', message: e?.message ?? String(e), code: e?.code } });
  }
};
