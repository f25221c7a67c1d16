// Fast loads: gzip on the wire, entity tags, and a reload that moves almost
// nothing. Also measures a first load and a reload on a slow link.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { launchBrowser, startServer } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A raw GET with exactly these headers (node's fetch would add Accept-Encoding). */
function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

/** Loads (or reloads) the page until the prompt shows; returns what went over the wire. */
async function measure(page, cdp, load) {
  const requests = new Map();
  const onResponse = (e) => requests.set(e.requestId, { url: e.response.url, status: e.response.status, encoding: e.response.headers['content-encoding'] || e.response.headers['Content-Encoding'] });
  const onFinished = (e) => {
    const r = requests.get(e.requestId);
    if (r) r.bytes = e.encodedDataLength;
  };
  cdp.on('Network.responseReceived', onResponse);
  cdp.on('Network.loadingFinished', onFinished);
  const started = Date.now();
  await load();
  await page.waitForFunction(() => window.webterm?.state === 'connected' && /\$ ?$/m.test(window.webterm.text().trimEnd()), null, { timeout: 60000 });
  const ms = Date.now() - started;
  // Every response has finished by the time the prompt shows, but its event may trail.
  await page.waitForFunction(() => performance.getEntriesByType('resource').every((r) => r.responseEnd > 0));
  const all = [...requests.values()].filter((r) => r.bytes !== undefined && !r.url.startsWith('data:'));
  cdp.off('Network.responseReceived', onResponse);
  cdp.off('Network.loadingFinished', onFinished);
  return { ms, requests: all, bytes: all.reduce((n, r) => n + r.bytes, 0) };
}

describe('loading the page', () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer(['--', '/bin/sh']);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('files go gzipped with entity tags, and a reload transfers under 10 KB', async () => {
    const page = await browser.newPage();
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    const first = await measure(page, cdp, () => page.goto(server.url));
    const scripts = first.requests.filter((r) => /\.(mjs|css|html)$|\/$/.test(new URL(r.url).pathname));
    assert.ok(scripts.length >= 10, JSON.stringify(first.requests));
    for (const r of scripts) assert.equal(r.encoding, 'gzip', r.url);
    const raw = scripts.reduce((n, r) => {
      const p = new URL(r.url).pathname;
      const file = p.startsWith('/vendor/') ? path.join(root, 'assets', p) : path.join(root, 'public', p === '/' ? 'index.html' : p);
      return n + readFileSync(file).length;
    }, 0);
    assert.ok(first.bytes < raw / 3, `first load ${first.bytes} bytes for ${raw} bytes of files`);

    const again = await measure(page, cdp, () => page.reload());
    // Each file is revalidated and answered by headers alone (DevTools shows
    // the page itself as its cached 200, updated by the 304).
    const files = again.requests.filter((r) => /\.(mjs|css)$/.test(new URL(r.url).pathname));
    assert.ok(files.length >= scripts.length - 1 && files.every((r) => r.status === 304 && r.bytes < 500), JSON.stringify(again.requests));
    assert.ok(again.bytes < 10 * 1024, `reload moved ${again.bytes} bytes: ${JSON.stringify(again.requests)}`);
    console.log(`first load ${first.bytes} bytes (files: ${raw}), reload ${again.bytes} bytes in ${again.requests.length} requests`);
    await page.close();
  });

  test('a client without gzip gets the files as they are; If-None-Match gets a 304', async () => {
    const plain = await get(`${server.url}/vendor/xterm.mjs`);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(plain.headers.vary, 'Accept-Encoding');
    assert.deepEqual(plain.body, readFileSync(path.join(root, 'assets/vendor/xterm.mjs')));
    const zipped = await get(`${server.url}/vendor/xterm.mjs`, { 'Accept-Encoding': 'gzip, deflate, br' });
    assert.equal(zipped.headers['content-encoding'], 'gzip');
    assert.deepEqual(gunzipSync(zipped.body), plain.body);
    assert.notEqual(zipped.headers.etag, plain.headers.etag);
    for (const [res, enc] of [[plain, {}], [zipped, { 'Accept-Encoding': 'gzip' }]]) {
      const cached = await get(`${server.url}/vendor/xterm.mjs`, { ...enc, 'If-None-Match': res.headers.etag });
      assert.equal(cached.status, 304);
      assert.equal(cached.body.length, 0);
      assert.equal(cached.headers.etag, res.headers.etag);
      assert.match(cached.headers['content-type'], /^text\/javascript/);
    }
    const changed = await get(`${server.url}/vendor/xterm.mjs`, { 'If-None-Match': '"0-0000000000000000"' });
    assert.equal(changed.status, 200);
    const page = await get(`${server.url}/`, { 'Accept-Encoding': 'gzip' });
    assert.match(page.headers['content-type'], /^text\/html/);
    assert.match(gunzipSync(page.body).toString(), /<div id="terminal"/);
  });

  test('on a slow link (4 Mbit/s, 100 ms): first load and reload to the prompt', async () => {
    const page = await browser.newPage();
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 100,
      downloadThroughput: (4 * 1000 * 1000) / 8,
      uploadThroughput: (4 * 1000 * 1000) / 8,
    });
    const first = await measure(page, cdp, () => page.goto(server.url));
    const again = await measure(page, cdp, () => page.reload());
    console.log(`4 Mbit/s, 100 ms RTT: first load ${first.bytes} bytes, prompt in ${first.ms} ms; reload ${again.bytes} bytes, prompt in ${again.ms} ms`);
    assert.ok(again.bytes < 10 * 1024);
    await page.close();
  });
});
