// On a phone: the extra-keys row, the visual viewport, and a renderer that
// puts glyphs on the screen at device pixel ratio 2.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inkPixels, launchBrowser, outputDir, startServer, type, waitForText } from './harness.mjs';

const PHONE = { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 };

function which(cmd) {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`]).toString().trim();
  } catch {
    return null;
  }
}

describe('on a phone', () => {
  let server;
  let browser;
  let context;
  let dir;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'webterm-phone-'));
    server = await startServer(['--', '/bin/sh']);
    browser = await launchBrowser();
    context = await browser.newContext(PHONE);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function open() {
    const page = await context.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => window.webterm?.state === 'connected');
    return page;
  }

  test('the extra keys are there, and Ctrl then c interrupts sleep without taking the focus', async () => {
    const page = await open();
    assert.equal(await page.locator('#keys').isVisible(), true);
    // The row and the bar leave the cells alone.
    const [keysBox, screen] = await Promise.all([page.locator('#keys').boundingBox(), page.locator('.xterm-screen').boundingBox()]);
    assert.ok(screen.y + screen.height <= keysBox.y, JSON.stringify({ keysBox, screen }));
    assert.ok(keysBox.y + keysBox.height <= PHONE.viewport.height + 0.5);

    await type(page, 'echo "sleeping-$((1+1))"; sleep 100; echo "not-interrupted"\n');
    await waitForText(page, /^sleeping-2$/m);
    await page.tap('#key-ctrl');
    assert.equal(await page.getAttribute('#key-ctrl', 'aria-pressed'), 'true');
    // The on-screen keyboard's focus is where it was.
    assert.equal(await page.evaluate(() => document.activeElement === window.webterm.term.textarea), true);
    await page.keyboard.type('c');
    assert.equal(await page.getAttribute('#key-ctrl', 'aria-pressed'), 'false');
    // Typed before the shell has redrawn its prompt, the line's output can
    // follow the prompt on the same row ("$ after-4").
    await type(page, 'echo "after-$((2+2))"\n');
    const text = await waitForText(page, /^(\$ )?after-4$/m);
    assert.doesNotMatch(text, /not-interrupted/);
    await page.close();
  });

  test('the arrows, Esc and Alt keys work in vim', { skip: !which('vim') && 'vim is not installed' }, async () => {
    const file = path.join(dir, 'lines.txt');
    writeFileSync(file, 'line1\nline2\nline3\n');
    const page = await open();
    await type(page, `vim -u NONE -i NONE -N ${file}; echo "vim-$((1+1))-done"\n`);
    await waitForText(page, /^line3/m);
    // vim asks for application cursor keys (ESC O B): the row must follow.
    await page.waitForFunction(() => window.webterm.term.modes.applicationCursorKeysMode);
    for (const k of ['down', 'down', 'right']) await page.tap(`#key-${k}`);
    await page.keyboard.type('xiZ'); // delete the "i" of line3, insert Z there
    await page.tap('#key-esc');
    await page.keyboard.type(':wq\n');
    await waitForText(page, /^vim-2-done$/m);
    assert.equal(readFileSync(file, 'utf8'), 'line1\nline2\nlZne3\n');
    // Alt, then b: ESC b, both bytes as od reads them.
    await type(page, `clear; od -An -c > ${path.join(dir, 'alt.txt')}\n`);
    await page.tap('#key-alt');
    await page.keyboard.type('b');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Control+D');
    await type(page, 'echo "od-$((3+3))"\n');
    await waitForText(page, /^od-6$/m);
    assert.match(readFileSync(path.join(dir, 'alt.txt'), 'utf8'), /033\s+b\s+\\n/);
    await page.close();
  });

  test('glyphs are on the screen at device pixel ratio 2', async () => {
    const page = await open();
    await type(page, "clear; printf 'webterm on a phone: \\342\\224\\214\\342\\224\\200\\342\\224\\220 ok\\n'; ls /\n");
    await waitForText(page, /┌─┐ ok/);
    // WebGL draws nothing here in headless Chromium at DPR 2: the page notices and uses the DOM.
    await page.waitForFunction(() => window.webterm.renderer === 'dom' || window.webterm.stats.webglDrew);
    const { ink } = await inkPixels(page, '.xterm-screen');
    assert.ok(ink > 1500, `only ${ink} pixels of ink (renderer ${await page.evaluate(() => window.webterm.renderer)})`);
    await page.screenshot({ path: path.join(outputDir, 'phone.png') });
    await page.close();
  });

  test('the terminal and the keys sit above an on-screen keyboard (the visual viewport)', async () => {
    const page = await open();
    const rows = await page.evaluate(() => window.webterm.term.rows);
    // A keyboard opening shrinks the visual viewport; the layout viewport stays.
    await page.evaluate(() => {
      Object.defineProperty(window.visualViewport, 'height', { configurable: true, get: () => 480 });
      window.visualViewport.dispatchEvent(new Event('resize'));
    });
    await page.waitForFunction((r) => window.webterm.term.rows < r, rows);
    const keysBox = await page.locator('#keys').boundingBox();
    assert.ok(keysBox.y + keysBox.height <= 480.5, JSON.stringify(keysBox));
    const screen = await page.locator('.xterm-screen').boundingBox();
    assert.ok(screen.y + screen.height <= keysBox.y);
    // And the shell is told the new size.
    await type(page, 'stty size\n');
    const now = await page.evaluate(() => window.webterm.term.rows);
    await waitForText(page, new RegExp(`^${now} \\d+$`, 'm'));
    await page.close();
  });

  test('the menu can hide the row, or show it on a desktop', async () => {
    const page = await open();
    await page.tap('#menu-button');
    await page.selectOption('#keys-mode', 'hide');
    await page.waitForFunction(() => document.getElementById('keys').hidden);
    await page.selectOption('#keys-mode', 'auto');
    await page.waitForFunction(() => !document.getElementById('keys').hidden);
    await page.close();
    const desktop = await browser.newPage();
    await desktop.goto(server.url);
    await desktop.waitForFunction(() => window.webterm?.state === 'connected');
    assert.equal(await desktop.locator('#keys').isVisible(), false);
    await desktop.click('#menu-button');
    await desktop.selectOption('#keys-mode', 'show');
    await desktop.waitForFunction(() => !document.getElementById('keys').hidden);
    await desktop.close();
  });
});

describe('WebGL that fails', () => {
  test('a WebGL that draws nothing is replaced by the DOM renderer by itself', async () => {
    const server = await startServer(['--', '/bin/sh']);
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage({ viewport: { width: 900, height: 500 } });
      // A GPU that accepts every call and draws nothing.
      await page.addInitScript(() => {
        WebGL2RenderingContext.prototype.drawElementsInstanced = function drawNothing() {};
      });
      await page.goto(server.url);
      await page.waitForFunction(() => window.webterm?.state === 'connected');
      await type(page, 'echo "drawn-$((5*5))"\n');
      await waitForText(page, /^drawn-25$/m);
      await page.waitForFunction(() => window.webterm.renderer === 'dom');
      assert.match(await page.evaluate(() => window.webterm.stats.webglFallback), /drew nothing/);
      assert.ok((await inkPixels(page, '.xterm-screen')).ink > 500);
      assert.match(await page.locator('#note').innerText(), /DOM renderer/);
      // Another setting changed afterwards leaves it there; picking WebGL by hand tries again.
      await page.keyboard.press('Control+Equal');
      await page.waitForFunction(() => window.webterm.term.options.fontSize === 15);
      assert.equal(await page.evaluate(() => window.webterm.renderer), 'dom');
      assert.equal(await page.evaluate(() => window.webterm.stats.webglFallbacks), 1);
      await page.click('#menu-button');
      await page.selectOption('#renderer', 'webgl');
      await page.waitForFunction(() => window.webterm.stats.webglFallbacks === 2 && window.webterm.renderer === 'dom');
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('a lost WebGL context hands over to the DOM renderer', async () => {
    const server = await startServer(['--', '/bin/sh']);
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage({ viewport: { width: 900, height: 500 } });
      await page.goto(server.url);
      await page.waitForFunction(() => window.webterm?.state === 'connected' && window.webterm.renderer === 'webgl');
      await type(page, 'echo "one-$((1+0))"\n');
      await waitForText(page, /^one-1$/m);
      await page.waitForFunction(() => window.webterm.stats.webglDrew);
      await page.evaluate(() => {
        const canvas = [...document.querySelectorAll('.xterm-screen canvas')].find((c) => !c.className);
        canvas.getContext('webgl2').getExtension('WEBGL_lose_context').loseContext();
      });
      // xterm's addon waits a few seconds for a restore before giving up.
      await page.waitForFunction(() => window.webterm.renderer === 'dom', null, { timeout: 15000 });
      await type(page, 'echo "two-$((1+1))"\n');
      await waitForText(page, /^two-2$/m);
      assert.ok((await inkPixels(page, '.xterm-screen')).ink > 500);
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});
