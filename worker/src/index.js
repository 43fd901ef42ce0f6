// @ts-check
// kokoro-burn: Kokoro-82M text-to-speech in the browser, on WebGPU (CPU fallback) in a Web Worker.
//
//   import { KokoroTTS } from 'kokoro-burn';
//   const tts = await KokoroTTS.load({ modelUrl, voicesUrl, onProgress: console.log });
//   const audio = await tts.generate('Hello world!', { voice: 'af_heart' });
//   new Audio(URL.createObjectURL(audio.toWav())).play();

import { wavBlob } from './wav.js';

/** @typedef {import('./protocol').ToWorker} ToWorker */
/** @typedef {import('./protocol').FromWorker} FromWorker */
/** @typedef {import('./protocol').RequestType} RequestType */

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

/**
 * An error from the worker: its name and message, and the engine's stable `code` when it has one.
 * @param {import('./protocol').WireError} error
 */
function toError({ name, message, code }) {
  /** @type {Error & { code?: string }} */
  const e = new Error(message);
  e.name = name;
  if (code) e.code = code;
  return e;
}

/**
 * Claims a TextSplitterStream for one request (throws if another has it); the function returned
 * connects it to the request once sent: its text so far, then the rest as it comes, go to `sink`.
 * @type {(s: TextSplitterStream) => (sink: (n: import('./protocol').SplitterNotice) => void) => void}
 */
let attachSplitter;

/**
 * Text that arrives in pieces (an LLM's tokens), for `KokoroTTS.stream`: `push` text as it comes,
 * `flush()` to speak the sentence under way without waiting for its end, `close()` when the text
 * is complete. Sentences are found and packed in the worker, by the engine's chunker (the one
 * splitter of kokoro-burn), so this holds no text of its own once attached to a stream.
 */
export class TextSplitterStream {
  /** Notices made before the stream was attached, sent when it is. @type {import('./protocol').SplitterNotice[]} */
  #early = [];
  /** @type {((n: import('./protocol').SplitterNotice) => void) | null} */
  #sink = null;
  #closed = false;
  #attached = false;

  static {
    attachSplitter = (s) => {
      if (s.#attached) throw new TypeError('this TextSplitterStream already feeds a stream: make one per stream()');
      s.#attached = true;
      return (sink) => {
        s.#sink = sink;
        for (const n of s.#early.splice(0)) sink(n);
      };
    };
  }

  /** Adds text (any number of pieces). Throws a TypeError after close() or for a piece that is not a string. */
  push(...texts) {
    this.#open('push');
    for (const text of texts) {
      if (typeof text !== 'string') throw new TypeError(`TextSplitterStream.push takes strings, got ${typeof text}`);
    }
    for (const text of texts) if (text) this.#send({ type: 'stream.push', text });
  }

  /** Speaks what has been pushed, the sentence under way included; more text may follow. */
  flush() {
    this.#open('flush');
    this.#send({ type: 'stream.flush' });
  }

  /** The text is complete: the stream ends once its last chunk is spoken. Closing twice does nothing. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#send({ type: 'stream.close' });
  }

  /** True once close() has been called. */
  get closed() { return this.#closed; }

  #open(what) {
    if (this.#closed) throw new TypeError(`TextSplitterStream.${what}() after close(): the stream's text is complete`);
  }

  /** @param {import('./protocol').SplitterNotice} n */
  #send(n) {
    if (this.#sink) this.#sink(n); else this.#early.push(n);
  }
}

export class KokoroTTS {
  #worker;
  #next = 1;
  /** @type {Map<number, { resolve: (v: any) => void, reject: (e: any) => void, onProgress?: (p: any) => void, onChunk?: (c: any) => void }>} */
  #pending = new Map();
  /** @type {Error | null} */
  #stopped = null;     // why the worker is gone: every call, pending or later, fails with it
  /** @type {((e: Record<string, unknown>) => void) | undefined} */
  onLog;
  /** @type {import('./index').EngineInfo | undefined} */
  status;

  /** @param {Worker} worker */
  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => this.#receive(data);
    // An error that reaches the page is one the worker did not handle (it handles engine crashes
    // itself): the worker is dead, or in a state nothing should rely on. Stop it.
    worker.onerror = (e) => this.#stop(e.message || 'it failed to start or crashed');
    /** The voice caches: in memory (the engine's) and in IndexedDB. */
    this.cache = {
      stats: () => this.#call('cache.stats', {}),
      prewarm: (names, /** @type {{ onProgress?: (p: any) => void }} */ { onProgress } = {}) => this.#call('cache.prewarm', { names }, { onProgress }),
      evict: (name) => this.#call('cache.evict', { name }),
      setBudget: (/** @type {{ memoryBytes?: number, storeBytes?: number }} */ { memoryBytes, storeBytes } = {}) => this.#call('cache.setBudget', { memoryBytes, storeBytes }),
    };
    /** Test and demo hooks. */
    this.debug = {
      loseDevice: () => this.#call('debug.loseDevice', {}),
      failStoreWrites: (count) => this.#call('debug.failStoreWrites', { count }),
      trapNextChunks: (count) => this.#call('debug.trapNextChunks', { count }),
      crash: () => this.#call('debug.crash', {}),
      logMelDistance: (a, b) => this.#call('debug.logMelDistance', { a, b }),
      probeProsody: (phonemes, voice = 'af_heart') => this.#call('debug.probeProsody', { phonemes, voice }),
    };
  }

  /**
   * Starts the worker, downloads (or reads from the cache) the model and loads it.
   * @param {import('./index').LoadOptions} options
   */
  static async load(options) {
    const { onProgress, onLog, workerUrl, ...rest } = options ?? {};
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

  /** @param {ToWorker} m */
  #post(m) {
    this.#worker.postMessage(m);
  }

  /** @param {FromWorker} m */
  #receive(m) {
    if (m.type === 'log') { this.onLog?.(m.event); return; }
    const p = this.#pending.get(m.id);
    if (m.type === 'chunk') {
      // The worker starts the next chunk on this ack: after onChunk, so an abort there comes first.
      try { p?.onChunk?.(m.chunk); } finally { this.#post({ type: 'ack', id: m.id }); }
      return;
    }
    if (!p) return;
    switch (m.type) {
      case 'progress': p.onProgress?.(m.progress); break;
      case 'result': this.#pending.delete(m.id); p.resolve(m.value); break;
      case 'error': this.#pending.delete(m.id); p.reject(toError(m.error)); break;
    }
  }

  /**
   * Sends request `type` and resolves with its result. `onSent` gets the request's id once it is
   * sent (a text stream sends its text under that id).
   * @template {RequestType} K
   * @param {K} type
   * @param {import('./protocol').Requests[K]} body
   * @param {{ onProgress?: (p: any) => void, onChunk?: (c: any) => void, signal?: AbortSignal, onSent?: (id: number) => void }} [callbacks]
   * @returns {Promise<import('./protocol').Results[K]>}
   */
  #call(type, body, { onProgress, onChunk, signal, onSent } = {}) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      if (this.#stopped) return reject(this.#stopped);
      if (signal?.aborted) return reject(abortError());
      this.#pending.set(id, { resolve, reject, onProgress, onChunk });
      signal?.addEventListener('abort', () => {
        if (!this.#pending.has(id)) return;
        this.#pending.delete(id);
        this.#post({ type: 'cancel', id });
        reject(abortError());
      }, { once: true });
      this.#post(/** @type {import('./protocol').Request} */ ({ ...body, type, id }));
      onSent?.(id);
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
   * Speaks `input` chunk by chunk: an async iterator of chunks as they are synthesized. `input` is
   * a whole text, or a TextSplitterStream whose text arrives while the chunks are spoken.
   * @param {string | TextSplitterStream} input
   * @param {import('./index').GenerateOptions} [opts]
   */
  async *stream(input, opts = {}) {
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
    const callbacks = {
      signal: signal ? AbortSignal.any([signal, left.signal]) : left.signal,
      onProgress, onChunk: (c) => { ready.push(c); wake?.(); },
    };
    let done;
    if (input instanceof TextSplitterStream) {
      // The splitter's text goes to the worker under this request's id, as it comes; once the
      // request is over (done, failed, cancelled) later text has nowhere to go and is dropped.
      const connect = attachSplitter(input);
      let over = false;
      done = this.#call('stream', { pack, ...rest }, { ...callbacks,
        onSent: (id) => connect((n) => { if (!over) this.#post({ ...n, id }); }) })
        .finally(() => { over = true; });
    } else {
      if (typeof input !== 'string') throw new TypeError(`stream() takes a string or a TextSplitterStream, got ${typeof input}`);
      done = this.#call('generate', { text: input, pack, ...rest }, callbacks);
    }
    done = done.then(() => { finished = true; wake?.(); }, (e) => { failure = e; wake?.(); });
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
  voices() { return this.#call('voices', {}); }

  /** Backend in use, adapter, load times, fallback reason if any. */
  info() { return this.#call('info', {}); }

  /** Stops the worker: pending calls and every later one fail (`WorkerError`). */
  dispose() {
    this.#stop('disposed');
  }
}
