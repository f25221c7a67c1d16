// The bar and its menu: no control on the terminal's cells, settings that
// stick per browser on top of the operator's defaults, themes that read.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { THEMES } from '../../public/settings.mjs';
import { launchBrowser, openTerminal, startServer, type, waitForText } from './harness.mjs';

/** WCAG 2 contrast ratio of two colours given as #rrggbb or rgb(r, g, b). */
export function contrast(a, b) {
  const channels = (c) => {
    const hex = /^#([0-9a-f]{6})$/i.exec(c);
    if (hex) return [0, 2, 4].map((i) => parseInt(hex[1].slice(i, i + 2), 16));
    const rgb = /^rgba?\((\d+), (\d+), (\d+)/.exec(c);
    if (rgb) return rgb.slice(1, 4).map(Number);
    throw new Error(`not a colour: ${c}`);
  };
  const luminance = (c) => {
    const [r, g, b] = channels(c).map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

function overlaps(a, b) {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

describe('the bar and its menu', () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer(['-t', 'fontSize=16', '--', '/bin/sh']);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('no control covers a terminal cell, and the terminal fills the rest', async () => {
    for (const viewport of [{ width: 1000, height: 600 }, { width: 390, height: 700 }]) {
      const page = await openTerminal(browser, server.url, viewport);
      const screen = await page.locator('.xterm-screen').boundingBox();
      const controls = await page.evaluate(() => [...document.querySelectorAll('#bar *, button, select, [role=status]')]
        .filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
        .map((e) => ({ id: e.id || e.className || e.tagName, ...e.getBoundingClientRect().toJSON() })));
      assert.ok(controls.some((c) => c.id === 'menu-button'), JSON.stringify(controls));
      for (const c of controls) {
        if (c.width && c.height) assert.ok(!overlaps(c, screen), `${c.id} covers cells: ${JSON.stringify([c, screen])}`);
      }
      // The top-right cell, where socktop's header and a phone's prompt are, is the terminal's.
      const hit = await page.evaluate(([x, y]) => !!document.elementFromPoint(x, y)?.closest('.xterm'), [screen.x + screen.width - 3, screen.y + 3]);
      assert.ok(hit);
      // The grid fills the space left: less than a cell spare at the bottom.
      const cell = await page.evaluate(() => {
        const t = window.webterm.term;
        return { height: document.querySelector('.xterm-screen').getBoundingClientRect().height / t.rows, rows: t.rows };
      });
      assert.ok(viewport.height - (screen.y + screen.height) < cell.height + 10, JSON.stringify({ screen, cell }));
      await page.close();
    }
  });

  test('menu settings apply at once, stick in this browser, and the operator sets the defaults', async () => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 600 } });
    const page = await context.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => window.webterm?.state === 'connected');
    const read = () => page.evaluate(() => ({
      fontSize: window.webterm.term.options.fontSize,
      background: window.webterm.term.options.theme.background,
      pageTheme: document.documentElement.dataset.theme,
      renderer: window.webterm.renderer,
      screenReader: window.webterm.term.options.screenReaderMode,
      tree: !!document.querySelector('.xterm-accessibility-tree'),
    }));
    const defaults = { fontSize: 16, background: '#1e1e1e', pageTheme: 'dark', renderer: 'webgl', screenReader: false, tree: false };
    assert.deepEqual(await read(), defaults);
    const cols = await page.evaluate(() => window.webterm.term.cols);

    await page.click('#menu-button');
    assert.equal(await page.locator('#menu').isVisible(), true);
    await page.click('#font-larger');
    await page.selectOption('#theme', 'light');
    await page.selectOption('#renderer', 'dom');
    await page.check('#screen-reader');
    const chosen = { fontSize: 17, background: '#ffffff', pageTheme: 'light', renderer: 'dom', screenReader: true, tree: true };
    await page.waitForFunction(() => document.querySelector('.xterm-accessibility-tree'));
    assert.deepEqual(await read(), chosen);
    // A bigger font is fitted again: fewer columns.
    await page.waitForFunction((c) => window.webterm.term.cols < c, cols);
    await page.keyboard.press('Escape');
    assert.equal(await page.locator('#menu').isVisible(), false);

    // This browser remembers; the session comes back with the page.
    await page.reload();
    await page.waitForFunction(() => window.webterm?.state === 'connected');
    await page.waitForFunction(() => document.querySelector('.xterm-accessibility-tree'));
    assert.deepEqual(await read(), chosen);

    // Another browser profile has only the operator's defaults.
    const other = await browser.newContext({ viewport: { width: 1000, height: 600 } });
    const fresh = await other.newPage();
    await fresh.goto(server.url);
    await fresh.waitForFunction(() => window.webterm?.state === 'connected');
    assert.equal(await fresh.evaluate(() => window.webterm.term.options.fontSize), 16);
    assert.equal(await fresh.evaluate(() => window.webterm.renderer), 'webgl');
    await other.close();

    // Reset hands everything back to the defaults.
    await page.click('#menu-button');
    await page.click('#reset-settings');
    await page.waitForFunction(() => !document.querySelector('.xterm-accessibility-tree'));
    assert.deepEqual(await read(), defaults);
    assert.equal(await page.evaluate(() => localStorage.getItem('webterm.settings')), null);
    await context.close();
  });

  test('Reconnect from the menu brings back the same shell', async () => {
    const page = await openTerminal(browser, server.url);
    await type(page, 'echo "pid-is-$$"\n');
    const pid = (await waitForText(page, /^pid-is-(\d+)$/m)).match(/^pid-is-(\d+)$/m)[1];
    await page.click('#menu-button');
    await page.click('#reconnect');
    await page.waitForFunction(() => window.webterm.stats.connects === 2 && window.webterm.state === 'connected' && window.webterm.stats.lastSetup?.resumed);
    await type(page, 'echo "again-$$"\n');
    await waitForText(page, new RegExp(`^again-${pid}$`, 'm'));
    await page.close();
  });

  test('both themes, and the page around them, reach WCAG AA contrast', async () => {
    for (const [name, theme] of Object.entries(THEMES)) {
      for (const [key, color] of Object.entries(theme)) {
        // Black on the dark theme is the background's shade by convention; the
        // cursor accent is the text under a block cursor, on the cursor colour.
        if (['background', 'selectionBackground', 'cursorAccent'].includes(key) || (name === 'dark' && key === 'black')) continue;
        const ratio = contrast(color, theme.background);
        assert.ok(ratio >= 4.5, `${name}.${key} ${color} on ${theme.background}: ${ratio.toFixed(2)}`);
      }
      assert.ok(contrast(theme.cursorAccent, theme.cursor) >= 4.5, `${name} cursor`);
      assert.ok(contrast(theme.foreground, theme.selectionBackground) >= 4.5, `${name} selection`);
    }
    const page = await openTerminal(browser, server.url);
    for (const theme of ['dark', 'light']) {
      await page.evaluate((t) => (document.documentElement.dataset.theme = t), theme);
      await page.evaluate(() => (document.getElementById('menu').hidden = false));
      const pairs = await page.evaluate(() => {
        const background = (e) => {
          for (let n = e; n; n = n.parentElement) {
            const bg = getComputedStyle(n).backgroundColor;
            if (bg !== 'rgba(0, 0, 0, 0)') return bg;
          }
          return 'rgb(255, 255, 255)';
        };
        return [...document.querySelectorAll('#bar *, #menu *')]
          .filter((e) => e.getClientRects().length && [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()))
          .map((e) => ({ id: e.id || e.tagName, fg: getComputedStyle(e).color, bg: background(e) }));
      });
      assert.ok(pairs.length > 5);
      for (const p of pairs) assert.ok(contrast(p.fg, p.bg) >= 4.5, `${theme}: ${JSON.stringify(p)} ${contrast(p.fg, p.bg).toFixed(2)}`);
    }
    await page.close();
  });
});
