// The server's status page (kokoro serve, GET /) in headless Chromium (Debian's): it shows the
// server's live values, its charts fill, its "try a voice" box speaks, and a screenshot is kept.
// Run by scripts/test.sh with KOKORO_BIN set to the workspace build's `kokoro`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from './chromium.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const cacheDir = process.env.KOKORO_CACHE || path.join(os.homedir(), '.cache/kokoro-burn');

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

let server, base, log;
before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}/`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kokoro-status-'));
  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(config, '[voices]\nprewarm = ["af_heart", "bf_emma"]\n[engine]\nresponse_cache_bytes = 0\n');
  log = path.join(dir, 'server.log');
  const args = ['serve', '--device', 'cpu', '--listen', `127.0.0.1:${port}`, '--config', config];
  const [cmd, argv] = process.env.KOKORO_BIN ? [process.env.KOKORO_BIN, args] : ['cargo', ['run', '--quiet', '-p', 'kokoro-cli', '--', ...args]];
  server = spawn(cmd, argv, { cwd: repo, stdio: ['ignore', 'ignore', fs.openSync(log, 'w')] });
  const until = Date.now() + 180_000;
  for (;;) {
    try {
      if ((await fetch(base + 'health/ready')).status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > until) throw new Error('not ready after 180 s:\n' + fs.readFileSync(log, 'utf8'));
    await new Promise((r) => setTimeout(r, 200));
  }
});
after(() => server?.kill('SIGTERM'));

test('the status page shows live values, fills its charts and speaks', async () => {
  const browser = await launch({ webgpu: false });
  try {
    const page = await browser.context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(base);
    await page.waitForFunction(() => document.getElementById('health').textContent === 'ready');

    // Pre-warm: both voices, pinned, in the voice cache table.
    await page.waitForFunction(() => document.getElementById('prewarm').textContent.startsWith('2 of 2 voices'));
    const cached = await page.$$eval('#voice-cache tbody tr', (rows) => rows.map((r) => [r.cells[0].textContent, r.cells[3].textContent]));
    assert.deepEqual(cached.filter(([, pinned]) => pinned === 'yes').map(([k]) => k).sort(), ['af_heart', 'bf_emma']);

    // Live values: the page follows the server's counters.
    const before = Number(await page.textContent('#requests-total'));
    const status = await (await fetch(base + 'status.json')).json();
    assert.equal(Number(await page.textContent('#queue-capacity')), status.queue.capacity);
    for (const priority of ['interactive', 'default', 'bulk']) {
      assert.equal(Number(await page.textContent(`#queue-${priority}`)), status.queue[priority]);
    }

    // Try a voice from the page: audio comes back and the request counters move.
    await page.fill('#try-text', 'The status page speaks.');
    await page.selectOption('#try-voice', 'bf_emma');
    await page.click('#try-button');
    await page.waitForFunction(() => Number(document.getElementById('try-audio').dataset.bytes || 0) > 24000, null, { timeout: 120_000 });
    assert.match(await page.textContent('#try-status'), /KiB in/);
    // Exactly one API request more: the page's own polls of status.json are not counted.
    await page.waitForFunction((n) => Number(document.getElementById('requests-total').textContent) === n, before + 1);
    const completed = Number(await page.textContent('#completed'));
    assert.ok(completed >= 1, `completed ${completed}`);

    // The charts: a point every 5 s; wait for the one that saw the request (audio spoken, a
    // first-audio time), which the page draws.
    await page.waitForFunction(() => Number(document.getElementById('chart-throughput').dataset.max) > 0
      && Number(document.getElementById('chart-latency').dataset.max) > 0, null, { timeout: 30_000 });
    const points = (await (await fetch(base + 'status.json')).json()).history;
    const busiest = Math.max(...points.map((p) => p.audio_per_sec));
    assert.ok(busiest > 0, JSON.stringify(points));
    const drawn = await page.$eval('#chart-throughput polyline', (l) => Number(l.dataset.points));
    assert.ok(drawn >= 2, `${drawn} points`);
    const top = Number(await page.$eval('#chart-latency', (svg) => svg.dataset.max));
    const p99 = Math.max(...points.map((p) => p.first_audio_p99 ?? 0));
    assert.ok(Math.abs(top - p99) < 1e-9, `the latency chart's top ${top} is the largest p99 ${p99}`);

    const shot = path.join(cacheDir, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    const png = fs.readFileSync(shot);
    assert.equal(png.subarray(1, 4).toString('ascii'), 'PNG');
    assert.ok(png.length > 20_000, `a real page, not a blank one: ${png.length} bytes`);
    assert.deepEqual(errors, []);
    console.log(`status page screenshot: ${shot}`);
  } finally {
    await browser.close();
  }
});
