// Types of kokoro-burn's client API (index.js).

export declare const SAMPLE_RATE: 24000;
/** Slowest speaking rate the model takes. */
export declare const MIN_SPEED: 0.25;
/** Fastest speaking rate the model takes. */
export declare const MAX_SPEED: 4;

export type Device = 'auto' | 'webgpu' | 'cpu';

export interface LoadProgress {
  phase: 'download' | 'cache' | 'init' | 'ready' | 'prewarm';
  loaded?: number;
  total?: number;
  percent?: number | null;
  bytesPerSecond?: number;
  etaSeconds?: number | null;
  device?: 'webgpu' | 'cpu';
  warning?: string;
}

export interface SynthesisProgress {
  phase: 'synthesize';
  chunk: number;
  chunks: number;
  percent: number;
  elapsedMs: number;
  /** Estimated milliseconds left, from the phonemes still to speak. */
  etaMs: number;
  audioSeconds: number;
  /** On a text stream whose text is not complete yet: `chunks`, `percent` and `etaMs` count the text so far. */
  open?: boolean;
}

export interface LoadOptions {
  /** URL of the kokoro-burn weight file (int8 canonical safetensors, ~91 MB). Cached in the Cache API. */
  modelUrl: string;
  /** URL of a folder of NAME.bin voice files (with index.json listing the names). */
  voicesUrl: string;
  /** 'auto' (default): WebGPU when an adapter exists, else the CPU. */
  device?: Device;
  /** With device 'webgpu': fail instead of falling back to the CPU. */
  strict?: boolean;
  /**
   * Arithmetic of the generator's resblock convolutions on the CPU: 'f32' (default, the
   * reference) or 'int8' (about twice as fast; fidelity in docs/validation.md). WebGPU stays f32.
   */
  precision?: 'f32' | 'int8';
  /** Bytes of voices kept in memory (default 16 MiB). */
  voiceBudgetBytes?: number;
  /** Bytes of voice files kept in IndexedDB (default 64 MiB). */
  storeBudgetBytes?: number;
  /** Longest text one request takes (default 1,000,000 characters). */
  maxTextLength?: number;
  onProgress?: (p: LoadProgress) => void;
  /**
   * Structured events: downloads, evictions, quota errors, fallbacks, engine restarts after a crash
   * (`{event: 'restart', from, to, reason}`), and each generate request's start and end
   * (`{event: 'request', id, state: 'start' | 'end', outcome?, synthesized?, posted?}`).
   */
  onLog?: (event: Record<string, unknown>) => void;
  /** Where the worker script is, if a bundler moved it. */
  workerUrl?: string | URL;
}

/** A voice's gender, from the voice manifest. */
export type VoiceGender = 'female' | 'male';

/** One voice the store lists, described by the voice manifest (voices/manifest.json). */
export interface VoiceInfo {
  /** Its name, as `GenerateOptions.voice` takes it: 'af_heart'. */
  name: string;
  /**
   * Lower-case BCP-47-style language tag: 'en-us', 'en-gb', 'es', 'fr-fr', 'hi', 'it', 'ja',
   * 'pt-br' or 'zh'; null for a voice the manifest does not list.
   */
  language: string | null;
  /** null for a voice the manifest does not list. */
  gender: VoiceGender | null;
}

/** Request priorities, most urgent first. */
export type Priority = 'interactive' | 'default' | 'bulk';
export declare const PRIORITIES: readonly Priority[];

/**
 * Errors from the engine carry a stable `code` (whatever the message says): 'unknown_voice',
 * 'bad_voice', 'voice_unavailable', 'bad_text', 'bad_language', 'bad_speed', 'too_long',
 * 'nothing_to_say', 'device'.
 */
export interface KokoroError extends Error {
  code?: string;
}

export interface GenerateOptions {
  /** A voice name or a mix: 'af_heart', 'af_bella(2)+af_sky(1)', 'af_heart-am_adam(0.3)'. */
  voice?: string;
  /** Speaking rate, MIN_SPEED to MAX_SPEED (default 1); anything else rejects at once with a RangeError. */
  speed?: number;
  /** 'en-us' | 'en-gb'; default from the voice (a* US, b* GB). */
  lang?: '' | 'en-us' | 'en-gb';
  /** Zero the source noise: the same input gives the same samples (tests, comparisons). */
  deterministic?: boolean;
  seed?: number;
  /**
   * Pack sentences into chunks of up to 510 phonemes, as reference Kokoro does (generate's default),
   * or speak one sentence per chunk (stream's default: the first audio comes sooner).
   */
  pack?: boolean;
  /**
   * Which waiting request the worker runs next: 'interactive' before 'default' before 'bulk';
   * waiting 5 s lifts a request one class, so bulk work never starves. Anything else rejects at
   * once with a TypeError.
   */
  priority?: Priority;
  /** Aborting rejects with an AbortError and stops the worker after the chunk under way. */
  signal?: AbortSignal;
  onProgress?: (p: SynthesisProgress) => void;
  onChunk?: (c: ChunkInfo & { audio: Float32Array }) => void;
}

export interface ChunkInfo {
  index: number;
  /** UTF-16 range of the source text this chunk speaks. */
  start: number;
  end: number;
  text: string;
  phonemes: string;
  /** Words read by letter-to-sound (not in the lexicon). */
  guessed: string[];
  /** Frames (600 samples) per phoneme token, boundary tokens included. */
  durations: number[];
  /** The chunk's words and when they are spoken, in seconds from the start of the whole audio. */
  words: { text: string; start: number; end: number }[];
  /** Phoneme characters outside the model's vocab, dropped. */
  unknown: string[];
  timings: { bert: number; predictor: number; textEncoder: number; decoder: number; total: number };
  backend: 'webgpu' | 'cpu';
  sampleRate: number;
}

export declare class RawAudio {
  audio: Float32Array;
  sampleRate: number;
  readonly duration: number;
  toWav(): Blob;
  /** On generate(): the chunks (without their audio). */
  chunks?: (ChunkInfo & { samples: number })[];
  chunkCount?: number;
  samples?: number;
  ms?: number;
  backend?: 'webgpu' | 'cpu';
}

/** A streamed chunk: its audio, and what it says (its `backend` is always set). */
export interface StreamChunk extends RawAudio, Omit<ChunkInfo, 'sampleRate' | 'backend'> {
  backend: 'webgpu' | 'cpu';
}

export interface VoiceEntry {
  name: string;
  size: number;
  uses: number;
  lastUsed: number;
  storedAt: number;
  pinned: boolean;
}

export interface PrewarmState {
  names: string[];
  done: string[];
  failed: { name: string; error: string }[];
  startedAt: number;
  finishedAt: number | null;
}

export interface CacheStats {
  /** The engine's in-memory cache (kokoro-voice's VoiceCache). */
  memory: {
    budget: number; bytes: number; hits: number; misses: number; loads: number; loadFailures: number;
    evictions: number; hitRate: number;
    entries: { key: string; bytes: number; pinned: boolean; hits: number; loadMs: number }[];
  };
  /** IndexedDB: voice files kept across reloads. */
  store: {
    budget: number; bytes: number; entries: VoiceEntry[]; hits: number; misses: number;
    networkFetches: number; networkBytes: number; evictions: number; quotaErrors: number; hitRate: number;
    prewarm: PrewarmState | null; quota: { usage: number; quota: number } | null;
  };
}

export interface EngineInfo {
  backend: 'webgpu' | 'cpu';
  adapter: Record<string, string>;
  /** Weight parsing + dequantization + upload, ms. */
  loadMs: number;
  wasmMs: number;
  modelBytes: number;
  modelFrom: 'network' | 'cache';
  fallback: { from: 'webgpu'; reason: string; at?: number } | null;
  /** How many wasm instances this worker has started (a crash or a lost GPU starts a new one). */
  instances: number;
  lost: boolean;
  /** The engine's [MIN_SPEED, MAX_SPEED]. */
  speedRange: [number, number];
}

/**
 * Text that arrives in pieces (an LLM's tokens), for `KokoroTTS.stream` (kokoro-js's class of
 * the same name and methods). Sentences are found and packed in the worker by the engine's chunker;
 * unlike kokoro-js's, this one is not itself an iterator of sentences.
 */
export declare class TextSplitterStream {
  constructor();
  /** Adds text, in any number of pieces. Throws a TypeError after close(), or for a piece that is not a string. */
  push(...texts: string[]): void;
  /** Speaks what has been pushed, the sentence under way included, without waiting for its end; more text may follow. Throws a TypeError after close(). */
  flush(): void;
  /** The text is complete: the stream ends once its last chunk is spoken. Closing twice does nothing. */
  close(): void;
  /** True once close() has been called. */
  readonly closed: boolean;
}

/**
 * Errors: `AbortError` (cancelled), `RangeError` (a bad speed, a text too long), `EngineCrash` (the
 * engine trapped twice on one chunk; the next request runs on a new instance), `WorkerError` (the
 * worker died or was disposed: every call fails with it; load a new KokoroTTS).
 */
export declare class KokoroTTS {
  static load(options: LoadOptions): Promise<KokoroTTS>;
  /** What load() found: backend, adapter, timings. */
  status: EngineInfo;
  generate(text: string, options?: GenerateOptions): Promise<RawAudio>;
  /**
   * Chunks as they are made; leaving the `for await` early cancels the request in the worker.
   * `input`: a whole text, or a TextSplitterStream whose text is spoken sentence by sentence as it
   * arrives (the stream ends after its close()); one TextSplitterStream feeds one stream.
   */
  stream(input: string | TextSplitterStream, options?: GenerateOptions): AsyncGenerator<StreamChunk>;
  /** The voices the store lists, with language and gender from the voice manifest. */
  voices(): Promise<VoiceInfo[]>;
  info(): Promise<EngineInfo>;
  cache: {
    stats(): Promise<CacheStats>;
    prewarm(names: string[], options?: { onProgress?: (p: LoadProgress & { voice: string; done: number; total: number }) => void }): Promise<PrewarmState>;
    evict(name: string): Promise<{ memory: boolean; store: boolean }>;
    setBudget(b: { memoryBytes?: number; storeBytes?: number }): Promise<true>;
  };
  debug: {
    /** Destroys the GPU device (the next request falls back to the CPU). */
    loseDevice(): Promise<boolean>;
    /** The next `count` IndexedDB writes fail with QuotaExceededError. */
    failStoreWrites(count: number): Promise<true>;
    /** The next `count` chunks trap the engine's wasm instance (a panic), as a bug would. */
    trapNextChunks(count: number): Promise<true>;
    /** Kills the worker with an uncaught error (every call then fails with a `WorkerError`). */
    crash(): Promise<true>;
    /** Rejects when the signals share fewer than 513 samples (too short for one spectrogram frame). */
    logMelDistance(a: Float32Array, b: Float32Array): Promise<number>;
  };
  /** Stops the worker: pending calls and every later one reject with a `WorkerError`. */
  dispose(): void;
}

export declare function encodeWav(samples: Float32Array, sampleRate?: number): Uint8Array;
export declare function wavBlob(samples: Float32Array, sampleRate?: number): Blob;
