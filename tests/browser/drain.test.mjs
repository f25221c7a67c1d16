// A drain before a restart (--drain-timeout), as a user sees it: a banner
// with a countdown, a terminal that keeps working, a reload that finds its
// session, and a server that leaves as soon as the session ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openTerminal, startServer, type, waitForText } from './harness.mjs';

const BANNER = /^This server restarts in (10m 00s|[1-9]m [0-5]\ds|[1-5]?\ds): your session ends then\.$/;

test('SIGTERM with --drain-timeout shows a countdown and the terminal keeps working', async () => {
  const server = await startServer(['--drain-timeout', '10m', '--', '/bin/sh']);
  const browser = await launchBrowser();
  try {
    const page = await openTerminal(browser, server.url);
    await type(page, 'echo "shell=$$"\n');
    const shell = (await waitForText(page, /^shell=\d+$/m)).match(/^shell=(\d+)$/m)[1];

    server.proc.kill('SIGTERM');
    await page.waitForFunction(() => window.webterm.state === 'warning', null, { timeout: 15000 });
    const first = await page.evaluate(() => window.webterm.status);
    assert.match(first, BANNER);
    // It counts down.
    await page.waitForFunction((s) => window.webterm.status !== s, first, { timeout: 15000 });
    assert.match(await page.evaluate(() => window.webterm.status), BANNER);

    // Typing does not dismiss it (only the idle warning is a key's to
    // answer), and the shell answers.
    await type(page, 'echo "during-$((6*7))"\n');
    await waitForText(page, /^during-42$/m);
    assert.equal(await page.evaluate(() => window.webterm.state), 'warning');

    // A reload during the drain gets the same shell back, and the banner.
    await page.reload();
    await page.waitForFunction(() => window.webterm?.state === 'warning', null, { timeout: 15000 });
    assert.match(await page.evaluate(() => window.webterm.status), BANNER);
    await type(page, 'echo "again=$$"\n');
    await waitForText(page, new RegExp(`^again=${shell}$`, 'm'));

    // The session ends by itself: the page says so and the server leaves.
    const exited = new Promise((resolve) => server.proc.on('exit', resolve));
    await type(page, 'exit\n');
    await page.waitForFunction(() => window.webterm.state === 'closed', null, { timeout: 15000 });
    assert.match(await page.evaluate(() => window.webterm.status), /exited with code 0/);
    const code = server.proc.exitCode ?? await Promise.race([
      exited,
      new Promise((resolve) => setTimeout(() => resolve('still running after 30 s'), 30000)),
    ]);
    assert.equal(code, 0);
    assert.deepEqual(page.errors, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
