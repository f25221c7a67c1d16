// The README's pictures of the page, written by the test run into docs/:
// the desktop page with its menu open, and the phone layout with its keys.
// Fixed content and no blinking cursor, so a run that changes nothing on the
// page writes the same pictures.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inkPixels, launchBrowser, startServer, type, waitForText } from './harness.mjs';

const docs = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs');

// A box of equal-width lines (the shell's printf sees \\033 as ESC).
const box = (lines) => {
  const width = Math.max(...lines.map((l) => l.replace(/\\033\[[0-9;]*m/g, '').length));
  const pad = (l) => l + ' '.repeat(width - l.replace(/\\033\[[0-9;]*m/g, '').length);
  return [`┌${'─'.repeat(width + 2)}┐`, ...lines.map((l) => `│ ${pad(l)} │`), `└${'─'.repeat(width + 2)}┘`].join('\\n');
};
const DEMO = `clear; printf '\\033[1;32mwebterm\\033[0m  \\033[34mxterm.js 6\\033[0m over \\033[33mwebterm.binary.v1\\033[0m\\n\\n${box([
  '\\033[7m one paste per paste \\033[0m',
  'search: Ctrl+Shift+F',
  'zoom: Ctrl+= Ctrl+- Ctrl+0',
  'menu: theme, font, renderer',
])}\\n\\n\\033[31mred\\033[0m \\033[32mgreen\\033[0m \\033[33myellow\\033[0m \\033[34mblue\\033[0m \\033[35mmagenta\\033[0m \\033[36mcyan\\033[0m\\n'\n`;

describe('pictures for the README', () => {
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

  test('the desktop page with the menu open', async () => {
    const context = await browser.newContext({ viewport: { width: 900, height: 480 }, reducedMotion: 'reduce' });
    const page = await context.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => window.webterm?.state === 'connected');
    await type(page, DEMO);
    await waitForText(page, /red green yellow blue magenta cyan\n\$/);
    await page.click('#menu-button');
    await page.locator('#menu').waitFor();
    await page.evaluate(() => document.activeElement.blur());
    await page.screenshot({ path: path.join(docs, 'page-menu.png') });
    await context.close();
  });

  test('the phone layout with the extra keys', async () => {
    const context = await browser.newContext({
      viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2, reducedMotion: 'reduce',
    });
    const page = await context.newPage();
    // The DOM renderer from the start: no fallback note in the picture.
    await page.goto(`${server.url}/?renderer=dom`);
    await page.waitForFunction(() => window.webterm?.state === 'connected');
    await type(page, "clear; printf 'htop, vim and socktop want the keys\\nbelow: Esc, Tab, Ctrl, Alt, arrows.\\n'\n");
    await waitForText(page, /arrows\.\n\$/);
    await page.tap('#key-ctrl');
    await page.evaluate(() => document.activeElement.blur());
    assert.ok((await inkPixels(page, '.xterm-screen')).ink > 1000);
    await page.screenshot({ path: path.join(docs, 'page-phone.png') });
    await context.close();
  });
});
