// Side by side in one Chromium run on this machine: kokoro-burn (this repo's npm package) and
// kokoro-js 1.2.1 (npm), same text, same voice, same backend; time to first audio and real-time
// factor. Everything is local: kokoro-js's hub and CDN URLs are routed to files on disk (the int8
// export laid out by make_kokoro_js_model.py, the voices kokoro-js ships, the onnxruntime-web
// build it bundles).
//
//   scripts/build-web.sh && (cd benches/browser && npm install --ignore-scripts)
//   scripts/py benches/browser/make_kokoro_js_model.py   (the project's venv: needs `onnx`)
//   node benches/browser/bench.mjs [--device cpu|webgpu] [--precision f32,int8] [--text "..."]
//        [--kokoro-js q8,fp32] [--isolated] [--kokoro-js-threads N]
//
// kokoro-js's best CPU configuration is fp32 on 2 threads in a cross-origin isolated page:
// `--kokoro-js q8,fp32 --isolated --kokoro-js-threads 2`. `--isolated` serves every page with
// COOP/COEP (kokoro-burn's pages too) and onnxruntime-web from this server (its threads' workers
// must be same-origin). onnxruntime-web picks min(4, ceil(hardwareConcurrency / 2)) threads, one
// on a 2-core machine, and kokoro-js does not expose its setting: the page reports
// hardwareConcurrency as 2N to it, and counts the workers onnxruntime-web really starts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../www/serve.mjs';
import { launch } from '../../tests/browser/chromium.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const cache = process.env.KOKORO_CACHE || path.join(os.homedir(), '.cache', 'kokoro-burn');
const modelDir = path.join(cache, 'kokoro-js-model');
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const device = arg('--device', 'cpu');
// kokoro-burn's precisions to time (the load option `precision`), each on a fresh page.
const precisions = arg('--precision', 'f32').split(',');
// kokoro-js's dtypes to time (q8: the int8 export; fp32: its float twin), each on a fresh page.
const kjsDtypes = arg('--kokoro-js', 'q8').split(',');
const isolated = process.argv.includes('--isolated');
const kjsThreads = Number(arg('--kokoro-js-threads', '0'));
if (kjsThreads > 1 && !isolated) throw new Error('--kokoro-js-threads needs --isolated (threads need SharedArrayBuffer)');
const text = arg('--text', 'Kokoro is an open-weight text-to-speech model with eighty-two million parameters. ' +
  'Despite its lightweight architecture, it delivers quality comparable to larger models while being significantly faster. ' +
  'This benchmark reads the same three sentences with both runtimes.');
const warm = 'Warming up.';

const modelFiles = { q8: 'onnx/model_quantized.onnx', fp32: 'onnx/model.onnx' };
for (const dtype of kjsDtypes) if (!modelFiles[dtype]) throw new Error(`--kokoro-js ${dtype}: q8 or fp32`);
for (const f of [...kjsDtypes.map((d) => path.join(modelDir, modelFiles[d])), path.join(here, 'node_modules/kokoro-js/dist/kokoro.web.js')]) {
  if (!fs.existsSync(f)) throw new Error(`${f} is missing: see the setup lines at the top of this file`);
}

const server = await startServer({ cors: true, isolated, extra: { '/bench/': here + '/', '/kjs-model/': modelDir + '/', '/kokoro-js/': path.join(here, 'node_modules/kokoro-js/dist') + '/', '/ort/': path.join(here, 'node_modules/onnxruntime-web/dist') + '/' } });
const b = await launch({ webgpu: device === 'webgpu' });
const hub = /^https:\/\/huggingface\.co\/onnx-community\/Kokoro-82M-v1\.0-ONNX\/resolve\/main\/(.+)$/;
const cdn = /^https:\/\/cdn\.jsdelivr\.net\/npm\/@huggingface\/transformers@[^/]+\/dist\/(.+)$/;
const served = [];
await b.context.route(/^https:\/\//, async (route) => {
  const url = route.request().url();
  let file = null;
  let m;
  if ((m = url.match(hub)) && !m[1].startsWith('voices/')) {
    // Model files: a redirect to the local server (Playwright cannot fulfill a 92 MB body through its pipe).
    served.push(url);
    return route.fulfill({ status: 302, headers: { location: server.url + 'kjs-model/' + m[1], 'access-control-allow-origin': '*', 'cross-origin-resource-policy': 'cross-origin' } });
  }
  if (m) file = path.join(here, 'node_modules/kokoro-js', m[1]);
  else if ((m = url.match(cdn))) file = path.join(here, 'node_modules/onnxruntime-web/dist', m[1]);
  if (!file || !fs.existsSync(file)) { served.push(`blocked ${url}`); return route.fulfill({ status: 404, body: 'offline benchmark' }); }
  served.push(url);
  const type = file.endsWith('.mjs') || file.endsWith('.js') ? 'text/javascript' : file.endsWith('.wasm') ? 'application/wasm' : file.endsWith('.json') ? 'application/json' : 'application/octet-stream';
  return route.fulfill({ status: 200, path: file, headers: { 'content-type': type, 'access-control-allow-origin': '*', 'cross-origin-resource-policy': 'cross-origin' } });
});

const results = [];
try {
  const only = arg('--only', null);
  const runs = [...precisions.map((precision) => ['benchOurs', precision]), ...kjsDtypes.map((dtype) => ['benchKokoroJs', dtype])];
  for (const [which, variant] of runs.filter(([w]) => !only || w.toLowerCase().includes(only.toLowerCase()))) {
    // A fresh page each: neither runtime shares a worker, a cache or a heap with the other.
    const page = await b.context.newPage();
    page.on('console', (m) => { if (m.type() !== 'debug' && (process.env.BENCH_VERBOSE || m.type() === 'error')) console.error('[page]', m.text()); });
    page.on('crash', () => console.error('[page] crashed'));
    await page.goto(server.url + 'bench/page.html');
    await page.waitForFunction(() => window.ready);
    if (process.env.BENCH_VERBOSE) await page.evaluate(() => { window.diagnose = true; });
    console.error(`running ${which}`);
    const args = which === 'benchOurs' ? { precision: variant } : { dtype: variant, threads: kjsThreads, localOrt: isolated };
    const r = await page.evaluate(([fn, a]) => window[fn](a), [which, { device, text, warm, ...args }]);
    if (isolated && !r.crossOriginIsolated) throw new Error(`${which}: the page is not cross-origin isolated`);
    results.push(r);
    await page.close();
  }
} catch (e) {
  console.error('benchmark failed:', e.message);
  process.exitCode = 1;
} finally {
  await b.close().catch(() => {});
  await server.close();
}
if (process.exitCode) process.exit();

const blocked = served.filter((s) => s.startsWith('blocked'));
if (blocked.length) console.log('blocked (not local):', blocked);
console.log(`\nChromium ${device}, text of ${text.length} characters, voice af_heart, ${os.cpus().length} cores, ${isolated ? 'cross-origin isolated' : 'not isolated'}\n`);
console.log('| runtime | backend | load (s) | time to first audio (s) | total (s) | audio (s) | RTF | chunks |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.runtime} | ${r.backend} | ${(r.loadMs / 1000).toFixed(2)} | ${(r.ttfaMs / 1000).toFixed(2)} | ${(r.totalMs / 1000).toFixed(2)} | ${r.audioSeconds.toFixed(2)} | ${r.rtf.toFixed(3)} | ${r.chunks} |`);
}
for (const theirs of results.filter((r) => r.runtime.startsWith('kokoro-js'))) {
  for (const ours of results.filter((r) => !r.runtime.startsWith('kokoro-js'))) {
    console.log(`ratios ${ours.runtime} / ${theirs.runtime}: time to first audio ${(ours.ttfaMs / theirs.ttfaMs).toFixed(2)}x, RTF ${(ours.rtf / theirs.rtf).toFixed(2)}x (below 1: kokoro-burn faster)`);
  }
}
fs.writeFileSync(path.join(cache, `bench-browser-${device}.json`), JSON.stringify({ device, text, results }, null, 2));
