// Search in the scrollback and font zoom from the keyboard.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openTerminal, startServer, type, waitForText } from './harness.mjs';

describe('search and zoom', () => {
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

  test('Ctrl+Shift+F finds a word printed 500 lines back, highlights it, steps between matches', async () => {
    const page = await openTerminal(browser, server.url);
    // The typed command line holds $((...)), not the words: only output matches.
    await type(page, 'echo "needle-$((6*7))x"; seq 1 250; echo "needle-$((6*7))x"; seq 1000 1350; echo "seq-$((1+1))-done"\n');
    await waitForText(page, /^seq-2-done$/m);
    const where = await page.evaluate(() => {
      const buf = window.webterm.term.buffer.active;
      const lines = [];
      for (let i = 0; i < buf.length; i += 1) if (buf.getLine(i).translateToString(true) === 'needle-42x') lines.push(i);
      return { lines, bottom: buf.baseY };
    });
    assert.equal(where.lines.length, 2);
    assert.ok(where.bottom - where.lines[0] > 500, JSON.stringify(where));

    await page.keyboard.press('Control+Shift+F');
    await page.waitForFunction(() => document.activeElement?.id === 'search-input');
    await page.keyboard.type('needle-42x');
    // The newest match first, scrolled into view, selected and highlighted.
    const shows = (line) => page.waitForFunction((l) => {
      const t = window.webterm.term;
      const y = t.buffer.active.viewportY;
      return y <= l && l < y + t.rows && t.getSelection() === 'needle-42x' && t.getSelectionPosition()?.start.y === l;
    }, line);
    await shows(where.lines[1]);
    await page.waitForFunction(() => document.getElementById('search-count').textContent === '2 of 2');
    assert.ok(await page.locator('.xterm-decoration-container .xterm-decoration').count() >= 1);
    // Enter goes further back: the one printed 500 lines ago.
    await page.keyboard.press('Enter');
    await shows(where.lines[0]);
    await page.waitForFunction(() => document.getElementById('search-count').textContent === '1 of 2');
    // Shift+Enter comes forward again, and so does the button.
    await page.keyboard.press('Shift+Enter');
    await shows(where.lines[1]);
    await page.click('#search-older');
    await shows(where.lines[0]);
    // Nothing to find says so.
    await page.fill('#search-input', 'no-such-word-anywhere');
    await page.waitForFunction(() => document.getElementById('search-count').textContent === 'no match');
    // Escape closes the search, clears the highlights, gives the keys back.
    await page.keyboard.press('Escape');
    assert.equal(await page.locator('#search').isVisible(), false);
    await page.waitForFunction(() => document.activeElement === window.webterm.term.textarea);
    assert.equal(await page.locator('.xterm-decoration-container .xterm-decoration').count(), 0);
    await type(page, 'echo "typing-$((2+2))"\n');
    await waitForText(page, /^typing-4$/m);
    await page.close();
  });

  test('without the async clipboard (plain http), searching keeps the keys and leaves the clipboard alone', async () => {
    const page = await browser.newPage();
    // As on a LAN address over http: no navigator.clipboard.writeText.
    await page.addInitScript(() => {
      window.copies = 0;
      Object.defineProperty(navigator, 'clipboard', { value: { writeText: () => Promise.reject(new Error('insecure context')) } });
      const exec = document.execCommand.bind(document);
      document.execCommand = (cmd, ...rest) => {
        if (cmd === 'copy') window.copies += 1;
        return exec(cmd, ...rest);
      };
    });
    await page.goto(server.url);
    await page.waitForFunction(() => window.webterm?.state === 'connected');
    await type(page, 'echo "mark-$((1+1))"; for i in 1 2 3 4 5 6; do echo "tick-$i mark-2"; sleep 0.3; done; echo "ticks-$((3+3))"\n');
    await waitForText(page, /^tick-1 mark-2$/m);
    await page.keyboard.press('Control+Shift+F');
    await page.keyboard.type('mark-2');
    // Output goes on arriving; the search refreshes its matches on it.
    await waitForText(page, /^ticks-6$/m);
    await page.waitForFunction(() => /of \d+$/.test(document.getElementById('search-count').textContent));
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'search-input');
    assert.equal(await page.evaluate(() => window.copies), 0);
    // A selection by hand still copies, through the fallback.
    await page.keyboard.press('Escape');
    await page.evaluate(() => window.webterm.term.selectAll());
    await page.waitForFunction(() => window.copies === 1);
    await page.waitForFunction(() => document.activeElement === window.webterm.term.textarea);
    await page.close();
  });

  test('Ctrl+= and Ctrl+- zoom the font, Ctrl+0 resets it, and the browser does not zoom', async () => {
    const page = await openTerminal(browser, server.url);
    const state = () => page.evaluate(() => ({ font: window.webterm.term.options.fontSize, cols: window.webterm.term.cols }));
    const start = await state();
    await page.evaluate(() => {
      window.defaultPrevented = [];
      window.addEventListener('keydown', (ev) => ev.key !== 'Control' && window.defaultPrevented.push(ev.defaultPrevented));
    });
    await page.locator('.xterm-helper-textarea').focus();
    await page.keyboard.press('Control+Equal');
    await page.keyboard.press('Control+Equal');
    await page.waitForFunction((c) => window.webterm.term.cols < c, start.cols);
    assert.equal((await state()).font, start.font + 2);
    await page.keyboard.press('Control+Minus');
    assert.equal((await state()).font, start.font + 1);
    // Remembered by this browser.
    assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('webterm.settings')).fontSize), start.font + 1);
    await page.keyboard.press('Control+0');
    await page.waitForFunction((c) => window.webterm.term.cols === c, start.cols);
    assert.equal((await state()).font, start.font);
    assert.deepEqual(await page.evaluate(() => window.defaultPrevented), [true, true, true, true]);
    // Ctrl+_ (readline's undo) still reaches the shell: nothing zoomed.
    await page.keyboard.press('Control+Shift+Minus');
    assert.equal((await state()).font, start.font);
    await page.close();
  });
});
