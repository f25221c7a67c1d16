// What users feel in the browser, webterm and ttyd side by side: the same
// Debian Chromium (headless, driven over a bare DevTools pipe by
// scripts/cdp.mjs, not Playwright: see there) drives each server's own
// page, with the same xterm.js renderer, the same font size and font list
// and the same window, and measures four things:
//
//   1. keystroke to glyph (p50 and p99 of --keys keystrokes, 200 by default):
//      at a `$ ` prompt one character is pressed at a time, and each waits
//      for its glyph before the next.
//   2. `cat` of a 16 MiB (--cat-mib) text file to screen, as MiB/s: from
//      the Enter that runs `cat FILE; echo END-MARKER-$((1+1))` until
//      END-MARKER-2 is drawn. Beside it, the page's ceiling: the same bytes
//      written into its terminal from memory (where the time goes); and the
//      same cat again once the scrollback is full (what a session's later
//      floods cost, without the first one's growing of the scroll area).
//   3. Ctrl-C to prompt during `yes`: `yes` runs for about a second, then
//      Ctrl-C; until a fresh `$ ` prompt is drawn on the cursor's line
//      (three tries per repetition, the repetition's figure is their median).
//   4. page load to the first prompt (unthrottled), with the bytes on the wire
//      (DevTools' encoded lengths of the HTTP responses, as bench-page.mjs,
//      a worker's included). DevTools watches the network only while a page
//      loads: with it on, Chromium copies every WebSocket frame for it.
//
//   node scripts/bench-browser.mjs [--ttyd PATH] [--runs N] [--keys N]
//        [--renderer dom|webgl] [--webterm PATH] [--cat-mib N]
//        [--webterm-args 'ARGS'] (extra options for webterm, space-separated,
//        e.g. '--no-file-transfer' to see what the page's trzsz filter costs)
//        [--ttyd-args 'ARGS'] (extra options for ttyd, e.g. '-t cursorBlink=true')
//        [--reduced-motion] (both pages see prefers-reduced-motion: reduce;
//        webterm's page then stops blinking its cursor, ttyd's never blinks)
//
// The renderer is the DOM one by default on both (webterm `?renderer=dom`,
// ttyd `-t rendererType=dom`): both pages default to WebGL, which headless
// Chromium draws in software here. Everything else is each page's own
// default; notably webterm's page blinks its cursor and ttyd's does not,
// which costs about a frame per key (docs/performance.md, --reduced-motion).
//
// How the clock runs (1-3). Both the start and the end are taken inside the
// page with performance.now(), so the DevTools round trips of the driver do
// not count. Start: a capture-phase `keydown` listener on window, which runs
// right before the page's own handlers (xterm's) get the key that
// keyboard.press (CDP Input.dispatchKeyEvent) delivered. End: xterm's
// own `onRender` hook, i.e. the first time the renderer has drawn rows since
// the key while the buffer holds the expected text (the echoed prefix on the
// cursor's line; the marker near the cursor; `$ ` alone on the cursor's
// line). With the DOM renderer the row elements are updated at that moment
// and only the browser's paint remains, which is the same for both pages. An
// `onWriteParsed` hook records the moment the same text was parsed, so the
// parse-to-draw share of each figure can be told apart.
//
// Why interleaved: the machine is shared and its load moves by the minute.
// Each repetition starts every server fresh (`/bin/sh`, PS1='$ ') and
// measures it once in all four scenarios, the order of the servers flipping
// from one repetition to the next, so a noisy stretch hits both instead of
// one server's block. Each cell is the median (min-max) over the repetitions;
// the ratio column divides webterm's figure by ttyd's of the same repetition
// and reports the median (min-max) of those ratios.
//
// This is a benchmark to read, not a CI check: nothing here fails a build.
// Failures (a page that never shows its prompt, a glyph that never comes)
// are counted per scenario and reported, and every wait has a time limit.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../tests/browser/harness.mjs';
import { launch } from './cdp.mjs';

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const runs = Number(opt('--runs') || 3);
const keys = Number(opt('--keys') || 200);
const renderer = opt('--renderer') || 'dom';
const ttyd = opt('--ttyd');
const webterm = opt('--webterm') || new URL('../target/release/webterm', import.meta.url).pathname;
const webtermArgs = (opt('--webterm-args') || '').split(' ').filter(Boolean);
const ttydArgs = (opt('--ttyd-args') || '').split(' ').filter(Boolean);
const reducedMotion = args.includes('--reduced-motion');
if (!['dom', 'webgl'].includes(renderer)) throw new Error('--renderer is dom or webgl');
if (!(runs >= 1 && keys >= 10)) throw new Error('--runs must be at least 1 and --keys at least 10');

// The same font on both pages, so both grids have the same size: webterm's
// font list and size (public/app.mjs), handed to ttyd with its -t options.
const FONT_SIZE = 14;
const FONT_FAMILY = 'ui-monospace, "DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, monospace';
const VIEWPORT = { width: 1000, height: 600 };
const CAT_BYTES = Number(opt('--cat-mib') || 16) * 1024 * 1024;
const MARKER = 'END-MARKER-2'; // the shell computes it: the echoed command line does not hold it
const LIMITS = { start: 20000, load: 60000, key: 20000, cat: 300000, ctrlc: 60000, prompt: 30000 };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The limit's timer is cleared once the answer comes: a pending one would
// keep node from exiting for up to five minutes after the report.
function withTimeout(promise, ms, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

// ---- servers ----

async function start(name) {
  const port = await freePort();
  const argv = name === 'ttyd'
    ? [ttyd, ['-p', String(port), '-i', '127.0.0.1', '-W',
      '-t', `rendererType=${renderer}`, '-t', `fontSize=${FONT_SIZE}`, '-t', `fontFamily=${FONT_FAMILY}`,
      '-t', 'disableLeaveAlert=true', ...ttydArgs, '/bin/sh']]
    : [webterm, ['--listen', `127.0.0.1:${port}`, '--log-level', 'warn', ...webtermArgs, '--', '/bin/sh']];
  const proc = spawn(argv[0], argv[1], { env: { ...process.env, SHELL: '/bin/sh', PS1: '$ ' }, stdio: 'ignore' });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    if (await Promise.race([exited.then(() => true), sleep(5000).then(() => false)])) return;
    proc.kill('SIGKILL');
    await Promise.race([exited, sleep(5000)]);
  };
  const deadline = Date.now() + LIMITS.start;
  while (Date.now() < deadline && proc.exitCode === null) {
    const up = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    const query = name === 'ttyd' ? '' : `?renderer=${renderer}`;
    if (up) return { url: `http://127.0.0.1:${port}/${query}`, stop };
    await sleep(50);
  }
  await stop();
  throw new Error(`${name} did not listen within ${LIMITS.start} ms`);
}

// ---- in the page ----

/**
 * Installed in the page once its prompt shows: finds the xterm.js Terminal
 * (webterm: window.webterm.term; ttyd: window.term) and hooks the keydown
 * listener and xterm's onRender/onWriteParsed. `arm(kind, arg, key)` then
 * says what to wait for after which key; `result(ms)` resolves to
 * { ms, parsedMs } or null after ms.
 */
function install() {
  const term = window.webterm?.term ?? window.term;
  if (!term?.buffer) throw new Error('no xterm.js Terminal on this page');
  const b = { armed: null, t0: null, parsedAt: null, resolve: null, promise: null };
  const line = (y) => term.buffer.active.getLine(y);
  /** The cursor's logical line: its row and the rows it wrapped from. */
  const cursorLine = () => {
    const buf = term.buffer.active;
    const end = buf.baseY + buf.cursorY;
    let start = end;
    while (start > 0 && line(start)?.isWrapped) start -= 1;
    let s = '';
    for (let y = start; y <= end; y += 1) s += line(y)?.translateToString(y !== end) ?? '';
    return s.trimEnd();
  };
  /** Whether one of the `n` rows up to the cursor's satisfies `test`. */
  const nearCursor = (n, test) => {
    const buf = term.buffer.active;
    const end = buf.baseY + buf.cursorY;
    for (let y = Math.max(0, end - n); y <= end; y += 1) {
      if (test(line(y)?.translateToString(true) ?? '')) return true;
    }
    return false;
  };
  const holds = () => {
    const { kind, arg } = b.armed;
    if (kind === 'line') return cursorLine() === arg;
    if (kind === 'prompt') return cursorLine() === '$';
    if (kind === 'marker') return nearCursor(3, (s) => s.includes(arg));
    if (kind === 'row') return nearCursor(3, (s) => s === arg);
    return false;
  };
  window.addEventListener('keydown', (ev) => {
    if (!b.armed || b.t0 !== null) return;
    const want = b.armed.key;
    if (want === 'any' || (want === 'ctrl-c' && ev.ctrlKey && ev.key.toLowerCase() === 'c') || ev.key === want) {
      b.t0 = performance.now();
    }
  }, true);
  term.onWriteParsed(() => {
    if (b.armed && b.t0 !== null && b.parsedAt === null && holds()) b.parsedAt = performance.now();
  });
  term.onRender(() => {
    if (!b.armed || b.t0 === null || !holds()) return;
    const t1 = performance.now();
    const parsedAt = b.parsedAt ?? t1;
    b.armed = null;
    b.resolve({ ms: t1 - b.t0, parsedMs: parsedAt - b.t0 });
  });
  b.arm = (kind, arg, key) => {
    b.armed = { kind, arg, key };
    b.t0 = key ? null : performance.now();
    b.parsedAt = null;
    b.promise = new Promise((r) => (b.resolve = r));
    if (!key && holds()) term.refresh(0, term.rows - 1); // already there: the next render answers
  };
  b.result = (ms) => Promise.race([b.promise, new Promise((r) => setTimeout(() => r(null), ms))]);
  window.__bench = b;
  term.focus();
  const rendererSeen = window.webterm?.renderer
    ?? (document.querySelector('.xterm-screen canvas') ? 'canvas/webgl' : 'dom');
  return { cols: term.cols, rows: term.rows, renderer: rendererSeen };
}

/** Arms the page, runs `act` (which presses the key), waits up to `limit` ms. */
async function timed(page, kind, arg, key, act, limit, what) {
  await page.evaluate(([k, a, c]) => window.__bench.arm(k, a, c), [kind, arg, key]);
  await act();
  const r = await withTimeout(page.evaluate((ms) => window.__bench.result(ms), limit), limit + 10000, what);
  if (!r) throw new Error(`${what}: not on screen within ${limit} ms`);
  return r;
}

/** Waits until the cursor's line is a bare prompt (no key involved). */
const settle = (page) => timed(page, 'prompt', null, null, async () => {}, LIMITS.prompt, 'prompt');

// ---- scenarios ----

/**
 * 4: page load to the first prompt, and the bytes of the HTTP responses,
 * the page's workers' included (webterm's socket lives in one).
 */
async function pageLoad(page, cdp, url) {
  let bytes = 0;
  const count = (e) => { bytes += e.encodedDataLength; };
  const workers = [];
  // A worker waits for us before it runs, so its script's request is counted.
  const attached = async ({ sessionId }) => {
    const w = cdp.child(sessionId);
    workers.push(w);
    w.on('Network.loadingFinished', count);
    await w.send('Network.enable').catch(() => {});
    await w.send('Runtime.runIfWaitingForDebugger').catch(() => {});
  };
  cdp.on('Target.attachedToTarget', attached);
  cdp.on('Network.loadingFinished', count);
  await cdp.send('Network.enable');
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: true, flatten: true });
  const started = Date.now();
  await page.goto(url, { timeout: LIMITS.load });
  await page.waitForFunction(() => {
    const term = window.webterm?.term ?? window.term;
    const b = term?.buffer?.active;
    if (!b) return false;
    const text = Array.from({ length: b.length }, (_, i) => b.getLine(i)?.translateToString(true) ?? '').join('\n');
    return /\$ ?$/.test(text.trimEnd());
  }, { timeout: LIMITS.load });
  const ms = Date.now() - started;
  await sleep(300); // let trailing loadingFinished events land
  // No DevTools network bookkeeping during the rest: with it on, Chromium
  // copies every WebSocket frame for DevTools on the socket's thread.
  cdp.off('Target.attachedToTarget', attached);
  cdp.off('Network.loadingFinished', count);
  await cdp.send('Target.setAutoAttach', { autoAttach: false, waitForDebuggerOnStart: false });
  await cdp.send('Network.disable');
  for (const w of workers) {
    w.off('Network.loadingFinished', count);
    await w.send('Network.disable').catch(() => {});
  }
  return { ms, bytes };
}

/** 1: one key at a time, each waiting for its glyph; p50, p99 and parse share. */
async function keystrokes(page) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let typed = '';
  const ms = [];
  const parsed = [];
  const drawing = [];
  for (let i = 0; i < keys; i += 1) {
    const ch = i === 0 ? '#' : alphabet[i % alphabet.length]; // a comment: Enter runs nothing
    typed += ch;
    const r = await timed(page, 'line', `$ ${typed}`, 'any', () => page.keyboard.press(ch), LIMITS.key, `key ${i + 1}`);
    ms.push(r.ms);
    parsed.push(r.parsedMs);
    drawing.push(r.ms - r.parsedMs);
  }
  await timed(page, 'prompt', null, 'Enter', () => page.keyboard.press('Enter'), LIMITS.prompt, 'prompt after typing');
  return { p50: pct(ms, 0.5), p99: pct(ms, 0.99), parsedP50: pct(parsed, 0.5), drawP50: pct(drawing, 0.5) };
}

/** The renderer's main thread: seconds it has spent running tasks. */
async function mainThreadSeconds(cdp) {
  const { metrics } = await cdp.send('Performance.getMetrics');
  return metrics.find((m) => m.name === 'TaskDuration')?.value ?? NaN;
}

/**
 * 2: `cat` of the big file until the marker is drawn, as MiB/s; and how
 * busy the page's main thread was meanwhile (DevTools' TaskDuration over
 * the wall time), which tells a page that cannot keep up from one that
 * waits for bytes.
 */
async function catToScreen(page, cdp, file) {
  await page.keyboard.type(`cat ${file}; echo END-MARKER-$((1+1))`);
  await cdp.send('Performance.enable');
  const busy = await mainThreadSeconds(cdp);
  const wall = Date.now();
  const r = await timed(page, 'marker', MARKER, 'Enter', () => page.keyboard.press('Enter'), LIMITS.cat, 'cat');
  const busyPct = (100 * (await mainThreadSeconds(cdp) - busy)) / ((Date.now() - wall) / 1000);
  await cdp.send('Performance.disable');
  await settle(page);
  const figures = { mibs: CAT_BYTES / 1048576 / (r.ms / 1000), ms: r.ms, parsedToDrawn: r.ms - r.parsedMs, busyPct };
  // A diagnostic: if it fails, the cat figure above still counts.
  try {
    figures.memoryMibs = await withTimeout(page.evaluate(fromMemory, catText), LIMITS.cat, 'cat from memory');
  } catch (e) {
    console.error(`cat from memory not measured: ${e.message}`);
  }
  await page.keyboard.press('Enter'); // a fresh prompt below what was written
  await settle(page);
  // A diagnostic too: the same cat once the scrollback is full (the
  // from-memory write filled it), where xterm.js no longer grows its
  // scroll area line by line (docs/performance.md).
  try {
    await page.keyboard.type(`cat ${file}; echo END-MARKER-$((1+1))`);
    const again = await timed(page, 'marker', MARKER, 'Enter', () => page.keyboard.press('Enter'), LIMITS.cat, 'cat again');
    figures.againMibs = CAT_BYTES / 1048576 / (again.ms / 1000);
    await settle(page);
  } catch (e) {
    console.error(`cat again not measured: ${e.message}`);
  }
  return figures;
}

/**
 * In the page: the cat file's text, with the CR LF the PTY would hand on,
 * written straight into the page's terminal in 32 KiB pieces, from the
 * first write until the first render after the last piece is parsed, as
 * MiB/s of the file. This is the page's own ceiling with every byte
 * already there: the gap to the socket figure is the cost of output that
 * arrives a little at a time (docs/performance.md).
 */
async function fromMemory(file) {
  const term = window.webterm?.term ?? window.term;
  const text = file.replace(/\n/g, '\r\n');
  const data = new TextEncoder().encode(text);
  await new Promise((r) => requestAnimationFrame(() => r()));
  const t0 = performance.now();
  await new Promise((resolve) => {
    for (let o = 0; o < data.length; o += 32768) {
      term.write(data.subarray(o, o + 32768), o + 32768 >= data.length ? resolve : undefined);
    }
  });
  await new Promise((resolve) => {
    const d = term.onRender(() => { d.dispose(); resolve(); });
    term.refresh(0, term.rows - 1);
  });
  return file.length / 1048576 / ((performance.now() - t0) / 1000);
}

/** 3: Ctrl-C about a second into `yes`, until a fresh prompt; median of `tries`. */
async function ctrlC(page, tries = 3) {
  const ms = [];
  for (let i = 0; i < tries; i += 1) {
    await page.keyboard.type('yes');
    await timed(page, 'row', 'y', 'Enter', () => page.keyboard.press('Enter'), LIMITS.prompt, 'yes output');
    await sleep(1000); // part of the scenario: `yes` has been running about a second
    const r = await timed(page, 'prompt', null, 'ctrl-c', () => page.keyboard.press('Control+c'), LIMITS.ctrlc, 'Ctrl-C');
    ms.push(r.ms);
  }
  return { ms: pct(ms, 0.5) };
}

// ---- figures ----

function pct(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}
const cell = (v, f) => (v.length ? `${f(pct(v, 0.5))} (${f(Math.min(...v))}–${f(Math.max(...v))})` : 'n/a');

// ---- the run ----

const subjects = ['webterm', ...(ttyd ? ['ttyd'] : [])];
const SCENARIOS = ['load', 'keys', 'cat', 'ctrlc'];
const METRICS = [
  // label, scenario, key, format, ratio meaning
  ['keystroke to glyph p50, ms', 'keys', 'p50', (x) => x.toFixed(1)],
  ['keystroke to glyph p99, ms', 'keys', 'p99', (x) => x.toFixed(1)],
  [`cat ${CAT_BYTES / 1048576} MiB to screen, MiB/s`, 'cat', 'mibs', (x) => x.toFixed(2)],
  ['Ctrl-C during `yes` to prompt, ms', 'ctrlc', 'ms', (x) => x.toFixed(0)],
  ['page load to prompt, ms', 'load', 'ms', (x) => x.toFixed(0)],
  ['page load, KiB on the wire', 'load', 'bytes', (x) => (x / 1024).toFixed(1)],
];
const DIAGNOSTICS = [
  ['keystroke: key to echo parsed p50, ms', 'keys', 'parsedP50', (x) => x.toFixed(1)],
  ['keystroke: echo parsed to drawn p50, ms', 'keys', 'drawP50', (x) => x.toFixed(1)],
  ['cat: marker parsed to drawn, ms', 'cat', 'parsedToDrawn', (x) => x.toFixed(1)],
  ['cat: Enter to marker drawn, ms', 'cat', 'ms', (x) => x.toFixed(0)],
  ['cat: page\'s main thread busy, %', 'cat', 'busyPct', (x) => x.toFixed(0)],
  ['cat: the same bytes written into the page from memory, MiB/s', 'cat', 'memoryMibs', (x) => x.toFixed(2)],
  ['cat again, into a full scrollback, MiB/s', 'cat', 'againMibs', (x) => x.toFixed(2)],
];
// per[rep][subject][scenario] = figures of that repetition
const per = Array.from({ length: runs }, () => Object.fromEntries(subjects.map((s) => [s, {}])));
const failures = Object.fromEntries(subjects.map((s) => [s, Object.fromEntries(SCENARIOS.map((k) => [k, 0]))]));
const grids = {};

const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-browser-'));
const file = path.join(dir, 'text.txt');
// 79 printable characters and a newline per line, a line number in front;
// written to the file for `cat`, and handed to the page as it is for the
// from-memory figure.
const catText = (() => {
  const lines = [];
  let size = 0;
  for (let n = 0; size < CAT_BYTES; n += 1) {
    const head = `${String(n).padStart(8, '0')} `;
    const body = 'The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.';
    const l = `${(head + body).slice(0, 79).padEnd(79, '.')}\n`;
    lines.push(l);
    size += l.length;
  }
  return `${lines.join('').slice(0, CAT_BYTES - 1)}\n`;
})();
writeFileSync(file, catText);
const cleanup = () => rmSync(dir, { recursive: true, force: true });
process.on('SIGINT', () => { cleanup(); process.exit(130); });

const loadStart = os.loadavg();
const browser = await launch();
try {
  for (let rep = 0; rep < runs; rep += 1) {
    const order = rep % 2 ? [...subjects].reverse() : subjects;
    for (const name of order) {
      const figures = per[rep][name];
      let server = null;
      let page = null;
      const log = (msg) => console.error(`${name}, repetition ${rep + 1}/${runs}: ${msg}`);
      try {
        server = await start(name);
        page = await browser.newPage({ viewport: VIEWPORT, reducedMotion });
        const cdp = page; // one DevTools session per page: its domains are this page's
        try {
          figures.load = await pageLoad(page, cdp, server.url);
          grids[name] = await page.evaluate(install);
          log(`load ${figures.load.ms} ms, ${figures.load.bytes} B; ${grids[name].cols}x${grids[name].rows}, ${grids[name].renderer}`);
        } catch (e) {
          failures[name].load += 1;
          log(`page load failed: ${e.message}`);
          for (const k of ['keys', 'cat', 'ctrlc']) failures[name][k] += 1; // not run
          continue;
        }
        let usable = true;
        for (const [key, run] of [['keys', () => keystrokes(page)], ['cat', () => catToScreen(page, cdp, file)], ['ctrlc', () => ctrlC(page)]]) {
          if (!usable) { failures[name][key] += 1; continue; }
          try {
            figures[key] = await run();
            log(`${key} ${JSON.stringify(figures[key], (k, v) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v))}`);
          } catch (e) {
            failures[name][key] += 1;
            log(`${key} failed: ${e.message}`);
            // Back to a prompt for the next scenario, or give this server up.
            try {
              await page.keyboard.press('Control+c');
              await settle(page);
            } catch {
              usable = false;
            }
          }
        }
      } catch (e) {
        failures[name].load += 1;
        for (const k of ['keys', 'cat', 'ctrlc']) failures[name][k] += 1;
        log(`failed: ${e.message}`);
      } finally {
        await page?.close().catch(() => {});
        await server?.stop();
      }
    }
  }
} finally {
  await browser.close().catch(() => {});
  cleanup();
}
const loadEnd = os.loadavg();

// ---- report ----

const values = (name, scenario, key) => per.map((r) => r[name][scenario]?.[key]).filter((v) => v !== undefined);
const ratios = (scenario, key) => per
  .filter((r) => r.webterm[scenario]?.[key] !== undefined && r.ttyd?.[scenario]?.[key] !== undefined)
  .map((r) => r.webterm[scenario][key] / r.ttyd[scenario][key]);
const gridText = subjects.map((s) => `${s} ${grids[s] ? `${grids[s].cols}x${grids[s].rows}, renderer ${grids[s].renderer}` : 'n/a'}`).join('; ');
const fmtLoad = (l) => l.map((x) => x.toFixed(1)).join(' ');

function table(rows) {
  const withRatio = subjects.includes('ttyd');
  console.log(`| | ${subjects.join(' | ')} |${withRatio ? ' webterm/ttyd |' : ''}`);
  console.log(`|---|${subjects.map(() => '---:').join('|')}|${withRatio ? '---:|' : ''}`);
  for (const [label, scenario, key, f] of rows) {
    const cells = subjects.map((s) => cell(values(s, scenario, key), f));
    const ratio = withRatio ? ` ${cell(ratios(scenario, key), (x) => x.toFixed(2))} |` : '';
    console.log(`| ${label} | ${cells.join(' | ')} |${ratio}`);
  }
}

console.log(`${webtermArgs.length ? `webterm run with ${webtermArgs.join(' ')}. ` : ''}${ttydArgs.length ? `ttyd run with ${ttydArgs.join(' ')}. ` : ''}${reducedMotion ? 'prefers-reduced-motion: reduce. ' : ''}Chromium (headless), ${VIEWPORT.width}x${VIEWPORT.height} window, xterm.js renderer "${renderer}" asked of both pages, `
  + `font ${FONT_SIZE}px; grids: ${gridText}. ${runs} interleaved repetition(s), ${keys} keystrokes each; `
  + `median (min–max). Load average ${fmtLoad(loadStart)} at the start, ${fmtLoad(loadEnd)} at the end.\n`);
table(METRICS);
console.log('\nWhere the time goes (the pages\' own hooks):\n');
table(DIAGNOSTICS);
console.log('\nFailures (a scenario not measured in a repetition):\n');
console.log(`| | ${SCENARIOS.join(' | ')} |`);
console.log(`|---|${SCENARIOS.map(() => '---:').join('|')}|`);
for (const s of subjects) console.log(`| ${s} | ${SCENARIOS.map((k) => failures[s][k]).join(' | ')} |`);

console.log('\nTargets:\n');
const median = (v) => (v.length ? pct(v, 0.5) : undefined);
const verdict = (ok) => (ok === undefined ? 'not measured' : ok ? 'met' : 'missed');
const target = (text, ok, detail) => console.log(`- ${text}: ${verdict(ok)}${detail ? ` (${detail})` : ''}`);
if (subjects.includes('ttyd')) {
  for (const key of ['p50', 'p99']) {
    const m = median(ratios('keys', key));
    target(`keystroke to glyph ${key} no worse than ttyd's`, m === undefined ? undefined : m <= 1,
      m === undefined ? '' : `median ratio webterm/ttyd ${m.toFixed(2)}`);
  }
  const m = median(ratios('cat', 'mibs'));
  target('cat to screen at least 1.2x ttyd\'s rate', m === undefined ? undefined : m >= 1.2,
    m === undefined ? '' : `median ratio ${m.toFixed(2)}`);
} else {
  console.log('- keystroke and cat targets compare with ttyd: pass --ttyd PATH');
}
const c = median(values('webterm', 'ctrlc', 'ms'));
target('Ctrl-C to prompt under 300 ms (webterm)', c === undefined ? undefined : c < 300,
  c === undefined ? '' : `median ${c.toFixed(0)} ms, max ${Math.max(...values('webterm', 'ctrlc', 'ms')).toFixed(0)} ms`);
