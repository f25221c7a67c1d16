// "Duplicate tab" copies sessionStorage, the reattach token with it. The copy
// must open a shell of its own and leave the original's alone.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startServer, type, waitForText } from './harness.mjs';

/** A new page in `context` that starts with a copy of `from`'s sessionStorage, as Duplicate tab does. */
async function duplicate(context, from, url) {
  const entries = await from.evaluate(() => Object.entries(sessionStorage));
  const copy = await context.newPage();
  await copy.addInitScript((copied) => {
    // Only the first load: a duplicate's own reloads keep their own storage.
    if (sessionStorage.getItem('test.copied')) return;
    for (const [k, v] of copied) sessionStorage.setItem(k, v);
    sessionStorage.setItem('test.copied', '1');
  }, entries);
  await copy.goto(url);
  await copy.waitForFunction(() => window.webterm?.state === 'connected');
  return copy;
}

async function pid(page, tag) {
  await type(page, `echo "${tag}-$$"\n`);
  const text = await waitForText(page, new RegExp(`^${tag}-\\d+$`, 'm'));
  return text.match(new RegExp(`^${tag}-(\\d+)$`, 'm'))[1];
}

describe('duplicate tab', () => {
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

  test('the copy opens a new session, and the original keeps its shell', async () => {
    const context = await browser.newContext();
    const original = await context.newPage();
    await original.goto(server.url);
    await original.waitForFunction(() => window.webterm?.state === 'connected' && window.webterm.session);
    const first = await pid(original, 'original');

    const copy = await duplicate(context, original, server.url);
    await copy.waitForFunction(() => window.webterm.session);
    assert.equal(await copy.evaluate(() => window.webterm.stats.copy), true);
    const ids = await Promise.all([original, copy].map((p) => p.evaluate(() => window.webterm.session.id)));
    assert.notEqual(ids[0], ids[1]);
    const second = await pid(copy, 'copy');
    assert.notEqual(second, first);

    // The original was not taken over: same socket, same shell.
    assert.equal(await original.evaluate(() => window.webterm.state), 'connected');
    assert.equal(await original.evaluate(() => window.webterm.stats.connects), 1);
    assert.equal(await pid(original, 'still'), first);

    // Each reloads into its own shell.
    await copy.reload();
    await copy.waitForFunction(() => window.webterm?.state === 'connected' && window.webterm.stats.lastSetup?.resumed);
    assert.equal(await copy.evaluate(() => window.webterm.stats.copy), undefined);
    assert.equal(await pid(copy, 'copy-again'), second);
    assert.equal(await original.evaluate(() => window.webterm.stats.connects), 1);
    await context.close();
  });

  test('a copy of a tab that is gone resumes its shell (a crashed or restored tab)', async () => {
    const context = await browser.newContext();
    const original = await context.newPage();
    await original.goto(server.url);
    await original.waitForFunction(() => window.webterm?.state === 'connected' && window.webterm.session);
    const first = await pid(original, 'gone');
    // Storage as it was while the tab lived, marker included; then the tab goes.
    const entries = await original.evaluate(() => Object.entries(sessionStorage));
    assert.ok(entries.some(([k]) => k === 'webterm.alive'), JSON.stringify(entries));
    await original.close();
    const copy = await context.newPage();
    await copy.addInitScript((copied) => {
      if (sessionStorage.getItem('test.copied')) return;
      for (const [k, v] of copied) sessionStorage.setItem(k, v);
      sessionStorage.setItem('test.copied', '1');
    }, entries);
    await copy.goto(server.url);
    await copy.waitForFunction(() => window.webterm?.state === 'connected' && window.webterm.stats.lastSetup?.resumed);
    assert.equal(await pid(copy, 'back'), first);
    await context.close();
  });
});
