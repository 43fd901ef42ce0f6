// Launches Debian's Chromium (never a downloaded browser) with the flags shared/reference/PLATFORM.md
// verified on these machines.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export async function launch({ webgpu = true, profile } = {}) {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (scripts/test.sh does)`);
  const dir = profile ?? fs.mkdtempSync(path.join(os.tmpdir(), 'kokoro-chromium-'));
  const args = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic', '--disable-dev-shm-usage'];
  if (webgpu) args.push('--enable-unsafe-webgpu');
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args });
  return { context, dir, close: async () => { await context.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
}
