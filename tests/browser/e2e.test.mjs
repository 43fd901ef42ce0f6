// End-to-end tests of the npm package in headless Chromium (Debian's), against the real weights
// and voices served on loopback. Run by scripts/test.sh after scripts/build-web.sh:
//   node --test tests/browser/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../www/serve.mjs';
import { launch } from './chromium.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const SENTENCE = 'The quick brown fox jumps over the lazy dog.';
// Log-mel distance (mean |difference| of log10 mel energies) under which two renderings of the
// same phonemes count as the same audio; native flex vs native wgpu sit far below it.
const MAX_LOG_MEL = 0.05;

let server;
before(async () => {
  assert.ok(fs.existsSync(path.join(repo, 'www/dist/kokoro-burn/pkg/kokoro_wasm_bg.wasm')), 'run scripts/build-web.sh first');
  server = await startServer({ extra: { '/harness/': here } });
});
after(async () => server?.close());

/** 24 kHz mono 16-bit WAV -> floats. */
function readWav(file) {
  const b = fs.readFileSync(file);
  let at = 12;
  while (b.toString('ascii', at, at + 4) !== 'data') at += 8 + b.readUInt32LE(at + 4);
  const n = b.readUInt32LE(at + 4) / 2;
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = b.readInt16LE(at + 8 + 2 * i) / 32768;
  return out;
}

/** The native build's rendering of `phonemes` (CPU, deterministic noise): samples and durations. */
function native(phonemes, voice) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kokoro-native-'));
  const wav = path.join(dir, 'n.wav');
  const report = path.join(dir, 'n.json');
  const args = ['say', '--phonemes', phonemes, '--voice', voice, '--device', 'cpu', '--deterministic', '--out', wav, '--report', report];
  // scripts/test.sh hands over the binary its one workspace build made: `cargo run -p kokoro-cli`
  // resolves other features than `--workspace` and would rebuild burn (a quarter of an hour on 2 cores).
  if (process.env.KOKORO_BIN) execFileSync(process.env.KOKORO_BIN, args, { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  else execFileSync('cargo', ['run', '--quiet', '-p', 'kokoro-cli', '--', ...args], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  const r = { audio: readWav(wav), durations: JSON.parse(fs.readFileSync(report, 'utf8')).durations };
  fs.rmSync(dir, { recursive: true, force: true });
  return r;
}

async function harness(context) {
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.error('[page]', m.text()); });
  await page.goto(server.url + 'harness/harness.html');
  await page.waitForFunction(() => window.harnessReady);
  return page;
}

/** In the page: load, speak `text` deterministically; returns audio (as an array), chunks, status. */
async function speak(page, { device, text, voice = 'af_heart', strict = false }) {
  return page.evaluate(async ({ device, text, voice, strict }) => {
    const progress = [];
    window.tts ??= await window.kokoro.KokoroTTS.load({ device, strict, modelUrl: '/model/kokoro-v1_0-int8.safetensors', voicesUrl: '/voices/', onProgress: (p) => progress.push(p.phase) });
    const t0 = performance.now();
    const a = await window.tts.generate(text, { voice, deterministic: true });
    return { audio: Array.from(a.audio), chunks: a.chunks, ms: performance.now() - t0, status: window.tts.status, info: await window.tts.info(), progress };
  }, { device, text, voice, strict });
}

async function distance(page, a, b) {
  return page.evaluate(({ a, b }) => window.tts.debug.logMelDistance(new Float32Array(a), new Float32Array(b)), { a, b });
}

async function compareWithNative(page, got, voice) {
  assert.equal(got.chunks.length, 1);
  const ref = native(got.chunks[0].phonemes, voice);
  assert.deepEqual(got.chunks[0].durations, ref.durations, 'same durations as the native build');
  assert.equal(got.audio.length, ref.audio.length);
  // The native side went through a 16-bit WAV: quantize ours the same way before comparing.
  const q = got.audio.map((v) => Math.round(Math.max(-1, Math.min(1, v)) * 32767) / 32768);
  const d = await distance(page, q, ref.audio);
  console.log(`  ${got.info.backend}: ${got.audio.length} samples in ${got.ms.toFixed(0)} ms, log-mel distance to native ${d.toFixed(5)}`);
  assert.ok(d < MAX_LOG_MEL, `log-mel distance ${d} >= ${MAX_LOG_MEL}`);
}

test('CPU fallback backend in the worker speaks like the native build', async () => {
  const b = await launch({ webgpu: false });
  try {
    const page = await harness(b.context);
    const got = await speak(page, { device: 'auto', text: SENTENCE });
    // No WebGPU in this browser: 'auto' must land on the CPU and say why.
    assert.equal(got.info.backend, 'cpu');
    assert.match(got.info.fallback.reason, /WebGPU|adapter/);
    assert.ok(got.progress.includes('download') && got.progress.includes('ready'), `progress phases: ${got.progress}`);
    await compareWithNative(page, got, 'af_heart');

    // Bad input: clear errors, and the engine still works afterwards.
    const errors = await page.evaluate(async () => {
      const e = async (p) => p.then(() => 'no error', (x) => `${x.name}: ${x.message}`);
      return {
        unknown: await e(window.tts.generate('Hi.', { voice: 'af_nobody' })),
        hostile: await e(window.tts.generate('Hi.', { voice: '../../etc/passwd' })),
        badMix: await e(window.tts.generate('Hi.', { voice: 'af_heart(2)+' })),
        lang: await e(window.tts.generate('Hi.', { lang: 'fr-fr' })),
      };
    });
    assert.match(errors.unknown, /unknown voice "af_nobody"/);
    assert.match(errors.hostile, /expected a voice name/);
    assert.match(errors.badMix, /bad voice mix .* at character/);
    assert.match(errors.lang, /language|dialect/i);

    // Cancellation, as the worker saw it: abort a long text after its first chunk and ask for the
    // next text at once. The worker's own record (the messages it sent, its request events) must
    // show that it stopped: no chunk of the aborted request sent after the abort, and the next
    // request started as soon as the aborted one ended. An abort inside onChunk comes before the
    // worker starts another chunk, so nothing more is synthesized; an abort a moment later lands
    // while the second chunk is being synthesized (seconds, on this thread), which is then dropped.
    const cancelAfterFirstChunk = (later) => page.evaluate(async (later) => {
      const events = [];
      window.tts.onLog = (e) => { if (e.event === 'request') events.push(e); };
      const from = window.wire.length;
      const c = new AbortController();
      let next = null;
      const abort = () => { c.abort(); next = window.tts.generate('Still here.'); };
      const first = window.tts.generate('This sentence is one of many. '.repeat(40), { pack: false, signal: c.signal, onChunk: (chunk) => {
        if (chunk.index === 0) later ? setTimeout(abort, 0) : abort();
      } });
      const r = await window.outcome(first, 600_000);
      while (!next) await new Promise((res) => setTimeout(res, 10));
      const after = await next;
      window.tts.onLog = null;
      const [a, b] = window.wire.slice(from).filter((m) => m.dir === 'out' && m.type === 'generate').map((m) => m.id);
      const chunks = window.wire.slice(from).filter((m) => m.dir === 'in' && m.type === 'chunk' && m.id === a).map((m) => m.index);
      return { r, a, b, chunks, events: events.map(({ id, state, outcome, synthesized, posted }) => ({ id, state, outcome, synthesized, posted })), after: after.audio.length };
    }, later);
    for (const [later, synthesized] of [[false, 1], [true, 2]]) {
      const cancel = await cancelAfterFirstChunk(later);
      const when = later ? 'abort after onChunk' : 'abort in onChunk';
      assert.equal(cancel.r.error, 'AbortError: generation cancelled', when);
      assert.deepEqual(cancel.chunks, [0], `${when}: the worker sent no chunk of the aborted request after the abort`);
      assert.deepEqual(cancel.events, [
        { id: cancel.a, state: 'start', outcome: undefined, synthesized: undefined, posted: undefined },
        { id: cancel.a, state: 'end', outcome: 'cancelled', synthesized, posted: 1 },
        { id: cancel.b, state: 'start', outcome: undefined, synthesized: undefined, posted: undefined },
        { id: cancel.b, state: 'end', outcome: 'done', synthesized: 1, posted: 1 },
      ], `${when}: at most the chunk under way when the abort came was finished, then the next request started`);
      assert.ok(cancel.after > 0);
    }

    // Streaming: exactly one chunk per sentence (pack: false), in order, each yielded before the
    // worker sent the next (streamed as made, not collected); a mix voice resolves.
    const streamed = await page.evaluate(async () => {
      const from = window.wire.length;
      const chunksSent = () => window.wire.slice(from).filter((m) => m.dir === 'in' && m.type === 'chunk').length;
      const out = [];
      for await (const c of window.tts.stream('First sentence here. And a second one follows it.', { voice: 'af_bella(2)+af_sky(1)' })) {
        out.push({ index: c.index, text: c.text, samples: c.audio.length, sentSoFar: chunksSent() });
      }
      return out;
    });
    assert.deepEqual(streamed.map(({ index, text, sentSoFar }) => ({ index, text, sentSoFar })), [
      { index: 0, text: 'First sentence here.', sentSoFar: 1 },
      { index: 1, text: 'And a second one follows it.', sentSoFar: 2 },
    ]);
    assert.ok(streamed.every((c) => c.samples > 0), JSON.stringify(streamed));

    // Leaving a `for await` over stream() early cancels the request in the worker: one cancel
    // message, the worker's request ends 'cancelled' and sends no chunk after the first.
    const early = await page.evaluate(async () => {
      const events = [];
      window.tts.onLog = (e) => { if (e.event === 'request') events.push(e); };
      const from = window.wire.length;
      let got = 0;
      for await (const c of window.tts.stream('One sentence here. Two sentences here. Three sentences here. Four sentences here.')) {
        got += 1;
        if (c.index === 0) break;
      }
      while (!events.some((e) => e.state === 'end')) await new Promise((r) => setTimeout(r, 10));
      window.tts.onLog = null;
      const id = window.wire.slice(from).find((m) => m.dir === 'out' && m.type === 'generate').id;
      const sent = window.wire.slice(from).filter((m) => m.id === id);
      return { got, cancels: sent.filter((m) => m.dir === 'out' && m.type === 'cancel').length,
        chunks: sent.filter((m) => m.dir === 'in' && m.type === 'chunk').length, end: events.find((e) => e.state === 'end') };
    });
    assert.equal(early.got, 1);
    assert.equal(early.cancels, 1, 'breaking out of the loop sent one cancel');
    assert.equal(early.end.outcome, 'cancelled', JSON.stringify(early.end));
    assert.equal(early.end.posted, 1, 'no chunk after the one the loop took');
    assert.equal(early.chunks, 1);

    // Priorities: while one request runs, a bulk, a default and an interactive one wait; they start
    // interactive first, bulk last, whatever the order they came in. Errors carry the engine's code.
    const order = await page.evaluate(async () => {
      const starts = [];
      window.tts.onLog = (e) => { if (e.event === 'request' && e.state === 'start') starts.push(e.id); };
      const from = window.wire.length;
      const all = [
        window.tts.generate('A request in flight keeps the worker busy for a moment.'),
        window.tts.generate('Bulk.', { priority: 'bulk' }),
        window.tts.generate('Default.'),
        window.tts.generate('Interactive.', { priority: 'interactive' }),
      ];
      await Promise.all(all);
      window.tts.onLog = null;
      const ids = window.wire.slice(from).filter((m) => m.dir === 'out' && m.type === 'generate').map((m) => m.id);
      const code = await window.tts.generate('Hi.', { voice: 'af_nobody' }).catch((e) => e.code);
      const badPriority = await window.outcome(window.tts.generate('Hi.', { priority: 'urgent' }));
      return { ids, starts, code, badPriority };
    });
    const [busy, bulk, plain, interactive] = order.ids;
    assert.deepEqual(order.starts, [busy, interactive, plain, bulk], JSON.stringify(order));
    assert.equal(order.code, 'unknown_voice');
    assert.match(order.badPriority.error, /^TypeError: priority must be one of interactive, default, bulk/);

    // Speeds outside the model's range (or not numbers) fail at once, before any message to the
    // worker: a request in flight is not disturbed and the voice asked for is never loaded.
    const speeds = await page.evaluate(async () => {
      const from = window.wire.length;
      const running = window.tts.generate('A request in flight. It keeps the worker busy.', { pack: false });
      const bad = {};
      for (const speed of [5, 0.2, 0, -1, NaN, Infinity, '2', null]) {
        bad[String(speed)] = await window.outcome(window.tts.generate('Hi.', { speed, voice: 'am_echo' }));
      }
      bad.stream = await window.outcome(window.tts.stream('Hi.', { speed: 4.5, voice: 'am_echo' }).next());
      const posted = window.wire.slice(from).filter((m) => m.dir === 'out' && m.type === 'generate').length;
      const busy = await running;
      const edges = [(await window.tts.generate('Hi.', { speed: 0.25 })).audio.length, (await window.tts.generate('Hi.', { speed: 4 })).audio.length];
      const stats = await window.tts.cache.stats();
      return { bad, posted, chunks: busy.chunks.length, edges, range: (await window.tts.info()).speedRange,
        client: [window.kokoro.MIN_SPEED, window.kokoro.MAX_SPEED],
        echo: stats.memory.entries.some((e) => e.key === 'am_echo') || stats.store.entries.some((e) => e.name === 'am_echo') };
    });
    for (const [speed, o] of Object.entries(speeds.bad)) {
      assert.match(o.error ?? JSON.stringify(o), /^RangeError: speed must be a number from 0\.25 to 4, got /, `speed ${speed}`);
    }
    assert.equal(speeds.posted, 1, 'no refused request reached the worker');
    assert.equal(speeds.chunks, 2, 'the request in flight completed');
    assert.equal(speeds.echo, false, 'the voice of a refused request was not loaded');
    assert.ok(speeds.edges[0] > speeds.edges[1] && speeds.edges[1] > 0, `0.25 and 4 are accepted: ${speeds.edges}`);
    assert.deepEqual(speeds.client, speeds.range, "the client's range is the engine's");
  } finally {
    await b.close();
  }
});

test('a TextSplitterStream is spoken as its text arrives, flushed, survives a trap, and cancels', async () => {
  const b = await launch({ webgpu: false });
  try {
    const page = await harness(b.context);
    const got = await page.evaluate(async () => {
      const { KokoroTTS, TextSplitterStream } = window.kokoro;
      const tts = window.tts = await KokoroTTS.load({ device: 'cpu', modelUrl: '/model/kokoro-v1_0-int8.safetensors', voicesUrl: '/voices/' });
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const events = [];
      tts.onLog = (e) => { if (e.event === 'request' || e.event === 'restart') events.push(e); };
      // Word by word, as an LLM's tokens come: each word with the space before it.
      const pushWords = async (splitter, text) => { for (const w of text.split(/(?= )/)) { splitter.push(w); await sleep(20); } };
      const until = async (what, ms = 300_000) => { const t0 = performance.now(); while (!what()) { if (performance.now() - t0 > ms) throw new Error('timed out'); await sleep(20); } };

      // 1. Incremental: the first sentence is spoken while the text is still open (before close()),
      // a flush speaks a sentence that has no end, a trap on the CPU restarts the engine and the
      // stream goes on on the new instance (its chunker rebuilt from the text so far).
      const from = window.wire.length;
      const splitter = new TextSplitterStream();
      const chunks = [];
      let loopEnded = false;
      const loop = (async () => {
        for await (const c of tts.stream(splitter, { voice: 'af_heart' })) {
          chunks.push({ index: c.index, text: c.text, samples: c.audio.length, words: c.words.map((w) => w.text), closedYet: splitter.closed });
        }
        loopEnded = true;
      })();
      await pushWords(splitter, 'The first sentence arrives word by word. A second');
      await until(() => chunks.length === 1);
      const afterFirst = { chunks: chunks.length, loopEnded };
      await pushWords(splitter, ' one follows it. And a third has no end');
      await until(() => chunks.length === 2);
      await sleep(500);
      const beforeFlush = chunks.length;       // the third sentence waits: it may go on
      splitter.flush();
      await until(() => chunks.length === 3);
      await tts.debug.trapNextChunks(1);
      await pushWords(splitter, ' Then a crash comes. And the last words.');
      splitter.close();
      await loop;
      const id = window.wire.slice(from).find((m) => m.dir === 'out' && m.type === 'stream').id;
      const notices = window.wire.slice(from).filter((m) => m.dir === 'out' && m.id === id).map((m) => m.type);
      const streamEnd = events.find((e) => e.event === 'request' && e.id === id && e.state === 'end');
      const restarts = events.filter((e) => e.event === 'restart').length;

      // 2. Leaving the loop while the stream waits for text (parked, nothing to speak): one cancel,
      // and the worker ends the request at once, 'cancelled', having posted the one chunk.
      events.length = 0;
      const from2 = window.wire.length;
      const parked = new TextSplitterStream();
      parked.push('Only one sentence is complete. The next one');
      let got2 = 0;
      for await (const c of tts.stream(parked)) { got2 += 1; if (c.index === 0) break; }
      await until(() => events.some((e) => e.state === 'end'), 10_000);
      parked.push(' goes nowhere.');     // the request is over: dropped, no error, no message
      await sleep(100);
      const id2 = window.wire.slice(from2).find((m) => m.dir === 'out' && m.type === 'stream').id;
      const sent2 = window.wire.slice(from2).filter((m) => m.id === id2);
      const early = { got: got2, end: events.find((e) => e.state === 'end'),
        cancels: sent2.filter((m) => m.dir === 'out' && m.type === 'cancel').length,
        pushesAfterCancel: sent2.slice(sent2.findIndex((m) => m.type === 'cancel')).filter((m) => m.type === 'stream.push').length,
        chunks: sent2.filter((m) => m.dir === 'in' && m.type === 'chunk').length };

      // 3. Bad input: clear errors, at once; an engine error keeps its code.
      const closed = new TextSplitterStream();
      closed.push('Done.');
      closed.close();
      closed.close();                    // twice: nothing
      const error = (f) => { try { f(); return 'no error'; } catch (e) { return `${e.name}: ${e.message}`; } };
      const twice = new TextSplitterStream();
      const first = tts.stream(twice);
      const firstNext = first.next();
      const badLang = new TextSplitterStream();
      badLang.push('Hello.');
      badLang.close();
      const bad = {
        pushAfterClose: error(() => closed.push('More.')),
        flushAfterClose: error(() => closed.flush()),
        notText: error(() => new TextSplitterStream().push(42)),
        secondStream: (await window.outcome(tts.stream(twice).next())).error,
        notInput: (await window.outcome(tts.stream(42).next())).error,
        lang: await tts.stream(badLang, { lang: 'fr-fr' }).next().then(() => 'no error', (e) => `${e.code}: ${e.message}`),
      };
      twice.push('Still fine.');
      twice.close();
      const firstChunk = (await firstNext).value?.text;
      await first.return();
      tts.onLog = null;
      return { chunks, afterFirst, beforeFlush, notices, streamEnd, restarts, early, bad, firstChunk };
    });
    // Incremental: chunk 0 came while the text was open, before the rest was even pushed.
    assert.deepEqual(got.afterFirst, { chunks: 1, loopEnded: false });
    assert.equal(got.chunks[0].closedYet, false, 'the first chunk arrived before close()');
    assert.equal(got.beforeFlush, 2, 'a sentence without an end waits for more text');
    assert.deepEqual(got.chunks.map(({ index, text, closedYet }) => ({ index, text, closedYet })), [
      { index: 0, text: 'The first sentence arrives word by word.', closedYet: false },
      { index: 1, text: 'A second one follows it.', closedYet: false },
      { index: 2, text: 'And a third has no end', closedYet: false },
      { index: 3, text: 'Then a crash comes.', closedYet: true },
      { index: 4, text: 'And the last words.', closedYet: true },
    ]);
    assert.deepEqual(got.chunks[2].words, ['And', 'a', 'third', 'has', 'no', 'end']);
    assert.ok(got.chunks.every((c) => c.samples > 0), JSON.stringify(got.chunks));
    assert.equal(got.restarts, 1, 'the trap restarted the engine once');
    assert.equal(got.streamEnd.outcome, 'done', JSON.stringify(got.streamEnd));
    assert.equal(got.streamEnd.posted, 5);
    assert.equal(got.notices.filter((t) => t === 'stream.flush').length, 1);
    assert.equal(got.notices.filter((t) => t === 'stream.close').length, 1);
    assert.ok(got.notices.filter((t) => t === 'stream.push').length >= 20, 'the text went to the worker word by word');
    // Leaving the loop: the worker ended the parked request at once.
    assert.equal(got.early.got, 1);
    assert.equal(got.early.cancels, 1, 'breaking out of the loop sent one cancel');
    assert.equal(got.early.end.outcome, 'cancelled', JSON.stringify(got.early.end));
    assert.equal(got.early.end.posted, 1);
    assert.equal(got.early.chunks, 1);
    assert.equal(got.early.pushesAfterCancel, 0, 'text pushed after the request ended was not sent');
    // Bad input.
    assert.equal(got.bad.pushAfterClose, "TypeError: TextSplitterStream.push() after close(): the stream's text is complete");
    assert.equal(got.bad.flushAfterClose, "TypeError: TextSplitterStream.flush() after close(): the stream's text is complete");
    assert.equal(got.bad.notText, 'TypeError: TextSplitterStream.push takes strings, got number');
    assert.match(got.bad.secondStream, /^TypeError: this TextSplitterStream already feeds a stream/);
    assert.match(got.bad.notInput, /^TypeError: stream\(\) takes a string or a TextSplitterStream, got number/);
    assert.match(got.bad.lang, /^bad_language: /);
    assert.equal(got.firstChunk, 'Still fine.', 'the stream that had the splitter first was not disturbed');
  } finally {
    await b.close();
  }
});

test('a trap in the engine re-creates its instance; a dead worker fails every later call at once', async () => {
  const b = await launch({ webgpu: false });
  try {
    const page = await harness(b.context);
    const got = await page.evaluate(async () => {
      const tts = window.tts = await window.kokoro.KokoroTTS.load({ device: 'cpu', modelUrl: '/model/kokoro-v1_0-int8.safetensors', voicesUrl: '/voices/' });
      const logs = [];
      tts.onLog = (e) => logs.push(e);
      const t0 = performance.now();
      const ref = await tts.generate('Hello world.', { deterministic: true });
      // "Hung": not settled within five times what a restart and the request take here (measured).
      const bound = 5 * (tts.status.wasmMs + tts.status.loadMs + performance.now() - t0);
      const instances = async () => (await window.outcome(tts.info(), bound)).value?.instances;
      const durations = (o) => o.value?.chunks.map((c) => c.durations);
      const before = await instances();

      // One trap (a panic inside the engine's future, the kind whose promise never settles): the
      // worker re-creates the instance, redoes the chunk, and the request completes.
      await tts.debug.trapNextChunks(1);
      const once = await window.outcome(tts.generate('Hello world.', { deterministic: true }), bound);
      const afterOnce = await instances();
      // A trap on the retry too: the request fails naming the crash; the next request restarts the
      // engine again and works.
      await tts.debug.trapNextChunks(2);
      const twice = await window.outcome(tts.generate('Hello world.', { deterministic: true }), bound);
      const next = await window.outcome(tts.generate('Hello world.', { deterministic: true }), bound);
      const afterTwice = await instances();
      // Audio too short for a log-mel spectrogram: an error, not a trap (no restart).
      const short = await window.outcome(tts.debug.logMelDistance(new Float32Array(100), new Float32Array(100)), bound);
      const empty = await window.outcome(tts.debug.logMelDistance(new Float32Array(0), new Float32Array(0)), bound);
      const afterShort = await instances();

      // A worker that dies (an uncaught error, then nothing): the request in flight and every later
      // call reject at once with a clear error instead of waiting forever.
      const inFlight = tts.generate('This sentence is one of many. '.repeat(5), { pack: false });
      await tts.debug.crash();
      const crashed = await window.outcome(inFlight, bound);
      const later = { info: await window.outcome(tts.info()), generate: await window.outcome(tts.generate('Hi.')),
                      stream: await window.outcome(tts.stream('Hi.').next()) };
      // The same after dispose().
      const u = await window.kokoro.KokoroTTS.load({ device: 'cpu', modelUrl: '/model/kokoro-v1_0-int8.safetensors', voicesUrl: '/voices/' });
      const disposing = u.generate('Hello world.');
      u.dispose();
      const disposed = { inFlight: await window.outcome(disposing), later: await window.outcome(u.voices()) };
      return { ref: ref.chunks.map((c) => c.durations), before, once: durations(once) ?? once, afterOnce, twice, next: durations(next) ?? next, afterTwice,
               short, empty, afterShort, crashed, later, disposed,
               restarts: logs.filter((e) => e.event === 'restart').map((e) => e.reason) };
    });
    assert.deepEqual(got.once, got.ref, 'one trap: the request completed, same durations');
    assert.equal(got.afterOnce, got.before + 1, 'one trap: one new instance');
    assert.match(got.twice.error ?? JSON.stringify(got.twice), /^EngineCrash: the engine crashed: .*simulated crash while synthesizing/);
    assert.deepEqual(got.next, got.ref, 'after a failed request the engine works again');
    assert.equal(got.afterTwice, got.before + 3, 'the failed retry left a crashed instance: the next request re-created it');
    assert.ok(got.restarts.length === 3 && got.restarts.every((r) => /simulated crash while synthesizing/.test(r)), JSON.stringify(got.restarts));
    assert.match(got.short.error ?? JSON.stringify(got.short), /at least 513 samples.* got 100/);
    assert.match(got.empty.error ?? JSON.stringify(got.empty), /at least 513 samples.* got 0/);
    assert.equal(got.afterShort, got.afterTwice, 'short audio is an error, not a trap');
    assert.match(got.crashed.error ?? JSON.stringify(got.crashed), /^WorkerError: the kokoro-burn worker stopped: .*simulated worker crash/);
    for (const [call, o] of Object.entries(got.later)) assert.equal(o.error, got.crashed.error, `${call} after the crash`);
    assert.match(got.disposed.inFlight.error ?? JSON.stringify(got.disposed.inFlight), /^WorkerError: .*disposed/);
    assert.equal(got.disposed.later.error, got.disposed.inFlight.error, 'a call after dispose()');
  } finally {
    await b.close();
  }
});

test('WebGPU (SwiftShader) in the worker speaks like the native build; a lost device falls back to the CPU', async () => {
  const b = await launch({ webgpu: true });
  try {
    const page = await harness(b.context);
    const got = await speak(page, { device: 'webgpu', strict: true, text: 'Hello world.' });
    assert.equal(got.info.backend, 'webgpu');
    console.log(`  adapter: ${JSON.stringify(got.info.adapter)}`);
    await compareWithNative(page, got, 'af_heart');

    const lost = await page.evaluate(async () => {
      const destroyed = await window.tts.debug.loseDevice();
      const logs = [];
      const a = await window.tts.generate('Hello world.', { deterministic: true });
      return { destroyed, backend: a.backend, chunkBackend: a.chunks[0].backend, info: await window.tts.info(), audio: Array.from(a.audio) };
    });
    assert.equal(lost.destroyed, true);
    assert.equal(lost.chunkBackend, 'cpu');
    assert.equal(lost.info.backend, 'cpu');
    assert.match(lost.info.fallback.reason, /lost|GPU/);
    assert.equal(lost.audio.length, got.audio.length, 'the request completed with the same durations');

    // A trap on WebGPU: a fresh instance on the CPU redoes the chunk (a second engine, still on WebGPU).
    const trapped = await page.evaluate(async () => {
      const tts = await window.kokoro.KokoroTTS.load({ device: 'webgpu', strict: true, modelUrl: '/model/kokoro-v1_0-int8.safetensors', voicesUrl: '/voices/' });
      const logs = [];
      tts.onLog = (e) => logs.push(e);
      await tts.debug.trapNextChunks(1);
      // "Hung": not settled within ten times this engine's load (the restart loads it again on the CPU).
      const a = await window.outcome(tts.generate('Hello world.', { deterministic: true }), 10 * (tts.status.wasmMs + tts.status.loadMs) + 60_000);
      const info = await window.outcome(tts.info(), 60_000);
      tts.dispose();
      return { backend: tts.status.backend, samples: a.value?.audio.length ?? a, chunkBackend: a.value?.chunks[0].backend, info: info.value ?? info,
               restarts: logs.filter((e) => e.event === 'restart').map((e) => `${e.from} -> ${e.to}: ${e.reason}`) };
    });
    assert.equal(trapped.backend, 'webgpu');
    assert.equal(trapped.samples, got.audio.length, 'the request completed with the same durations');
    assert.equal(trapped.chunkBackend, 'cpu');
    assert.equal(trapped.info.instances, 2, 'a new instance');
    assert.equal(trapped.info.backend, 'cpu');
    assert.match(trapped.info.fallback.reason, /simulated crash while synthesizing/);
    assert.deepEqual(trapped.restarts.map((r) => r.split(':')[0]), ['webgpu -> cpu'], JSON.stringify(trapped.restarts));
  } finally {
    await b.close();
  }
});

test('IndexedDB voice store: survives a reload, pre-warmed voices need no network, quota errors evict and continue', async () => {
  const b = await launch({ webgpu: false });
  try {
    let page = await harness(b.context);
    await page.evaluate(async () => {
      window.tts = await window.kokoro.KokoroTTS.load({ device: 'cpu', modelUrl: '/model/kokoro-v1_0-int8.safetensors', voicesUrl: '/voices/' });
      await window.tts.generate('One.', { voice: 'am_adam' });
      await window.tts.cache.prewarm(['af_sky', 'bf_emma']);
    });
    const fetched = (name) => server.requests.get(`/voices/${name}.bin`) || 0;
    const before = { sky: fetched('af_sky'), emma: fetched('bf_emma'), adam: fetched('am_adam'), model: server.requests.get('/model/kokoro-v1_0-int8.safetensors') };
    assert.ok(before.sky >= 1 && before.emma >= 1 && before.adam >= 1);

    await page.reload();
    await page.waitForFunction(() => window.harnessReady);
    const after = await page.evaluate(async () => {
      window.tts = await window.kokoro.KokoroTTS.load({ device: 'cpu', modelUrl: '/model/kokoro-v1_0-int8.safetensors', voicesUrl: '/voices/' });
      const warm = await window.tts.cache.stats();
      await window.tts.generate('Two.', { voice: 'af_sky' });
      await window.tts.generate('Three.', { voice: 'bf_emma' });
      await window.tts.generate('Four.', { voice: 'am_adam' });
      return { warm, stats: await window.tts.cache.stats(), info: await window.tts.info() };
    });
    // Nothing downloaded again: the model from the Cache API, the voices from IndexedDB.
    assert.equal(fetched('af_sky'), before.sky);
    assert.equal(fetched('bf_emma'), before.emma);
    assert.equal(fetched('am_adam'), before.adam);
    assert.equal(server.requests.get('/model/kokoro-v1_0-int8.safetensors'), before.model);
    assert.equal(after.info.modelFrom, 'cache');
    // Pre-warm state persisted and re-applied at load: pinned in memory before any request.
    assert.deepEqual(after.warm.store.prewarm.done, ['af_sky', 'bf_emma']);
    const pinned = after.warm.memory.entries.filter((e) => e.pinned).map((e) => e.key).sort();
    assert.deepEqual(pinned, ['af_sky', 'bf_emma']);
    const adam = after.stats.store.entries.find((e) => e.name === 'am_adam');
    assert.ok(adam.uses >= 2, `usage persisted across the reload: ${JSON.stringify(adam)}`);

    // A full disk: the write fails, the store evicts and retries, the request completes.
    const quota = await page.evaluate(async () => {
      await window.tts.debug.failStoreWrites(1);
      const a = await window.tts.generate('Five.', { voice: 'am_michael' });
      return { samples: a.audio.length, stats: await window.tts.cache.stats() };
    });
    assert.ok(quota.samples > 0);
    assert.equal(quota.stats.store.quotaErrors, 1);
    assert.ok(quota.stats.store.entries.some((e) => e.name === 'am_michael'), 'stored after evicting');
    assert.ok(quota.stats.store.entries.some((e) => e.name === 'af_sky'), 'pinned voices are not the ones evicted');

    // LRU by bytes: a budget of three voices keeps the two pinned and the most recent one.
    const lru = await page.evaluate(async () => {
      await window.tts.cache.setBudget({ storeBytes: 3 * 522240 });
      await window.tts.generate('Six.', { voice: 'bm_george' });
      return (await window.tts.cache.stats()).store.entries.map((e) => e.name).sort();
    });
    assert.deepEqual(lru, ['af_sky', 'bf_emma', 'bm_george']);
  } finally {
    await b.close();
  }
});

test('the demo app works offline after the first visit', async () => {
  // Its own server (origin): stopping it is cutting the network.
  const own = await startServer();
  const b = await launch({ webgpu: false });
  try {
    const page = await b.context.newPage();
    await page.goto(own.url + '?device=cpu');
    await page.waitForFunction(() => document.getElementById('load-text').textContent.startsWith('ready'), null, { timeout: 300_000 });
    await page.waitForFunction(() => document.querySelectorAll('#voice option').length > 0);
    // First visit: speak once (the voice goes to IndexedDB) and let the service worker finish installing.
    await page.click('#play');
    await page.waitForFunction(() => /chunk\(s\)|error/.test(document.getElementById('log').textContent), null, { timeout: 300_000 });
    assert.equal(await page.evaluate(() => navigator.serviceWorker.ready.then((r) => r.active.state)), 'activated');
    await own.close();
    await page.reload();
    await page.waitForFunction(() => /^(ready|failed)/.test(document.getElementById('load-text').textContent), null, { timeout: 300_000 });
    assert.match(await page.textContent('#load-text'), /^ready/);
    await page.click('#play');
    await page.waitForFunction(() => /chunk\(s\)|error/.test(document.getElementById('log').textContent), null, { timeout: 300_000 });
    const log = await page.textContent('#log');
    assert.match(log, /1 chunk\(s\), [\d.]+ s of audio/, log);
  } finally {
    await b.close();
    await own.close().catch(() => {});
  }
});
