// permessage-deflate, with and without, as Chromium sees it: bytes on the
// wire from server to browser (counted by a TCP relay in between) and
// webterm's CPU time (/proc/PID/stat), for `cat` of an 8 MB text file and
// for a minute of socktop. Interleaved: each repetition runs both servers,
// the order flipping; cells are the median (min-max).
//
//   node scripts/bench-compression.mjs [--runs N] [--seconds S] [--socktop DIR]
//
// webterm is target/release/webterm (cargo build --release). socktop and
// socktop_agent come from DIR (default /tmp/socktop/usr/local/bin; they are
// in the image's socktop target: `docker create webterm:0.1.0-socktop` and
// export them); without them that workload is skipped, and says so.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, launchBrowser } from '../tests/browser/harness.mjs';

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const runs = Number(opt('--runs') || 3);
const seconds = Number(opt('--seconds') || 60);
const socktopDir = opt('--socktop') || '/tmp/socktop/usr/local/bin';
const root = new URL('..', import.meta.url).pathname;
const webterm = path.join(root, 'target/release/webterm');
const ticks = 100; // USER_HZ

async function listening(port) {
  for (let i = 0; i < 200; i += 1) {
    const up = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

/** webterm, behind a relay that counts what it sends the browser. */
async function start(compression) {
  const port = await freePort();
  const extra = compression ? [] : ['--no-compression'];
  const proc = spawn(webterm, ['--listen', `127.0.0.1:${port}`, '--log-level', 'warn', ...extra, '--', '/bin/sh'],
    { env: { ...process.env, PS1: '$ ' }, stdio: 'ignore' });
  await listening(port);
  const counted = { down: 0 };
  const relay = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    upstream.on('data', (d) => { counted.down += d.length; });
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise((r) => relay.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${relay.address().port}/`;
  const cpu = () => {
    const fields = readFileSync(`/proc/${proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticks; // utime + stime
  };
  return { url, counted, cpu, stop: () => { relay.close(); proc.kill('SIGTERM'); } };
}

/** About 8 MB of ordinary text: the project's own sources and docs, repeated. */
function textFile(dir) {
  const parts = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(rs|md|mjs|sh|yaml|toml)$/.test(name)) parts.push(readFileSync(p));
    }
  };
  for (const d of ['src', 'docs', 'scripts', 'manifests', 'tests']) walk(path.join(root, d));
  parts.push(readFileSync(path.join(root, 'README.md')));
  const one = Buffer.concat(parts);
  const file = path.join(dir, 'text.txt');
  writeFileSync(file, Buffer.concat(Array(Math.ceil(8e6 / one.length)).fill(one)).subarray(0, 8e6));
  return file;
}

async function screen(page, re, timeout) {
  await page.waitForFunction((src) => new RegExp(src, 'm').test(window.webterm.text()), re.source, { timeout, polling: 50 });
}

async function typeLine(page, line) {
  await page.locator('.xterm-helper-textarea').focus();
  await page.keyboard.type(line);
  await page.keyboard.press('Enter');
}

const workloads = {
  async cat(page, { file }) {
    await typeLine(page, `cat ${file}; echo; echo "cat-$((1+1))-done"`);
    await screen(page, /^cat-2-done$/, 300000);
  },
  async socktop(page, { agentPort }) {
    await typeLine(page, `${socktopDir}/socktop ws://127.0.0.1:${agentPort}/ws`);
    await page.waitForTimeout(seconds * 1000); // the workload is time itself
    await page.keyboard.press('q');
    await screen(page, /\$ ?$/, 30000);
  },
};

const dir = mkdtempSync(path.join(os.tmpdir(), 'webterm-compression-'));
const file = textFile(dir);
let agent;
let agentPort;
const names = ['cat'];
if (existsSync(path.join(socktopDir, 'socktop')) && existsSync(path.join(socktopDir, 'socktop_agent'))) {
  agentPort = await freePort();
  agent = spawn(path.join(socktopDir, 'socktop_agent'), ['--port', String(agentPort)], { stdio: 'ignore' });
  await listening(agentPort);
  names.push('socktop');
} else {
  console.log(`no socktop in ${socktopDir}: measuring cat only`);
}

const results = {};
const browser = await launchBrowser();
try {
  for (let rep = 0; rep < runs; rep += 1) {
    for (const name of names) {
      const order = rep % 2 ? [false, true] : [true, false];
      for (const compression of order) {
        const server = await start(compression);
        const context = await browser.newContext({ viewport: { width: 1200, height: 700 } });
        const page = await context.newPage();
        await page.goto(server.url);
        await page.waitForFunction(() => window.webterm?.state === 'connected', null, { timeout: 30000 });
        await screen(page, /\$ ?$/, 30000);
        const [bytes0, cpu0, t0] = [server.counted.down, server.cpu(), Date.now()];
        await workloads[name](page, { file, agentPort });
        const r = { bytes: server.counted.down - bytes0, cpu: server.cpu() - cpu0, ms: Date.now() - t0 };
        const key = `${name}|${compression ? 'deflate' : 'plain'}`;
        (results[key] ??= []).push(r);
        console.log(`${rep + 1}/${runs} ${key}: ${(r.bytes / 1e6).toFixed(2)} MB, ${r.cpu.toFixed(2)} s CPU, ${r.ms} ms`);
        await context.close();
        server.stop();
      }
    }
  }
} finally {
  await browser.close();
  agent?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const cell = (xs, f) => `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
console.log(`\n${os.cpus().length} cores; ${runs} interleaved repetitions; socktop for ${seconds} s\n`);
console.log('| workload | figure | permessage-deflate | --no-compression | ratio |');
console.log('|---|---|---:|---:|---:|');
for (const name of names) {
  const d = results[`${name}|deflate`];
  const p = results[`${name}|plain`];
  const mb = (x) => (x / 1e6).toFixed(2);
  const s = (x) => x.toFixed(2);
  const ratio = (f) => `${(median(d.map(f)) / median(p.map(f))).toFixed(2)}x`;
  console.log(`| ${name} | MB on the wire, server to browser | ${cell(d.map((r) => r.bytes), mb)} | ${cell(p.map((r) => r.bytes), mb)} | ${ratio((r) => r.bytes)} |`);
  console.log(`| ${name} | webterm CPU, s | ${cell(d.map((r) => r.cpu), s)} | ${cell(p.map((r) => r.cpu), s)} | ${ratio((r) => r.cpu)} |`);
  if (name === 'cat') console.log(`| ${name} | time to the end on screen, s | ${cell(d.map((r) => r.ms / 1000), s)} | ${cell(p.map((r) => r.ms / 1000), s)} | ${ratio((r) => r.ms)} |`);
}
