// The demo: speak, stream, download; the engine's status and the voice caches.
import { KokoroTTS, wavBlob } from './kokoro-burn/index.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const config = {
  modelUrl: params.get('model') ?? 'model/kokoro-v1_0-int8.safetensors',
  voicesUrl: params.get('voices') ?? 'voices/',
  device: params.get('device') ?? 'auto',
};
let tts = null;
let controller = null;
let lastAudio = null;

function log(line) {
  const el = $('log');
  el.textContent = `${new Date().toISOString().slice(11, 23)} ${line}\n` + el.textContent.slice(0, 20000);
}

const mib = (b) => `${(b / 1048576).toFixed(1)} MiB`;

function setBusy(busy) {
  for (const id of ['play', 'stream', 'download', 'prewarm', 'lose']) $(id).disabled = busy || !tts;
  $('stop').disabled = !busy;
}

async function refreshStatus() {
  if (!tts) return;
  const info = await tts.info();
  const a = info.adapter || {};
  const rows = {
    backend: info.backend + (info.fallback ? ` (fell back from WebGPU: ${info.fallback.reason})` : ''),
    adapter: [a.name, a.vendor, a.driver, a.backend].filter(Boolean).join(' · ') || '—',
    'model': `${mib(info.modelBytes)} from ${info.modelFrom}`,
    'model load': `${info.loadMs.toFixed(0)} ms (parse, dequantize, upload)`,
    'wasm start': `${info.wasmMs.toFixed(0)} ms`,
    'offline ready': navigator.serviceWorker?.controller ? 'yes (service worker active)' : 'after reload',
  };
  $('engine').innerHTML = Object.entries(rows).map(([k, v]) => `<dt>${k}</dt><dd>${escape(v)}</dd>`).join('');
  const s = await tts.cache.stats();
  $('cache-summary').textContent =
    `memory: ${mib(s.memory.bytes)} of ${mib(s.memory.budget)}, hit rate ${(100 * s.memory.hitRate).toFixed(0)} % · ` +
    `IndexedDB: ${mib(s.store.bytes)} of ${mib(s.store.budget)}, hit rate ${(100 * s.store.hitRate).toFixed(0)} %, ` +
    `${s.store.networkFetches} downloads, ${s.store.evictions} evictions` +
    (s.store.prewarm ? ` · pre-warmed: ${s.store.prewarm.done.join(', ') || 'none'}` : '');
  const inMemory = new Map(s.memory.entries.map((e) => [e.key, e]));
  const names = new Set([...s.store.entries.map((e) => e.name), ...inMemory.keys()]);
  const stored = new Map(s.store.entries.map((e) => [e.name, e]));
  $('cache').innerHTML = '<tr><th>voice</th><th>where</th><th>size</th><th>uses</th><th>pinned</th><th></th></tr>' +
    [...names].map((n) => {
      const m = inMemory.get(n), d = stored.get(n);
      const where = [m && 'memory', d && 'IndexedDB'].filter(Boolean).join(' + ');
      return `<tr><td>${escape(n)}</td><td>${where}</td><td>${mib((d || m).size ?? m.bytes)}</td><td>${d?.uses ?? m?.hits ?? 0}</td>` +
        `<td>${(m?.pinned || d?.pinned) ? 'yes' : ''}</td><td><button data-evict="${escape(n)}">evict</button></td></tr>`;
    }).join('');
}

function escape(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

function options() {
  return { voice: $('mix').value.trim() || $('voice').value, speed: Number($('speed').value) || 1, lang: $('lang').value,
           signal: controller.signal, onProgress: showProgress };
}

function showProgress(p) {
  $('synth-progress').value = p.percent;
  $('synth-text').textContent = `chunk ${p.chunk}/${p.chunks} · ${(p.audioSeconds).toFixed(1)} s of audio · ~${(p.etaMs / 1000).toFixed(1)} s left`;
}

function showTimings(t) {
  const row = [t.bert, t.predictor, t.textEncoder, t.decoder, t.total].map((v) => `<td>${v.toFixed(0)}</td>`).join('');
  $('timings').innerHTML = '<tr><th>PL-BERT</th><th>prosody</th><th>text encoder</th><th>decoder</th><th>total</th></tr><tr>' + row + '</tr>';
}

async function run(kind) {
  controller = new AbortController();
  setBusy(true);
  const t0 = performance.now();
  try {
    if (kind === 'stream') {
      const ctx = new AudioContext({ sampleRate: 24000 });
      let at = ctx.currentTime + 0.05;
      let first = true;
      for await (const chunk of tts.stream($('text').value, options())) {
        if (first) { log(`first audio after ${(performance.now() - t0).toFixed(0)} ms`); first = false; }
        const buf = ctx.createBuffer(1, chunk.audio.length, chunk.sampleRate);
        buf.copyToChannel(chunk.audio, 0);
        const src = ctx.createBufferSource();
        src.buffer = buf; src.connect(ctx.destination);
        at = Math.max(at, ctx.currentTime); src.start(at); at += buf.duration;
        showTimings(chunk.timings);
      }
    } else {
      const audio = await tts.generate($('text').value, options());
      lastAudio = audio;
      log(`${audio.chunks.length} chunk(s), ${audio.duration.toFixed(2)} s of audio in ${audio.ms.toFixed(0)} ms on ${audio.backend} (RTF ${(audio.ms / 1000 / audio.duration).toFixed(2)})`);
      showTimings(audio.chunks.at(-1).timings);
      const url = URL.createObjectURL(audio.toWav());
      if (kind === 'download') {
        const a = document.createElement('a');
        a.href = url; a.download = 'kokoro.wav'; a.click();
      } else {
        $('player').src = url;
        await $('player').play().catch(() => {});
      }
    }
  } catch (e) {
    log(e.name === 'AbortError' ? 'stopped' : `error: ${e.message}`);
  } finally {
    setBusy(false);
    refreshStatus();
  }
}

async function main() {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js').then(() => log('service worker registered'), (e) => log(`no service worker: ${e.message}`));
  }
  const t0 = performance.now();
  tts = await KokoroTTS.load({
    ...config,
    onProgress: (p) => {
      if (p.percent != null) $('load-progress').value = p.percent;
      $('load-text').textContent = p.phase === 'download'
        ? `downloading the model: ${mib(p.loaded)} of ${mib(p.total)}, ~${(p.etaSeconds ?? 0).toFixed(0)} s left`
        : p.phase === 'cache' ? `reading the model from the cache: ${mib(p.loaded ?? 0)}` : p.phase;
    },
    onLog: (e) => log(JSON.stringify(e)),
  });
  $('load-progress').value = 100;
  $('load-text').textContent = `ready in ${((performance.now() - t0) / 1000).toFixed(1)} s on ${tts.status.backend}`;
  // Each voice with its language and gender from the voice manifest.
  const voices = await tts.voices();
  $('voice').innerHTML = voices.map((v) => {
    const about = [v.language, v.gender].filter(Boolean).join(', ');
    return `<option value="${escape(v.name)}"${v.name === 'af_heart' ? ' selected' : ''}>${escape(v.name)}${about ? ` (${escape(about)})` : ''}</option>`;
  }).join('');
  setBusy(false);
  refreshStatus();
}

$('play').onclick = () => run('play');
$('stream').onclick = () => run('stream');
$('download').onclick = () => (lastAudio ? (() => { const a = document.createElement('a'); a.href = URL.createObjectURL(wavBlob(lastAudio.audio)); a.download = 'kokoro.wav'; a.click(); })() : run('download'));
$('stop').onclick = () => controller?.abort();
$('prewarm').onclick = async () => {
  const names = $('prewarm-list').value.split(',').map((s) => s.trim()).filter(Boolean);
  const state = await tts.cache.prewarm(names, { onProgress: (p) => log(`pre-warm ${p.voice}: ${p.done}/${p.total}`) });
  log(`pre-warmed ${state.done.length}, failed ${state.failed.length}`);
  refreshStatus();
};
$('lose').onclick = async () => { log(`device destroyed: ${await tts.debug.loseDevice()}`); refreshStatus(); };
$('cache').onclick = async (e) => {
  const name = e.target.dataset?.evict;
  if (name) { await tts.cache.evict(name); refreshStatus(); }
};

main().catch((e) => { $('load-text').textContent = `failed: ${e.message}`; log(e.stack || e.message); });
