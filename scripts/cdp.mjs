// A bare DevTools-protocol driver for the browser benchmark: Chromium over
// --remote-debugging-pipe, and only the calls the benchmark makes.
//
// Why not Playwright, as the tests use: Playwright turns on DevTools'
// Network domain for every page and worker it drives, and with it on,
// Chromium copies every WebSocket frame (base64 for binary ones) on the
// thread that owns the socket and sends it to the driver. For 16 MiB of
// `cat` that is real work beside the measured page, and on its main thread
// when the socket lives there (ttyd's): watched that way, ttyd's page drew
// 9.4 MiB/s here instead of 16. No user has that cost (docs/performance.md,
// "The driver was part of the measurement"). This driver turns Network on
// only while a page loads, to count its bytes.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts headless Chromium; resolves to { newPage(options), close() }. */
export async function launch(extraArgs = []) {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'bench-cdp-'));
  const proc = spawn(process.env.CHROMIUM || '/usr/bin/chromium', [
    '--headless', '--no-sandbox', '--remote-debugging-pipe', `--user-data-dir=${profile}`,
    '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', ...extraArgs, 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
  let failed = null; // why the browser could not start, if it could not
  const exited = new Promise((r) => {
    proc.on('exit', r);
    proc.on('error', (e) => { failed = e; r(); });
  });
  const out = proc.stdio[3];
  // A pipe whose browser is gone fails its writes: the exit handler below
  // says why, for every call still waiting.
  let gone = false;
  out.on('error', () => {});
  proc.stdio[4].on('error', () => {});
  let id = 0;
  const waiting = new Map();
  const listeners = new Set();
  let text = '';
  proc.stdio[4].on('data', (chunk) => {
    text += chunk.toString();
    for (let end = text.indexOf('\0'); end >= 0; end = text.indexOf('\0')) {
      const msg = JSON.parse(text.slice(0, end));
      text = text.slice(end + 1);
      const w = msg.id !== undefined && waiting.get(msg.id);
      if (w) {
        waiting.delete(msg.id);
        if (msg.error) w.reject(new Error(`${w.method}: ${msg.error.message}`));
        else w.resolve(msg.result);
      } else if (msg.method) {
        for (const l of listeners) l(msg);
      }
    }
  });
  const send = (method, params = {}, sessionId = undefined) => new Promise((resolve, reject) => {
    if (gone) {
      reject(new Error(`${method}: ${whyGone()}`));
      return;
    }
    id += 1;
    waiting.set(id, { resolve, reject, method });
    out.write(`${JSON.stringify({ id, method, params, sessionId })}\0`);
  });
  const whyGone = () => (failed ? `could not start ${proc.spawnfile}: ${failed.message}` : 'the browser exited');
  exited.then(() => {
    gone = true;
    for (const w of waiting.values()) w.reject(new Error(`${w.method}: ${whyGone()}`));
    waiting.clear();
  });
  await send('Browser.getVersion');

  return {
    /** A page in a browser context of its own (no state shared between pages). */
    async newPage({ viewport, reducedMotion = false }) {
      const { browserContextId } = await send('Target.createBrowserContext');
      const { targetId } = await send('Target.createTarget', { url: 'about:blank', browserContextId });
      const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
      const page = makePage(send, listeners, sessionId);
      page.close = () => send('Target.disposeBrowserContext', { browserContextId });
      await page.send('Page.enable');
      // As Playwright does: the page behaves as the focused one, so focus
      // (and what hangs on it, such as a blinking cursor) is as a user has it.
      await page.send('Emulation.setFocusEmulationEnabled', { enabled: true });
      await page.send('Emulation.setDeviceMetricsOverride', { ...viewport, deviceScaleFactor: 1, mobile: false });
      if (reducedMotion) {
        await page.send('Emulation.setEmulatedMedia', { features: [{ name: 'prefers-reduced-motion', value: 'reduce' }] });
      }
      return page;
    },
    async close() {
      await send('Browser.close').catch(() => {});
      if (!await Promise.race([exited.then(() => true), sleep(5000).then(() => false)])) proc.kill('SIGKILL');
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// Keys the benchmark presses, as CDP describes them: a character types
// itself; Enter and Control+c are spelled out.
const KEYS = {
  Enter: { key: 'Enter', code: 'Enter', windowsVirtualKeyCode: 13, text: '\r' },
};

function charKey(ch) {
  const upper = ch.toUpperCase();
  if (/^[a-z]$/i.test(ch)) return { key: ch, code: `Key${upper}`, windowsVirtualKeyCode: upper.charCodeAt(0), text: ch };
  if (/^[0-9]$/.test(ch)) return { key: ch, code: `Digit${ch}`, windowsVirtualKeyCode: ch.charCodeAt(0), text: ch };
  return { key: ch, windowsVirtualKeyCode: 0, text: ch };
}

function makePage(send, listeners, sessionId) {
  const own = new Map(); // handler -> wrapped listener
  const page = {
    send: (method, params) => send(method, params, sessionId),
    /** A session the page's own attached to (a worker's, by auto-attach). */
    child: (childId) => makePage(send, listeners, childId),
    on(event, handler) {
      const l = (msg) => { if (msg.sessionId === sessionId && msg.method === event) handler(msg.params); };
      own.set(handler, l);
      listeners.add(l);
    },
    off(event, handler) {
      listeners.delete(own.get(handler));
      own.delete(handler);
    },
    /** Navigates and waits for the load event. */
    async goto(url, { timeout = 30000 } = {}) {
      let loaded;
      const done = new Promise((r) => { loaded = r; });
      page.on('Page.loadEventFired', loaded);
      try {
        const r = await page.send('Page.navigate', { url });
        if (r.errorText) throw new Error(`${url}: ${r.errorText}`);
        const ok = await Promise.race([done.then(() => true), sleep(timeout).then(() => false)]);
        if (!ok) throw new Error(`${url}: not loaded within ${timeout} ms`);
      } finally {
        page.off('Page.loadEventFired', loaded);
      }
    },
    /** Runs `fn(arg)` in the page; resolves to its (awaited) value. */
    async evaluate(fn, arg) {
      const expression = `(${fn.toString()})(${arg === undefined ? '' : JSON.stringify(arg)})`;
      const r = await page.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true });
      if (r.exceptionDetails) {
        throw new Error(r.exceptionDetails.exception?.description ?? r.exceptionDetails.text);
      }
      return r.result.value;
    },
    /** Until `fn()` is truthy in the page (checked every animation frame). */
    async waitForFunction(fn, { timeout = 30000 } = {}) {
      const deadline = Date.now() + timeout;
      // Built as source, not passed to eval: the pages' CSP forbids eval.
      const expression = `new Promise((resolve) => {
        const fn = (${fn.toString()});
        const until = performance.now() + 1000;
        const check = () => {
          let v = false;
          try { v = fn(); } catch { v = false; }
          if (v || performance.now() > until) resolve(!!v);
          else requestAnimationFrame(check);
        };
        check();
      })`;
      while (Date.now() < deadline) {
        // A navigation destroys the context an evaluation runs in: try again.
        const r = await page.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }).catch(() => null);
        if (r?.result?.value === true) return;
        await sleep(20);
      }
      throw new Error(`not true within ${timeout} ms`);
    },
    keyboard: {
      /** A key as Playwright names it: a character, 'Enter' or 'Control+c'. */
      async press(name) {
        if (name === 'Control+c') {
          const ctrl = { key: 'Control', code: 'ControlLeft', windowsVirtualKeyCode: 17 };
          const c = { key: 'c', code: 'KeyC', windowsVirtualKeyCode: 67 };
          await page.send('Input.dispatchKeyEvent', { type: 'rawKeyDown', modifiers: 2, ...ctrl });
          await page.send('Input.dispatchKeyEvent', { type: 'rawKeyDown', modifiers: 2, ...c });
          await page.send('Input.dispatchKeyEvent', { type: 'keyUp', modifiers: 2, ...c });
          await page.send('Input.dispatchKeyEvent', { type: 'keyUp', modifiers: 0, ...ctrl });
          return;
        }
        const k = KEYS[name] ?? (name.length === 1 ? charKey(name) : null);
        if (!k) throw new Error(`no key named ${name}`);
        await page.send('Input.dispatchKeyEvent', { type: 'keyDown', ...k, unmodifiedText: k.text });
        const { text, ...up } = k;
        await page.send('Input.dispatchKeyEvent', { type: 'keyUp', ...up });
      },
      /** Types text as one input (no key events: nothing here is timed). */
      async type(text) {
        await page.send('Input.insertText', { text });
      },
    },
  };
  return page;
}
