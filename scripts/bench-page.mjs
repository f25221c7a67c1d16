// Page loads on a slow link, webterm and ttyd side by side: bytes on the
// wire and time to the shell's prompt, first load and reload, in Chromium
// with DevTools' network throttling (4 Mbit/s each way, 100 ms latency).
// Interleaved: each repetition loads every server once, the order flipping
// from one repetition to the next; each cell is the median (min-max).
//
//   node scripts/bench-page.mjs [--ttyd PATH] [--runs N]
//
// webterm is target/release/webterm (cargo build --release); ttyd is
// measured when --ttyd names its binary (built from its public source).
import { spawn } from 'node:child_process';
import net from 'node:net';
import { freePort, launchBrowser } from '../tests/browser/harness.mjs';

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const runs = Number(opt('--runs') || 3);
const ttyd = opt('--ttyd');
const webterm = new URL('../target/release/webterm', import.meta.url).pathname;

async function start(name) {
  const port = await freePort();
  const argv = name === 'ttyd'
    ? [ttyd, ['-p', String(port), '-i', '127.0.0.1', '-W', '/bin/sh']]
    : [webterm, ['--listen', `127.0.0.1:${port}`, '--log-level', 'warn', '--', '/bin/sh']];
  const proc = spawn(argv[0], argv[1], { env: { ...process.env, PS1: '$ ' }, stdio: 'ignore' });
  for (let i = 0; i < 200; i += 1) {
    const up = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (up) return { url: `http://127.0.0.1:${port}/`, stop: () => proc.kill('SIGTERM') };
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error(`${name} did not listen`);
}

/** Loads with `load`, waits for the prompt; bytes on the wire and ms. */
async function measure(page, cdp, load) {
  let bytes = 0;
  const count = (e) => { bytes += e.encodedDataLength; };
  cdp.on('Network.loadingFinished', count);
  const started = Date.now();
  await load();
  // webterm exposes its terminal's text; ttyd exposes its xterm.js Terminal.
  await page.waitForFunction(() => {
    let text = window.webterm?.text?.();
    if (text === undefined && window.term?.buffer) {
      const b = window.term.buffer.active;
      text = Array.from({ length: b.length }, (_, i) => b.getLine(i)?.translateToString(true) ?? '').join('\n');
    }
    return /\$ ?$/.test((text || '').trimEnd());
  }, null, { timeout: 120000, polling: 20 });
  const ms = Date.now() - started;
  await page.waitForTimeout(300); // let trailing loadingFinished events land
  cdp.off('Network.loadingFinished', count);
  return { ms, bytes };
}

const subjects = ['webterm', ...(ttyd ? ['ttyd'] : [])];
const results = Object.fromEntries(subjects.map((s) => [s, { first: [], firstMs: [], reload: [], reloadMs: [] }]));
const browser = await launchBrowser();
try {
  for (let rep = 0; rep < runs; rep += 1) {
    const order = rep % 2 ? [...subjects].reverse() : subjects;
    for (const name of order) {
      const server = await start(name);
      const context = await browser.newContext();
      const page = await context.newPage();
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false, latency: 100, downloadThroughput: 500000, uploadThroughput: 500000,
      });
      const first = await measure(page, cdp, () => page.goto(server.url));
      const again = await measure(page, cdp, () => page.reload());
      const r = results[name];
      r.first.push(first.bytes); r.firstMs.push(first.ms); r.reload.push(again.bytes); r.reloadMs.push(again.ms);
      console.error(`${name}, repetition ${rep + 1}/${runs}: first ${first.bytes} B in ${first.ms} ms, reload ${again.bytes} B in ${again.ms} ms`);
      await context.close();
      server.stop();
    }
  }
} finally {
  await browser.close();
}
const cell = (v, f = (x) => String(x)) => {
  const s = [...v].sort((a, b) => a - b);
  return `${f(s[Math.floor(s.length / 2)])} (${f(s[0])}–${f(s[s.length - 1])})`;
};
const kb = (x) => (x / 1024).toFixed(1);
console.log(`Chromium, 4 Mbit/s each way, 100 ms latency; ${runs} interleaved repetition(s); median (min–max)\n`);
console.log(`| | ${subjects.join(' | ')} |`);
console.log(`|---|${subjects.map(() => '---:').join('|')}|`);
for (const [label, key, f] of [
  ['first load, KiB on the wire', 'first', kb], ['first load to prompt, ms', 'firstMs', String],
  ['reload, KiB on the wire', 'reload', kb], ['reload to prompt, ms', 'reloadMs', String],
]) {
  console.log(`| ${label} | ${subjects.map((s) => cell(results[s][key], f)).join(' | ')} |`);
}
