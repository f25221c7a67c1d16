// One paste per paste: whichever way the user pastes, the shell receives
// the text exactly once, bracketed when the program asked for it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchBrowser, startServer, type, waitForText } from './harness.mjs';

describe('pasting', () => {
  let server;
  let browser;
  let context;
  let page;
  let dir;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'webterm-paste-'));
    server = await startServer(['--', '/bin/sh']);
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 900, height: 500 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    page = await context.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => window.webterm?.state === 'connected');
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  // Runs `cat > FILE` in the shell, does `paste()`, waits until the echo of
  // the pasted text matches `echoed`, ends cat with Ctrl-D and returns the
  // bytes cat received: exactly what the shell's terminal got.
  async function received(name, paste, echoed, { bracketed = false } = {}) {
    const file = path.join(dir, name);
    const on = bracketed ? "printf '\\033[?2004h'; " : '';
    const off = bracketed ? "printf '\\033[?2004l'; " : '';
    await type(page, `clear; ${on}echo "${name}-ready-$((1+1))"; cat > ${file}; ${off}echo "${name}-$((40+2))"\n`);
    // The tty echoes what it receives at once: paste after the clear.
    await waitForText(page, new RegExp(`^${name}-ready-2$`, 'm'));
    if (bracketed) await page.waitForFunction(() => window.webterm.term.modes.bracketedPasteMode);
    await paste();
    await waitForText(page, echoed);
    // At the start of a line, Ctrl-D is end of file for cat.
    await page.keyboard.press('Control+D');
    await waitForText(page, new RegExp(`^${name}-42$`, 'm'));
    return readFileSync(file, 'latin1');
  }

  test('Ctrl+Shift+V pastes the clipboard once', async () => {
    await page.evaluate(() => navigator.clipboard.writeText('one-paste\nsecond line\n'));
    const got = await received('shortcut', () => page.keyboard.press('Control+Shift+V'), /^second line$/m);
    assert.equal(got, 'one-paste\nsecond line\n');
  });

  test('bracketed paste mode wraps the pasted text once', async () => {
    await page.evaluate(() => navigator.clipboard.writeText('first\nlast'));
    // The tty echoes ESC as ^[; the paste ends without a newline, so end the line.
    const got = await received('bracketed', async () => {
      await page.keyboard.press('Control+Shift+V');
      await waitForText(page, /last\^\[\[201~/);
      await page.keyboard.press('Enter');
    }, /last\^\[\[201~$/m, { bracketed: true });
    assert.equal(got, '\x1b[200~first\nlast\x1b[201~\n');
  });

  test('a right click opens the menu without pasting; its Paste pastes once', async () => {
    await page.evaluate(() => navigator.clipboard.writeText('not-this\n'));
    const got = await received('context', async () => {
      const box = await page.locator('#terminal').boundingBox();
      await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2, { button: 'right' });
      // xterm puts its textarea under the pointer for the menu's Paste, which
      // the browser delivers as a paste event to the focused element.
      await page.waitForFunction(() => document.activeElement === window.webterm.term.textarea);
      await page.evaluate(() => {
        const data = new DataTransfer();
        data.setData('text/plain', 'from-menu\n');
        document.activeElement.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
      });
    }, /^from-menu$/m);
    assert.equal(got, 'from-menu\n');
  });

  test('a middle click adds no paste of its own', async () => {
    await page.evaluate(() => navigator.clipboard.writeText('not-this-either\n'));
    const got = await received('middle', async () => {
      const box = await page.locator('#terminal').boundingBox();
      await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2, { button: 'middle' });
      // The primary selection arrives as a paste event where the desktop has one.
      await page.evaluate(() => {
        const data = new DataTransfer();
        data.setData('text/plain', 'primary-selection\n');
        window.webterm.term.textarea.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
      });
    }, /^primary-selection$/m);
    assert.equal(got, 'primary-selection\n');
  });
});
