// Every message between the page (index.js) and the worker (worker.js), as discriminated unions on
// `type`. Both files are checked against it (`// @ts-check`, `tsc -p tests/browser` in the suite):
// a message of the wrong shape on either side fails the build.

import type { CacheStats, ChunkInfo, EngineInfo, GenerateOptions, LoadOptions, LoadProgress, PrewarmState, SynthesisProgress, VoiceInfo } from './index';

/** What a synthesis request takes besides its text (GenerateOptions less the page-side callbacks). */
export type SynthesisOptions = Omit<GenerateOptions, 'signal' | 'onProgress' | 'onChunk'>;

/** Load options as they cross: absolute URLs, no callbacks or worker location. */
export type WorkerLoadOptions = Omit<LoadOptions, 'onProgress' | 'onLog' | 'workerUrl'>;

/** Requests: each has an `id`, and the worker answers it with one `result` or `error`. */
export interface Requests {
  load: { options: WorkerLoadOptions };
  generate: SynthesisOptions & { text: string };
  /** A text stream: its text comes in `stream.push` messages, until `stream.close`. */
  stream: SynthesisOptions;
  info: {};
  voices: {};
  'cache.stats': {};
  'cache.prewarm': { names: string[] };
  'cache.evict': { name: string };
  'cache.setBudget': { memoryBytes?: number; storeBytes?: number };
  'debug.loseDevice': {};
  'debug.failStoreWrites': { count: number };
  'debug.trapNextChunks': { count: number };
  'debug.crash': {};
  'debug.logMelDistance': { a: Float32Array; b: Float32Array };
  'debug.probeProsody': { phonemes: string; voice: string };
}

/** A synthesis request's result (`generate`, `stream`): its chunks' audio came in `chunk` messages. */
export interface SynthesisSummary {
  chunkCount: number;
  samples: number;
  sampleRate: number;
  ms: number;
  backend: 'webgpu' | 'cpu';
}

/** The `value` of each request's `result`. */
export interface Results {
  load: EngineInfo;
  generate: SynthesisSummary;
  stream: SynthesisSummary;
  info: EngineInfo;
  voices: VoiceInfo[];
  'cache.stats': CacheStats;
  'cache.prewarm': PrewarmState;
  'cache.evict': { memory: boolean; store: boolean };
  'cache.setBudget': true;
  'debug.loseDevice': boolean;
  'debug.failStoreWrites': true;
  'debug.trapNextChunks': true;
  'debug.crash': true;
  'debug.logMelDistance': number;
  'debug.probeProsody': unknown;
}

export type RequestType = keyof Requests;
export type Request<K extends RequestType = RequestType> = { [T in K]: { type: T; id: number } & Requests[T] }[K];

/** Messages about a running synthesis request (`id` is the request's), answered by nothing. */
export type Notice =
  /** The page has taken the chunk sent last: the worker may start the next. */
  | { type: 'ack'; id: number }
  | { type: 'cancel'; id: number }
  /** A text stream's next piece of text. */
  | { type: 'stream.push'; id: number; text: string }
  /** Speak what the text stream has so far, the sentence under way included. */
  | { type: 'stream.flush'; id: number }
  /** The text stream's text is complete. */
  | { type: 'stream.close'; id: number };

/** A text stream's notices as the page's TextSplitterStream makes them, before they get the request's id. */
export type SplitterNotice = Notice extends infer N ? N extends { type: `stream.${string}` } ? Omit<N, 'id'> : never : never;

/** Everything the page sends. */
export type ToWorker = Request | Notice;

/** An error as it crosses: `code` is the engine's stable code where it has one. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
}

/** A chunk as the worker posts it: the chunk's info and its audio (transferred). */
export type WireChunk = Omit<ChunkInfo, 'text'> & { text: string; audio: Float32Array };

/** Everything the worker sends. */
export type FromWorker =
  | { [K in RequestType]: { type: 'result'; id: number; value: Results[K] } }[RequestType]
  | { type: 'error'; id: number; error: WireError }
  | { type: 'progress'; id: number; progress: LoadProgress | SynthesisProgress | (LoadProgress & { voice: string; done: number; total: number }) }
  | { type: 'chunk'; id: number; chunk: WireChunk }
  | { type: 'log'; id: number; event: Record<string, unknown> };
