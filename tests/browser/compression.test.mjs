// permessage-deflate with a real browser: Chromium offers it, webterm takes
// it, output arrives intact, and what crossed the wire was a fraction of it.
// With --no-compression the same page works without the extension.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openTerminal, startServer, type, waitForText } from './harness.mjs';

async function metric(url, name) {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

/**
 * Opens the page; `answers` holds the extensions its socket took: the
 * server's handshake answer as the browser read it (the socket is in a
 * worker, out of the page's own network events).
 */
async function openRecording(browser, url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  page.errors = errors;
  await page.goto(url);
  await page.waitForFunction(() => window.webterm?.state === 'connected', null, { timeout: 15000 });
  const answers = [await page.evaluate(() => window.webterm.stats.extensions)];
  return { page, answers, close: () => context.close() };
}

/** Prints 20,000 numbered lines and checks the terminal has the last of them. */
async function flood(page) {
  await type(page, 'seq 1 20000; echo "flood-$((2*3))-done"\n');
  const text = await waitForText(page, /^flood-6-done$/m, 30000);
  assert.match(text, /^19999\n20000\nflood-6-done$/m);
}

describe('compression', () => {
  let browser;
  const servers = [];
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    for (const s of servers) await s.stop();
  });

  test('Chromium gets permessage-deflate, and the output it draws is intact', async () => {
    const server = await startServer(['--', '/bin/sh']);
    servers.push(server);
    const { page, answers, close } = await openRecording(browser, server.url);
    assert.deepEqual(answers, ['permessage-deflate; server_no_context_takeover; client_no_context_takeover']);
    await flood(page);
    // Typed keys went in compressed frames too (Chromium compresses what it sends).
    const sent = await metric(server.url, 'webterm_compressed_message_bytes_total');
    const wire = await metric(server.url, 'webterm_compressed_wire_bytes_total');
    assert.ok(sent > 100000, `only ${sent} bytes went compressed`);
    assert.ok(wire * 3 < sent, `${wire} bytes on the wire for ${sent}`);
    assert.equal(await metric(server.url, 'webterm_compressed_sockets_total'), 1);
    assert.deepEqual(page.errors ?? [], []);
    await close();
  });

  test('--no-compression: no extension, same page', async () => {
    const server = await startServer(['--no-compression', '--', '/bin/sh']);
    servers.push(server);
    const { page, answers, close } = await openRecording(browser, server.url);
    assert.deepEqual(answers, ['']);
    await flood(page);
    assert.equal(await metric(server.url, 'webterm_compressed_sockets_total'), 0);
    await close();
  });
});
