// A static server for the demo and the browser tests: the built app (www/dist) at /, the model
// file at /model/, the voice files at /voices/ (with index.json). No dependencies.
//
//   node www/serve.mjs [--port 8080]      (after scripts/build-web.sh and `kokoro fetch`)
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const cache = process.env.KOKORO_CACHE || path.join(os.homedir(), '.cache', 'kokoro-burn');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.wasm': 'application/wasm', '.json': 'application/json', '.webmanifest': 'application/manifest+json',
  '.bin': 'application/octet-stream', '.safetensors': 'application/octet-stream',
};

export function startServer({ port = 0, root = path.join(here, 'dist'), model = path.join(cache, 'kokoro-v1_0-int8.safetensors'),
  voices = path.join(cache, 'voices'), extra = {}, cors = false, isolated = false } = {}) {
  const requests = new Map();
  const count = (p) => requests.set(p, (requests.get(p) || 0) + 1);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const p = decodeURIComponent(url.pathname);
    count(p);
    let file = null;
    if (p === '/voices/index.json') {
      const names = fs.readdirSync(voices).filter((f) => f.endsWith('.bin')).map((f) => f.slice(0, -4)).sort();
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      return res.end(JSON.stringify(names));
    }
    for (const [prefix, dir] of Object.entries(extra)) {
      if (p.startsWith(prefix)) file = path.join(dir, p.slice(prefix.length));
    }
    if (!file && p.startsWith('/model/')) file = path.join(path.dirname(model), path.basename(p) === 'kokoro-v1_0-int8.safetensors' ? path.basename(model) : path.basename(p));
    else if (!file && p.startsWith('/voices/')) file = path.join(voices, path.basename(p));
    else if (!file) file = path.join(root, p.endsWith('/') ? p + 'index.html' : p);
    const base = file.startsWith(root) || file.startsWith(voices) || file.startsWith(path.dirname(model)) || Object.values(extra).some((d) => file.startsWith(d));
    if (!base || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('not found');
    }
    const size = fs.statSync(file).size;
    const headers = { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'content-length': size, 'cache-control': 'no-cache' };
    // The benchmark redirects kokoro-js's cross-origin hub requests here.
    if (cors) headers['access-control-allow-origin'] = '*';
    // Cross-origin isolation (SharedArrayBuffer, so WebAssembly threads): the browser benchmark
    // runs kokoro-js's threaded configuration this way.
    if (isolated) Object.assign(headers, { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' });
    res.writeHead(200, headers);
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => {
    const { port: actual } = server.address();
    resolve({ url: `http://127.0.0.1:${actual}/`, port: actual, requests, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) });
  }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const s = await startServer({ port: i > 0 ? Number(process.argv[i + 1]) : 8080 });
  console.log(`kokoro-burn demo at ${s.url}`);
}
