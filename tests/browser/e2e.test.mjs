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
  execFileSync('cargo', ['run', '--quiet', '-p', 'kokoro-cli', '--', 'say', '--phonemes', phonemes, '--voice', voice,
    '--device', 'cpu', '--deterministic', '--out', wav, '--report', report], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
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

    // Cancellation: abort after the first chunk of a long text; the next request still completes.
    const aborted = await page.evaluate(async () => {
      const c = new AbortController();
      const long = 'This sentence is one of many. '.repeat(40);
      let chunks = 0;
      const r = await window.tts.generate(long, { signal: c.signal, onChunk: () => { chunks += 1; c.abort(); } }).then(() => 'finished', (e) => e.name);
      await new Promise((res) => setTimeout(res, 100));
      const after = await window.tts.generate('Still here.');
      return { r, chunks, after: after.audio.length };
    });
    assert.equal(aborted.r, 'AbortError');
    assert.ok(aborted.after > 0);

    // Streaming yields chunks in order as they are made; a mix voice resolves.
    const streamed = await page.evaluate(async () => {
      const out = [];
      for await (const c of window.tts.stream('First sentence here. And a second one follows it.', { voice: 'af_bella(2)+af_sky(1)' })) out.push([c.index, c.audio.length]);
      return out;
    });
    assert.ok(streamed.length >= 1 && streamed.every(([i, n], k) => i === k && n > 0), JSON.stringify(streamed));
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
