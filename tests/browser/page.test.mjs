// The page in real Chromium against the real server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchBrowser, openTerminal, outputDir, startServer, type, waitForText } from './harness.mjs';

describe('the terminal page', () => {
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

  test('a typed command is answered in the terminal', async () => {
    const page = await openTerminal(browser, server.url);
    await type(page, 'echo "answer: $((6*7))"\n');
    await waitForText(page, /answer: 42/);
    // Unicode through the binary protocol, rendered as the right characters.
    await type(page, 'printf "\\342\\224\\214\\342\\224\\200 \\346\\227\\245\\346\\234\\254 ok\\n"\n');
    await waitForText(page, /┌─ 日本 ok/);
    assert.deepEqual(page.errors, []);
    // The socket is in its worker: the CSP the server gives the worker
    // script lets it connect.
    assert.equal(await page.evaluate(() => window.webterm.socketPlace), 'worker');
    // The README's picture: colour, box drawing, a prompt.
    await type(page, "clear; printf '\\033[1;32mwebterm\\033[0m  \\033[34mxterm.js 6\\033[0m over \\033[33mwebterm.binary.v1\\033[0m\\n┌─────────────┐\\n│\\033[7m no grey goo \\033[0m│\\n└─────────────┘\\n'; ls -la /\n");
    await waitForText(page, /│ +no grey goo +│[\s\S]*dr[-w]x/);
    await page.screenshot({ path: path.join(outputDir, 'screenshot.png') });
    await page.close();
  });

  test('resizing the window changes stty size, once per change', async () => {
    const page = await openTerminal(browser, server.url, { width: 900, height: 500 });
    const before = await page.evaluate(() => [window.webterm.term.rows, window.webterm.term.cols]);
    // The first size came with the URL: the shell already knows it.
    await type(page, 'stty size\n');
    await waitForText(page, new RegExp(`^${before[0]} ${before[1]}$`, 'm'));
    await page.setViewportSize({ width: 600, height: 300 });
    await page.waitForFunction((b) => window.webterm.term.cols !== b[1], before);
    const after = await page.evaluate(() => [window.webterm.term.rows, window.webterm.term.cols]);
    assert.ok(after[0] < before[0] && after[1] < before[1], `${before} -> ${after}`);
    await type(page, 'clear; stty size\n');
    await waitForText(page, new RegExp(`^${after[0]} ${after[1]}$`, 'm'));
    await page.close();
  });

  test('the window title follows the terminal', async () => {
    const page = await openTerminal(browser, server.url);
    await type(page, 'printf "\\033]0;my-title-123\\007"\n');
    await page.waitForFunction(() => document.title === 'my-title-123');
    await page.close();
  });

  test('a flood is held to the window and Ctrl-C brings the prompt back', async () => {
    const page = await openTerminal(browser, server.url);
    // A fast desktop keeps up with any flood; a Pi does not. Slow the page's
    // CPU down so xterm.js falls behind and flow control has to act.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 8 });
    await type(page, 'cat /dev/urandom | base64\n');
    await page.waitForFunction(() => window.webterm.stats.bytes > 3_000_000, null, { timeout: 60000 });
    const atCtrlC = await page.evaluate(() => ({ ...window.webterm.stats, ...window.webterm.flow }));
    // The server ran ahead of the page (so the window mattered), and never
    // by more than the window: at most 2 MiB beyond what the page
    // acknowledged (a page this slow keeps the 256 KiB it starts with, but
    // how slow it is depends on the machine).
    assert.ok(atCtrlC.ahead > 128 * 1024, `the flood never outran the page: ${JSON.stringify(atCtrlC)}`);
    assert.ok(atCtrlC.ahead <= 2 * 1024 * 1024, `more than the window in flight: ${JSON.stringify(atCtrlC)}`);
    await page.keyboard.press('Control+C');
    const started = Date.now();
    await type(page, 'echo "back-$((1+1))"\n');
    await waitForText(page, /back-2/, 20000);
    const waited = Date.now() - started;
    const after = await page.evaluate(() => window.webterm.stats.bytes);
    const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? 0);
    const late = after - atCtrlC.bytes;
    console.log(`flood: ${(atCtrlC.bytes / 1e6).toFixed(1)} MB, at most ${(atCtrlC.ahead / 1024).toFixed(0)} KiB ahead, ${(late / 1e3).toFixed(0)} kB after Ctrl-C, prompt in ${waited} ms (CPU throttled 8x), JS heap ${(heap / 1e6).toFixed(1)} MB`);
    // What was already in flight, plus what the PTY held, plus the prompt: bounded by the window.
    assert.ok(late < 2_500_000, `${late} bytes arrived after Ctrl-C`);
    assert.ok(heap < 300e6, `tab heap grew to ${heap}`);
    await page.close();
  });

  test('copy on selection puts the text on the clipboard', async () => {
    const context = await browser.newContext({ viewport: { width: 900, height: 500 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    const page = await context.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => window.webterm?.state === 'connected');
    await type(page, 'echo copy-me-please\n');
    await waitForText(page, /^copy-me-please$/m);
    await page.evaluate(() => window.webterm.term.selectAll());
    await page.waitForFunction(async () => (await navigator.clipboard.readText()).includes('copy-me-please'));
    // And Ctrl+Shift+V pastes it back into the shell.
    await page.evaluate(() => navigator.clipboard.writeText('echo pasted-$((2+3))\n'));
    await page.keyboard.press('Control+Shift+V');
    await waitForText(page, /pasted-5/);
    await context.close();
  });
});

describe('closed states', () => {
  test('a child exit shows its code and Enter starts again', async () => {
    const server = await startServer(['--', '/bin/sh', '-c', 'echo bye; read line; exit 7']);
    const browser = await launchBrowser();
    try {
      const page = await openTerminal(browser, server.url);
      await waitForText(page, /bye/);
      await type(page, '\n');
      await page.waitForFunction(() => window.webterm.state === 'closed');
      const status = await page.evaluate(() => window.webterm.status);
      assert.match(status, /exited with code 7/);
      assert.equal(await page.locator('#status').isVisible(), true);
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => window.webterm.state === 'connected');
      await page.waitForFunction(() => window.webterm.stats.connects === 2);
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('the idle timeout and too many sessions are explained', async () => {
    const server = await startServer(['--idle-timeout', '5s', '--idle-check-interval', '100ms', '--max-sessions', '1', '--', '/bin/sh']);
    const browser = await launchBrowser();
    try {
      const first = await openTerminal(browser, server.url);
      // A key restarts the first session's idle clock: on a busy machine the
      // second page still loads well inside its 5 s.
      await type(first, ' ');
      const second = await browser.newPage();
      await second.goto(server.url);
      await second.waitForFunction(() => window.webterm?.state === 'closed');
      assert.match(await second.evaluate(() => window.webterm.status), /too many sessions \(limit 1\)/);
      await first.waitForFunction(() => window.webterm.state === 'closed', null, { timeout: 10000 });
      assert.match(await first.evaluate(() => window.webterm.status), /idle timeout/);
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('server shutdown is shown, and the page reconnects when it is back', async () => {
    let server = await startServer(['--', '/bin/sh']);
    const port = new URL(server.url).port;
    const browser = await launchBrowser();
    try {
      const page = await openTerminal(browser, server.url);
      await server.stop();
      await page.waitForFunction(() => /shutting down|unreachable|lost/.test(window.webterm.status));
      server = await startServer(['--listen', `127.0.0.1:${port}`, '--', '/bin/sh']);
      await page.waitForFunction(() => window.webterm.state === 'connected' && window.webterm.stats.connects === 2, null, { timeout: 30000 });
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});

describe('without WebGL', () => {
  test('the DOM renderer takes over and the terminal works', async () => {
    const server = await startServer(['--', '/bin/sh']);
    const browser = await launchBrowser(['--disable-webgl', '--disable-webgl2', '--disable-3d-apis']);
    try {
      const page = await openTerminal(browser, server.url);
      assert.equal(await page.evaluate(() => window.webterm.renderer), 'dom');
      await type(page, 'echo dom-$((3*3))\n');
      await waitForText(page, /dom-9/);
      assert.deepEqual(page.errors, []);
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('operator terminal options reach xterm.js', async () => {
    const server = await startServer(['-t', 'fontSize=21', '-t', 'cursorStyle=bar', '-t', 'renderer=dom', '--', '/bin/sh']);
    const browser = await launchBrowser();
    try {
      const page = await openTerminal(browser, server.url);
      const opts = await page.evaluate(() => ({
        fontSize: window.webterm.term.options.fontSize,
        cursorStyle: window.webterm.term.options.cursorStyle,
        renderer: window.webterm.renderer,
      }));
      assert.deepEqual(opts, { fontSize: 21, cursorStyle: 'bar', renderer: 'dom' });
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});

describe('behind a reverse proxy', () => {
  test('the page and its socket work under a base path with Basic authentication', async () => {
    const server = await startServer(['--base-path', '/term', '--credential', 'ann:pw', '--', '/bin/sh']);
    const browser = await launchBrowser();
    try {
      const anonymous = await browser.newContext();
      const resp = await anonymous.request.get(`${server.url}/term/`);
      assert.equal(resp.status(), 401);
      assert.match(resp.headers()['www-authenticate'], /^Basic realm="webterm"/);
      const context = await browser.newContext({ httpCredentials: { username: 'ann', password: 'pw' } });
      const page = await context.newPage();
      await page.goto(`${server.url}/term`);
      assert.equal(new URL(page.url()).pathname, '/term/');
      await page.waitForFunction(() => window.webterm?.state === 'connected', null, { timeout: 15000 });
      await type(page, 'echo "behind-$((2*21))"\n');
      await waitForText(page, /behind-42/);
      // The worker loaded under the base path, with the same credentials.
      assert.equal(await page.evaluate(() => window.webterm.socketPlace), 'worker');
      const cookies = await context.cookies();
      assert.ok(cookies.some((c) => c.name === 'webterm_auth' && c.httpOnly && c.path === '/term/'), JSON.stringify(cookies));
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});

describe('sessions that survive', () => {
  test('a refresh brings back the same shell with its output', async () => {
    const server = await startServer(['--', '/bin/sh']);
    const browser = await launchBrowser();
    try {
      const page = await openTerminal(browser, server.url);
      await type(page, 'echo "pid-is-$$"; echo "before-$((100+1))"\n');
      const text = await waitForText(page, /^before-101$/m);
      const pid = text.match(/^pid-is-(\d+)$/m)[1];
      await page.reload();
      await page.waitForFunction(() => window.webterm?.state === 'connected' && window.webterm.stats.lastSetup?.resumed === true);
      // The history is back, and the same shell answers.
      await waitForText(page, /^before-101$/m);
      await type(page, 'echo "again-$$"\n');
      await waitForText(page, new RegExp(`^again-${pid}$`, 'm'));
      // A different tab is a different session.
      const other = await openTerminal(browser, server.url);
      await type(other, 'echo "other-$$"\n');
      const otherText = await waitForText(other, /^other-\d+$/m);
      assert.doesNotMatch(otherText, new RegExp(`^other-${pid}$`, 'm'));
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('the idle warning counts down and a key cancels it', async () => {
    const server = await startServer(['--idle-timeout', '4s', '--idle-warning', '3s', '--', '/bin/sh']);
    const browser = await launchBrowser();
    try {
      const page = await openTerminal(browser, server.url);
      await page.waitForFunction(() => window.webterm.state === 'warning', null, { timeout: 10000 });
      assert.match(await page.evaluate(() => window.webterm.status), /ends in [123]s\. Press any key/);
      await page.keyboard.press('a');
      await page.waitForFunction(() => window.webterm.state === 'connected');
      // Past the original deadline, still connected; then it warns again and ends.
      await page.waitForTimeout(1500);
      assert.notEqual(await page.evaluate(() => window.webterm.state), 'closed');
      await page.waitForFunction(() => window.webterm.state === 'closed', null, { timeout: 15000 });
      assert.match(await page.evaluate(() => window.webterm.status), /idle timeout/);
    } finally {
      await browser.close();
      await server.stop();
    }
  });

  test('a shared view link shows the session read-only', async () => {
    const server = await startServer(['--', '/bin/sh']);
    const browser = await launchBrowser();
    try {
      const context = await browser.newContext();
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
      const owner = await context.newPage();
      await owner.goto(server.url);
      await owner.waitForFunction(() => window.webterm?.state === 'connected');
      await type(owner, 'echo "shared-$((7*6))"\n');
      await waitForText(owner, /^shared-42$/m);
      await owner.click('#menu-button');
      await owner.click('#share');
      const link = await owner.evaluate(() => navigator.clipboard.readText());
      assert.match(link, /#view=[0-9a-f]{32}\.[0-9a-f]{64}$/);

      const viewer = await browser.newPage();
      await viewer.goto(link);
      await viewer.waitForFunction(() => window.webterm?.state === 'viewing');
      assert.equal(await viewer.evaluate(() => window.webterm.viewing), true);
      await waitForText(viewer, /^shared-42$/m);
      await type(owner, 'echo "live-$((5+5))"\n');
      await waitForText(viewer, /^live-10$/m);
      // Typing in the viewer reaches nothing.
      await type(viewer, 'echo "from-viewer-$((1+2))"\n');
      await type(owner, 'echo "owner-done"\n');
      const ownerText = await waitForText(owner, /^owner-done$/m);
      assert.doesNotMatch(ownerText, /from-viewer/);
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});

describe('a command that cannot start', () => {
  test('says why once, and does not retry by itself', async () => {
    const server = await startServer(['--', '/nonexistent/webterm-test-command']);
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      await page.goto(server.url);
      await page.waitForFunction(() => window.webterm?.state === 'closed', null, { timeout: 15000 });
      const status = await page.locator('#status').innerText();
      assert.match(status, /could not start the terminal/);
      // A retry loop would start (and fail) a session every second or so.
      await new Promise((r) => setTimeout(r, 3500));
      const failures = server.logs.filter((l) => l.includes('Could not start'));
      assert.equal(failures.length, 1, failures.join('\n'));
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});

describe('when the socket worker cannot start', () => {
  test('the socket runs on the page, and the terminal works the same', async () => {
    // --assets-dir serves its own files over the embedded ones: a worker
    // script that throws as it loads, as a proxy's error page would.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webterm-assets-'));
    fs.writeFileSync(path.join(dir, 'socket.worker.mjs'), "throw new Error('no worker here');\n");
    const server = await startServer(['--assets-dir', dir, '--', '/bin/sh']);
    const browser = await launchBrowser();
    try {
      const page = await openTerminal(browser, server.url);
      await type(page, 'echo "fallback-$((6*7))"\n');
      await waitForText(page, /fallback-42/);
      assert.equal(await page.evaluate(() => window.webterm.socketPlace), 'page');
      assert.equal(await page.evaluate(() => window.webterm.stats.connects), 1);
      await page.close();
    } finally {
      await browser.close();
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
