// kokoro-burn: Kokoro-82M text-to-speech in the browser, on WebGPU (CPU fallback) in a Web Worker.
//
//   import { KokoroTTS } from 'kokoro-burn';
//   const tts = await KokoroTTS.load({ modelUrl, voicesUrl, onProgress: console.log });
//   const audio = await tts.generate('Hello world!', { voice: 'af_heart' });
//   new Audio(URL.createObjectURL(audio.toWav())).play();

import { wavBlob } from './wav.js';

export { encodeWav, wavBlob } from './wav.js';

export const SAMPLE_RATE = 24000;

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

function toError({ name, message }) {
  const e = new Error(message);
  e.name = name;
  return e;
}

export class KokoroTTS {
  #worker;
  #next = 1;
  #pending = new Map();

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => this.#receive(data);
    worker.onerror = (e) => {
      const err = new Error(`worker failed: ${e.message}`);
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
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
    tts.status = await tts.#call('load', { options: { ...rest, modelUrl: abs(rest.modelUrl), voicesUrl: abs(rest.voicesUrl) } }, { onProgress });
    return tts;
  }

  #receive(m) {
    if (m.type === 'log') { this.onLog?.(m.event); return; }
    const p = this.#pending.get(m.id);
    if (!p) return;
    switch (m.type) {
      case 'progress': p.onProgress?.(m.progress); break;
      case 'chunk': p.onChunk?.(m.chunk); break;
      case 'result': this.#pending.delete(m.id); p.resolve(m.value); break;
      case 'error': this.#pending.delete(m.id); p.reject(toError(m.error)); break;
    }
  }

  #call(type, body = {}, { onProgress, onChunk, signal } = {}) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(abortError());
      this.#pending.set(id, { resolve, reject, onProgress, onChunk });
      signal?.addEventListener('abort', () => {
        if (!this.#pending.has(id)) return;
        this.#pending.delete(id);
        this.#worker.postMessage({ type: 'cancel', id: this.#next++, target: id });
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
    const ready = [];
    let wake = null;
    let finished = false;
    let failure = null;
    const done = this.#call('generate', { text, pack, ...rest }, {
      signal, onProgress, onChunk: (c) => { ready.push(c); wake?.(); },
    }).then(() => { finished = true; wake?.(); }, (e) => { failure = e; wake?.(); });
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
  }

  /** Voice names the voice server lists (remembered for offline use). */
  voices() { return this.#call('voices'); }

  /** Backend in use, adapter, load times, fallback reason if any. */
  info() { return this.#call('info'); }

  /** Stops the worker. */
  dispose() {
    this.#worker.terminate();
    for (const p of this.#pending.values()) p.reject(new Error('disposed'));
    this.#pending.clear();
  }
}
