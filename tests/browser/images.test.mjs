// Images in the terminal: sixel and iTerm inline images draw pixels, and an
// image over the size limit is dropped.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inkPixels, launchBrowser, openTerminal, startServer, type, waitForText } from './harness.mjs';

/** A sixel image `width` x `height` (height a multiple of 6) of one colour given in percent. */
function sixel(width, height, [r, g, b]) {
  const band = `#0!${width}~`;
  return `\x1bPq"1;1;${width};${height}#0;2;${r};${g};${b}${Array(height / 6).fill(band).join('-')}\x1b\\`;
}

describe('images', () => {
  let server;
  let browser;
  let dir;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'webterm-images-'));
    server = await startServer(['--', '/bin/sh']);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a sixel image draws its pixels', async () => {
    const page = await openTerminal(browser, server.url);
    const before = await inkPixels(page, '.xterm-screen', [255, 0, 0]);
    assert.equal(before.matching, 0);
    writeFileSync(path.join(dir, 'red.six'), sixel(60, 36, [100, 0, 0]));
    await type(page, `clear; cat ${path.join(dir, 'red.six')}; echo; echo "sixel-$((1+1))"\n`);
    await waitForText(page, /^sixel-2$/m);
    await page.waitForFunction(() => window.webterm.images.storageUsage > 0);
    const after = await inkPixels(page, '.xterm-screen', [255, 0, 0]);
    // 60x36 red pixels, give or take the screenshot's edges.
    assert.ok(after.matching >= 60 * 36 * 0.9, JSON.stringify(after));
    await page.close();
  });

  test('an iTerm inline image (OSC 1337) draws its pixels', async () => {
    const page = await openTerminal(browser, server.url);
    // A 50x30 green PNG, made by the browser.
    const png = await page.evaluate(async () => {
      const canvas = new OffscreenCanvas(50, 30);
      const ctx = canvas.getContext('2d');
      ctx.fillStyle = '#00ff00';
      ctx.fillRect(0, 0, 50, 30);
      const bytes = new Uint8Array(await (await canvas.convertToBlob({ type: 'image/png' })).arrayBuffer());
      return btoa(String.fromCharCode(...bytes));
    });
    const size = Buffer.from(png, 'base64').length;
    writeFileSync(path.join(dir, 'green.iip'), `\x1b]1337;File=inline=1;size=${size};width=50px;height=30px:${png}\x07`);
    await type(page, `clear; cat ${path.join(dir, 'green.iip')}; echo; echo "iip-$((2+2))"\n`);
    await waitForText(page, /^iip-4$/m);
    await page.waitForFunction(() => window.webterm.images.storageUsage > 0);
    const after = await inkPixels(page, '.xterm-screen', [0, 255, 0]);
    assert.ok(after.matching >= 50 * 30 * 0.9, JSON.stringify(after));
    await page.close();
  });

  test('an image over the pixel limit is dropped, and the terminal goes on', async () => {
    const page = await openTerminal(browser, server.url);
    const limit = await page.evaluate(() => window.webterm.IMAGE_LIMITS.pixelLimit);
    assert.equal(limit, 2048 * 2048);
    // 2400 x 1800 = 4.3 million pixels, over the 4.2 million limit.
    writeFileSync(path.join(dir, 'huge.six'), sixel(2400, 1800, [0, 0, 100]));
    await type(page, `clear; cat ${path.join(dir, 'huge.six')}; echo; echo "huge-$((3+3))"\n`);
    await waitForText(page, /^huge-6$/m);
    assert.equal(await page.evaluate(() => window.webterm.images.storageUsage), 0);
    assert.equal((await inkPixels(page, '.xterm-screen', [0, 0, 255])).matching, 0);
    await page.close();
  });
});
