// kokoro-burn: Kokoro-82M text-to-speech in the browser, on WebGPU (CPU fallback) in a Web Worker.
//
//   import { KokoroTTS } from 'kokoro-burn';
//   const tts = await KokoroTTS.load({ modelUrl, voicesUrl, onProgress: console.log });
//   const audio = await tts.generate('Hello world!', { voice: 'af_heart' });
//   new Audio(URL.createObjectURL(audio.toWav())).play();

import { wavBlob } from './wav.js';

export { encodeWav, wavBlob } from './wav.js';

export const SAMPLE_RATE = 24000;

/** Slowest and fastest speaking rates the model takes (kokoro_model's MIN_SPEED and MAX_SPEED; the tests compare). */
export const MIN_SPEED = 0.25;
export const MAX_SPEED = 4;

/** Audio of one `generate` call (or one streamed chunk). */
export class RawAudio {
  constructor(audio, sampleRate = SAMPLE_RATE, extra = {}) {
    Object.assign(this, extra);
    this.audio = audio;
    this.sampleRate = sampleRate;
  }
  /** Seconds of audio. */
  get duration() { return this.audio.length / this.sampleRate; }
  /** A WAV `Blob` (16-bit PCM). */
  toWav() { return wavBlob(this.audio, this.sampleRate); }
}

function abortError() {
  return new DOMException('generation cancelled', 'AbortError');
}

/** Checked here, before the worker sees the request: a bad speed fails at once, whatever the worker is doing. */
function checkSpeed(speed) {
  if (speed !== undefined && (typeof speed !== 'number' || !(speed >= MIN_SPEED && speed <= MAX_SPEED))) {
    throw new RangeError(`speed must be a number from ${MIN_SPEED} to ${MAX_SPEED}, got ${typeof speed === 'string' ? JSON.stringify(speed) : speed}`);
  }
}

/** Request priorities, most urgent first (the engine's `Priority`). */
export const PRIORITIES = ['interactive', 'default', 'bulk'];

function checkPriority(priority) {
  if (priority !== undefined && !PRIORITIES.includes(priority)) {
    throw new TypeError(`priority must be one of ${PRIORITIES.join(', ')}, got ${JSON.stringify(priority)}`);
  }
}

/** An error from the worker: its name and message, and the engine's stable `code` when it has one. */
function toError({ name, message, code }) {
  const e = new Error(message);
  e.name = name;
  if (code) e.code = code;
  return e;
}

export class KokoroTTS {
  #worker;
  #next = 1;
  #pending = new Map();
  #stopped = null;     // why the worker is gone: every call, pending or later, fails with it

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => this.#receive(data);
    // An error that reaches the page is one the worker did not handle (it handles engine crashes
    // itself): the worker is dead, or in a state nothing should rely on. Stop it.
    worker.onerror = (e) => this.#stop(e.message || 'it failed to start or crashed');
    /** The voice caches: in memory (the engine's) and in IndexedDB. */
    this.cache = {
      stats: () => this.#call('cache.stats'),
      prewarm: (names, { onProgress } = {}) => this.#call('cache.prewarm', { names }, { onProgress }),
      evict: (name) => this.#call('cache.evict', { name }),
      setBudget: ({ memoryBytes, storeBytes } = {}) => this.#call('cache.setBudget', { memoryBytes, storeBytes }),
    };
    /** Test and demo hooks. */
    this.debug = {
      loseDevice: () => this.#call('debug.loseDevice'),
      failStoreWrites: (count) => this.#call('debug.failStoreWrites', { count }),
      trapNextChunks: (count) => this.#call('debug.trapNextChunks', { count }),
      crash: () => this.#call('debug.crash'),
      logMelDistance: (a, b) => this.#call('debug.logMelDistance', { a, b }),
      probeProsody: (phonemes, voice = 'af_heart') => this.#call('debug.probeProsody', { phonemes, voice }),
    };
  }

  /**
   * Starts the worker, downloads (or reads from the cache) the model and loads it.
   * @param {import('./index').LoadOptions} options
   */
  static async load(options = {}) {
    const { onProgress, onLog, workerUrl, ...rest } = options;
    if (!rest.modelUrl) throw new TypeError('modelUrl is required (the kokoro-burn int8 safetensors file)');
    if (!rest.voicesUrl) throw new TypeError('voicesUrl is required (a folder of NAME.bin voice files)');
    const abs = (u) => new URL(u, globalThis.location?.href).href;
    const worker = new Worker(workerUrl ?? new URL('./worker.js', import.meta.url), { type: 'module' });
    const tts = new KokoroTTS(worker);
    tts.onLog = onLog;
    try {
      tts.status = await tts.#call('load', { options: { ...rest, modelUrl: abs(rest.modelUrl), voicesUrl: abs(rest.voicesUrl) } }, { onProgress });
    } catch (e) {
      tts.dispose();     // nothing else holds this worker
      throw e;
    }
    return tts;
  }

  /** The worker is gone (it died, or dispose()): fail what is pending, and every later call at once. */
  #stop(reason) {
    if (this.#stopped) return;
    this.#stopped = Object.assign(new Error(`the kokoro-burn worker stopped: ${reason}; load a new KokoroTTS`), { name: 'WorkerError' });
    this.#worker.terminate();
    for (const p of this.#pending.values()) p.reject(this.#stopped);
    this.#pending.clear();
  }

  #receive(m) {
    if (m.type === 'log') { this.onLog?.(m.event); return; }
    const p = this.#pending.get(m.id);
    if (m.type === 'chunk') {
      // The worker starts the next chunk on this ack: after onChunk, so an abort there comes first.
      try { p?.onChunk?.(m.chunk); } finally { this.#worker.postMessage({ type: 'ack', id: m.id }); }
      return;
    }
    if (!p) return;
    switch (m.type) {
      case 'progress': p.onProgress?.(m.progress); break;
      case 'result': this.#pending.delete(m.id); p.resolve(m.value); break;
      case 'error': this.#pending.delete(m.id); p.reject(toError(m.error)); break;
    }
  }

  #call(type, body = {}, { onProgress, onChunk, signal } = {}) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      if (this.#stopped) return reject(this.#stopped);
      if (signal?.aborted) return reject(abortError());
      this.#pending.set(id, { resolve, reject, onProgress, onChunk });
      signal?.addEventListener('abort', () => {
        if (!this.#pending.has(id)) return;
        this.#pending.delete(id);
        this.#worker.postMessage({ type: 'cancel', id });
        reject(abortError());
      }, { once: true });
      this.#worker.postMessage({ type, id, ...body });
    });
  }

  /**
   * Speaks `text`; resolves with all of its audio.
   * @param {string} text
   * @param {import('./index').GenerateOptions} [opts]
   */
  async generate(text, opts = {}) {
    const { signal, onProgress, onChunk, ...rest } = opts;
    checkSpeed(rest.speed);
    checkPriority(rest.priority);
    const parts = [];
    const summary = await this.#call('generate', { text, ...rest }, { signal, onProgress, onChunk: (c) => { parts.push(c); onChunk?.(c); } });
    const audio = new Float32Array(parts.reduce((s, c) => s + c.audio.length, 0));
    let at = 0;
    for (const c of parts) { audio.set(c.audio, at); at += c.audio.length; }
    return new RawAudio(audio, SAMPLE_RATE, { chunks: parts.map(({ audio: a, ...c }) => ({ ...c, samples: a.length })), ...summary });
  }

  /**
   * Speaks `text` chunk by chunk: an async iterator of chunks as they are synthesized.
   * @param {string} text
   * @param {import('./index').GenerateOptions} [opts]
   */
  async *stream(text, opts = {}) {
    // One chunk per sentence unless asked: the first audio comes after one sentence, not 510 phonemes.
    const { signal, onProgress, pack = false, ...rest } = opts;
    checkSpeed(rest.speed);
    checkPriority(rest.priority);
    // Leaving the loop early (break, return, a throw in its body) cancels the request in the worker.
    const left = new AbortController();
    const ready = [];
    let wake = null;
    let finished = false;
    let failure = null;
    const done = this.#call('generate', { text, pack, ...rest }, {
      signal: signal ? AbortSignal.any([signal, left.signal]) : left.signal,
      onProgress, onChunk: (c) => { ready.push(c); wake?.(); },
    }).then(() => { finished = true; wake?.(); }, (e) => { failure = e; wake?.(); });
    try {
      while (true) {
        if (ready.length) {
          const c = ready.shift();
          yield new RawAudio(c.audio, c.sampleRate, { ...c, audio: undefined });
          continue;
        }
        if (failure) throw failure;
        if (finished) break;
        await new Promise((r) => { wake = r; });
        wake = null;
      }
      await done;
    } finally {
      if (!finished && !failure) left.abort();
    }
  }

  /** Voice names the voice server lists (remembered for offline use). */
  voices() { return this.#call('voices'); }

  /** Backend in use, adapter, load times, fallback reason if any. */
  info() { return this.#call('info'); }

  /** Stops the worker: pending calls and every later one fail (`WorkerError`). */
  dispose() {
    this.#stop('disposed');
  }
}
