// Native TLS in a real browser: the page over https, its socket over wss,
// a shell's prompt and echo. And --url-arg: the page passes its own
// ?arg.NAME= values on to the socket, and they reach the command's argv.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openTerminal, startServer, type, waitForText } from './harness.mjs';

describe('tls and url arguments', () => {
  test('https: the page loads, the socket is wss, the shell answers', async () => {
    const server = await startServer(['--', '/bin/sh'], { tls: true });
    const browser = await launchBrowser(['--ignore-certificate-errors']);
    try {
      assert.match(server.url, /^https:\/\//);
      const page = await openTerminal(browser, server.url);
      assert.equal(await page.evaluate(() => location.protocol), 'https:');
      await waitForText(page, /\$ ?$/m);
      await type(page, 'echo "tls-$((6*7))"\n');
      await waitForText(page, /^tls-42$/m);
      assert.deepEqual(page.errors, []);
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('?arg.word= on the page URL reaches the command as one argument', async () => {
    // The value is sh's $1, never part of the script: one argv entry.
    const server = await startServer([
      '--url-arg', 'word', '--', '/bin/sh', '-c', 'printf "[%s]\\n" "$1"; exec sleep 100', 'sh',
    ]);
    const browser = await launchBrowser();
    try {
      const page = await openTerminal(browser, `${server.url}/?arg.word=${encodeURIComponent('two words; $(id)')}`);
      await waitForText(page, /^\[two words; \$\(id\)\]$/m);
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});
