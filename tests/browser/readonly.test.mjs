// Read-only is visible: a badge in the bar, and a note when a key goes nowhere.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openTerminal, startServer, type, waitForText } from './harness.mjs';

async function badge(page) {
  return page.evaluate(() => {
    const b = document.getElementById('badge');
    return b.checkVisibility() ? b.textContent : null;
  });
}

describe('read-only', () => {
  test('a --readonly server: the badge shows, keys and pastes are noted and not sent', async () => {
    const server = await startServer(['--readonly', '--', '/bin/sh', '-c', 'echo "ro-$((2+3))"; exec sleep 100']);
    const browser = await launchBrowser();
    try {
      const page = await openTerminal(browser, server.url);
      await waitForText(page, /^ro-5$/m);
      await page.waitForFunction(() => window.webterm.readOnly);
      assert.equal(await badge(page), 'read-only');
      assert.equal(await page.evaluate(() => document.getElementById('note').textContent), '');
      await type(page, 'x');
      await page.waitForFunction(() => /read-only/.test(document.getElementById('note').textContent));
      await page.evaluate(() => {
        const data = new DataTransfer();
        data.setData('text/plain', 'pasted\n');
        window.webterm.term.textarea.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
      });
      const stats = await page.evaluate(() => window.webterm.stats);
      assert.equal(stats.inputBytes, 0);
      assert.equal(stats.dropped, 2);
      // Not a modifier, not the page's own shortcuts.
      await page.keyboard.press('Shift');
      await page.keyboard.press('Control+Equal');
      assert.equal(await page.evaluate(() => window.webterm.stats.dropped), 2);
      // The status box stays out of the way while connected.
      assert.equal(await page.locator('#status').isVisible(), false);
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('a shared view: the badge replaces the box over the cells, keys are noted', async () => {
    const server = await startServer(['--', '/bin/sh']);
    const browser = await launchBrowser();
    try {
      const owner = await openTerminal(browser, server.url);
      await owner.waitForFunction(() => window.webterm.session?.view);
      assert.equal(await badge(owner), null);
      const link = await owner.evaluate(() => `${location.origin}/#view=${window.webterm.session.id}.${window.webterm.session.view}`);
      await type(owner, 'echo "seen-$((3*3))"\n');
      const viewer = await browser.newPage();
      await viewer.goto(link);
      await viewer.waitForFunction(() => window.webterm?.state === 'viewing');
      await waitForText(viewer, /^seen-9$/m);
      assert.equal(await badge(viewer), 'read-only view');
      assert.equal(await viewer.locator('#status').isVisible(), false);
      await type(viewer, 'y');
      await viewer.waitForFunction(() => /Read-only view/.test(document.getElementById('note').textContent));
      assert.equal(await viewer.evaluate(() => window.webterm.stats.inputBytes), 0);
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});
