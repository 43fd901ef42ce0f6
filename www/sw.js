// Offline support: the app shell and the engine are precached at install; the model (which the
// worker keeps in the Cache API) and voices are served from caches before the network.
const VERSION = 'kokoro-burn-shell-v1';
const SHELL = [
  './', 'index.html', 'app.js', 'style.css', 'manifest.webmanifest',
  'kokoro-burn/index.js', 'kokoro-burn/worker.js', 'kokoro-burn/voice-store.js', 'kokoro-burn/wav.js',
  'kokoro-burn/pkg/kokoro_wasm.js', 'kokoro-burn/pkg/kokoro_wasm_bg.wasm',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(VERSION).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith('kokoro-burn-shell-') && key !== VERSION) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== location.origin) return;
  if (url.pathname.endsWith('/index.json') || url.pathname.endsWith('.html') || url.pathname.endsWith('/')) {
    // Network first (fresh lists and pages), the cache when offline.
    event.respondWith(fetch(req).then((resp) => {
      if (resp.ok) { const copy = resp.clone(); caches.open(VERSION).then((c) => c.put(req, copy)); }
      return resp;
    }).catch(() => caches.match(req, { ignoreSearch: true }).then((r) => r || Response.error())));
    return;
  }
  // Cache first: the shell, the engine (a re-instantiation imports it with ?instance=N), the model.
  event.respondWith(caches.match(req, { ignoreSearch: true }).then((hit) => hit || fetch(req)));
});
