// Shared by the browser tests: the real webterm binary on an ephemeral port,
// and Debian's Chromium driven by playwright-core.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const outputDir = path.join(root, 'test-output');
mkdirSync(outputDir, { recursive: true });

const binary = process.env.WEBTERM_BIN || path.join(root, 'target/release/webterm');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

/**
 * A throwaway self-signed certificate for localhost and 127.0.0.1 (made
 * with the openssl command); resolves to { dir, cert, key }.
 */
function selfSignedCert() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'webterm-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'ignore' });
  return { dir, cert, key };
}

/**
 * Starts webterm with `args` (and `env` added to its environment);
 * resolves to { url, logs, stop, proc }. With `{ tls: true }` it serves
 * https with a fresh self-signed certificate (launch the browser with
 * --ignore-certificate-errors).
 */
export async function startServer(args = [], { tls = false, env = {} } = {}) {
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run cargo build --release first`);
  const cert = tls ? selfSignedCert() : null;
  if (cert) args = ['--tls-cert', cert.cert, '--tls-key', cert.key, ...args];
  // An ephemeral port unless the test chose its own.
  const listen = args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0'];
  const proc = spawn(binary, [...listen, '--log-level', 'debug', ...args], {
    env: { ...process.env, SHELL: '/bin/sh', PS1: '$ ', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = [];
  let resolveUrl;
  const urlPromise = new Promise((resolve) => (resolveUrl = resolve));
  for (const stream of [proc.stdout, proc.stderr]) {
    let partial = '';
    stream.on('data', (chunk) => {
      partial += chunk.toString();
      const lines = partial.split('\n');
      partial = lines.pop();
      for (const line of lines) {
        logs.push(line);
        if (process.env.WEBTERM_TEST_ECHO) console.error('[webterm]', line);
        const m = line.match(/listening on (https?:\/\/[\d.:]+)/);
        if (m) resolveUrl(m[1]);
      }
    });
  }
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  if (cert) exited.then(() => rmSync(cert.dir, { recursive: true, force: true }));
  const url = await Promise.race([
    urlPromise,
    exited.then((code) => { throw new Error(`webterm exited (${code}): ${logs.join('\n')}`); }),
    new Promise((_, reject) => setTimeout(() => reject(new Error('webterm did not start')), 20000)),
  ]);
  return {
    url,
    logs,
    proc,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))]);
      }
    },
  };
}

/** Launches headless Chromium with the flags this sandbox needs. */
/** A TCP port nothing listens on now (for servers the benchmarks start). */
export async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

export async function launchBrowser(extraArgs = []) {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--enable-precise-memory-info',
      ...extraArgs,
    ],
  });
}

/** Opens the page and waits until its terminal is connected. */
export async function openTerminal(browser, url, viewport = { width: 1000, height: 600 }) {
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(url);
  await page.waitForFunction(() => window.webterm?.state === 'connected', null, { timeout: 15000 });
  page.errors = errors;
  return page;
}

/** Waits until the terminal's buffer matches `pattern`; returns the buffer. */
export async function waitForText(page, pattern, timeout = 15000) {
  const re = pattern instanceof RegExp ? pattern : new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  await page.waitForFunction(
    ([src, flags]) => new RegExp(src, flags).test(window.webterm.text()),
    [re.source, re.flags],
    { timeout, polling: 50 },
  ).catch(async (e) => {
    const text = await page.evaluate(() => window.webterm.text());
    throw new Error(`${e.message}\nwaiting for ${pattern}; terminal shows:\n${text.trimEnd()}`);
  });
  return page.evaluate(() => window.webterm.text());
}

/** Types into the focused terminal like a user. */
export async function type(page, text) {
  await page.locator('.xterm-helper-textarea').focus();
  await page.keyboard.type(text);
}

export function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/**
 * Screenshots the element and counts its "ink": pixels that differ clearly
 * from its most common colour (the background). Glyphs on screen give
 * thousands; a blank canvas gives none. With `color` ([r, g, b]), also
 * counts the pixels of about that colour (`matching`).
 */
export async function inkPixels(page, selector, color = null) {
  const box = await page.locator(selector).boundingBox();
  const png = await page.screenshot({ clip: box });
  return page.evaluate(async ([b64, want]) => {
    const blob = await (await fetch(`data:image/png;base64,${b64}`)).blob();
    const bitmap = await createImageBitmap(blob);
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext('2d');
    ctx.drawImage(bitmap, 0, 0);
    const px = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
    const counts = new Map();
    for (let i = 0; i < px.length; i += 4) {
      const key = (px[i] << 16) | (px[i + 1] << 8) | px[i + 2];
      counts.set(key, (counts.get(key) || 0) + 1);
    }
    const bg = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
    const [br, bgreen, bb] = [(bg >> 16) & 255, (bg >> 8) & 255, bg & 255];
    let ink = 0;
    let matching = 0;
    for (let i = 0; i < px.length; i += 4) {
      if (Math.abs(px[i] - br) + Math.abs(px[i + 1] - bgreen) + Math.abs(px[i + 2] - bb) > 60) ink += 1;
      if (want && Math.abs(px[i] - want[0]) + Math.abs(px[i + 1] - want[1]) + Math.abs(px[i + 2] - want[2]) < 30) matching += 1;
    }
    return { ink, matching, total: px.length / 4, background: `rgb(${br}, ${bgreen}, ${bb})` };
  }, [png.toString('base64'), color]);
}
