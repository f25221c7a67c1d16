// Accessibility: reduced motion, visible focus, screen-reader mode, live
// regions, named controls.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startServer, type, waitForText } from './harness.mjs';

describe('accessibility', () => {
  let server;
  let browser;
  before(async () => {
    // The operator asks for a blinking cursor (the page's default is a
    // steady one); reduced motion must still stop it.
    server = await startServer(['-t', 'cursorBlink=true', '--', '/bin/sh']);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function open(options = {}) {
    const context = await browser.newContext({ viewport: { width: 1000, height: 600 }, ...options });
    const page = await context.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => window.webterm?.state === 'connected');
    return page;
  }

  test('prefers-reduced-motion: no blinking cursor, also when the setting changes', async () => {
    const calm = await open({ reducedMotion: 'reduce' });
    assert.equal(await calm.evaluate(() => window.webterm.term.options.cursorBlink), false);
    await calm.emulateMedia({ reducedMotion: 'no-preference' });
    await calm.waitForFunction(() => window.webterm.term.options.cursorBlink === true);
    await calm.context().close();
    const usual = await open({ reducedMotion: 'no-preference' });
    assert.equal(await usual.evaluate(() => window.webterm.term.options.cursorBlink), true);
    await usual.emulateMedia({ reducedMotion: 'reduce' });
    await usual.waitForFunction(() => window.webterm.term.options.cursorBlink === false);
    await usual.context().close();
  });

  test('the cursor does not blink unless the operator asks for it', async () => {
    const plain = await startServer(['--', '/bin/sh']);
    try {
      const context = await browser.newContext({ reducedMotion: 'no-preference' });
      const page = await context.newPage();
      await page.goto(plain.url);
      await page.waitForFunction(() => window.webterm?.state === 'connected');
      assert.equal(await page.evaluate(() => window.webterm.term.options.cursorBlink), false);
      await context.close();
    } finally {
      await plain.stop();
    }
  });

  test('keyboard focus is visible on every control and on the terminal', async () => {
    const page = await open();
    const ring = () => page.evaluate(() => {
      const e = document.activeElement;
      const s = getComputedStyle(e);
      return { id: e.id, outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2 };
    });
    await page.evaluate(() => document.activeElement.blur());
    // From the end of the page, Tab goes round to the bar's first button.
    for (let i = 0; i < 3 && (await ring()).id !== 'search-button'; i += 1) await page.keyboard.press('Tab');
    assert.deepEqual(await ring(), { id: 'search-button', outline: true });
    await page.keyboard.press('Tab');
    assert.deepEqual(await ring(), { id: 'menu-button', outline: true });
    assert.equal(await page.getAttribute('#menu-button', 'aria-expanded'), 'false');
    await page.keyboard.press('Enter');
    assert.equal(await page.getAttribute('#menu-button', 'aria-expanded'), 'true');
    // Into the menu, and through it.
    const seen = [];
    for (let i = 0; i < 9; i += 1) {
      const r = await ring();
      assert.ok(r.outline, `no focus ring on ${r.id}`);
      seen.push(r.id);
      await page.keyboard.press('Tab');
    }
    assert.ok(['share', 'reconnect', 'font-larger', 'theme', 'renderer', 'screen-reader', 'keys-mode'].every((id) => seen.includes(id)), seen.join());
    // Escape closes the menu and hands the keys to the terminal, which shows
    // its ring (in its padding, off the cells).
    await page.keyboard.press('Escape');
    assert.equal(await page.getAttribute('#menu-button', 'aria-expanded'), 'false');
    await page.waitForFunction(() => document.activeElement === window.webterm.term.textarea);
    const shadow = await page.evaluate(() => getComputedStyle(document.getElementById('terminal')).boxShadow);
    assert.match(shadow, /inset/);
    await page.context().close();
  });

  test('screen-reader mode puts the output in the accessibility tree', async () => {
    const page = await open();
    await page.click('#menu-button');
    await page.check('#screen-reader');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => document.querySelector('.xterm-accessibility-tree'));
    await type(page, 'echo "spoken-$((4*4))"\n');
    await waitForText(page, /^spoken-16$/m);
    await page.waitForFunction(() => /spoken-16/.test(document.querySelector('.xterm-accessibility-tree').textContent));
    // The status line and the bar's notes are live regions.
    for (const id of ['status', 'note']) {
      assert.equal(await page.getAttribute(`#${id}`, 'aria-live'), 'polite');
    }
    await page.context().close();
  });

  test('every control has a name', async () => {
    const page = await open({ hasTouch: true, isMobile: true, viewport: { width: 390, height: 844 } });
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, select, input')]
      .filter((e) => !e.closest('[hidden]') && !e.classList.contains('xterm-helper-textarea'))
      .filter((e) => !(e.getAttribute('aria-label') || e.labels?.[0]?.textContent.trim() || e.textContent.trim()))
      .map((e) => e.outerHTML));
    assert.deepEqual(unnamed, []);
    assert.equal(await page.getAttribute('#keys', 'role'), 'toolbar');
    assert.equal(await page.getAttribute('#key-ctrl', 'aria-pressed'), 'false');
    await page.context().close();
  });
});
