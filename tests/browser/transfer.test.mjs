// File transfer with trzsz: `trz` uploads what the user picks or drops,
// `tsz FILE` downloads, the page's upload limit holds, and with
// --no-file-transfer nothing is intercepted. trz and tsz are the real ones,
// from PyPI (scripts/trzsz.sh puts them in a venv under target/).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, openTerminal, startServer, type, waitForText } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MIB = 1024 * 1024;
const LONG = 120000; // a 5 MiB transfer on a loaded machine

const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Waits until `check()` is true, polling; fails with `what` after `ms`. */
async function until(check, what, ms = LONG) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Answers the page's file picker with `files`: it opens at once when a key
 * press is recent enough, else the page asks for a click first.
 */
async function pick(page, files) {
  const chooser = page.waitForEvent('filechooser', { timeout: LONG });
  const ask = page.locator('#transfer-choose');
  let settled = false;
  const clicker = (async () => {
    while (!settled) {
      if (await ask.isVisible().catch(() => false)) {
        await ask.click().catch(() => {});
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    const fc = await chooser;
    await fc.setFiles(files);
  } finally {
    settled = true;
    await clicker;
  }
}

/** Drops a file from disk on the terminal, as the browser gets it from the desktop. */
async function dropFile(page, file) {
  const cdp = await page.context().newCDPSession(page);
  const box = await page.locator('#terminal').boundingBox();
  const at = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  const data = { items: [], files: [file], dragOperationsMask: 1 };
  for (const type of ['dragEnter', 'dragOver', 'drop']) {
    await cdp.send('Input.dispatchDragEvent', { type, ...at, data });
  }
  await cdp.detach();
}

describe('file transfer (trzsz)', () => {
  let bin;
  let dir;
  let server;
  let browser;
  const env = () => ({ PATH: `${bin}:${process.env.PATH}` });

  before(async () => {
    bin = execFileSync('bash', [path.join(root, 'scripts/trzsz.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    assert.ok(existsSync(path.join(bin, 'trz')) && existsSync(path.join(bin, 'tsz')), bin);
    dir = mkdtempSync(path.join(os.tmpdir(), 'webterm-transfer-'));
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let page = null;
  async function restart(args, command = ['/bin/sh']) {
    await page?.close();
    await server?.stop();
    server = await startServer([...args, '--', ...command], { env: env() });
  }
  async function fresh(args = []) {
    await restart(args);
    page = await openTerminal(browser, server.url);
    await waitForText(page, /\$ $/m);
    return page;
  }

  test('trz uploads 5 MiB of random bytes, byte for byte', async () => {
    page = await fresh();
    const src = path.join(dir, 'src');
    const dest = path.join(dir, 'up');
    execFileSync('mkdir', ['-p', src, dest]);
    const file = path.join(src, 'random.bin');
    writeFileSync(file, randomBytes(5 * MIB));
    await page.waitForFunction(() => window.webterm.transfer.on);
    await type(page, `cd ${dest} && trz; echo "trz-exit-$?"\n`);
    await pick(page, [file]);
    await waitForText(page, /^trz-exit-0$/m, LONG);
    assert.equal(sha256(path.join(dest, 'random.bin')), sha256(file));
    assert.equal(await page.evaluate(() => window.webterm.transfer.active), false);
    assert.deepEqual(page.errors, []);
  });

  test('tsz downloads 5 MiB of random bytes through the browser, byte for byte', async () => {
    page = await fresh();
    const from = path.join(dir, 'down');
    execFileSync('mkdir', ['-p', from]);
    const file = path.join(from, 'sent.bin');
    writeFileSync(file, randomBytes(5 * MIB));
    await page.waitForFunction(() => window.webterm.transfer.on);
    const download = page.waitForEvent('download', { timeout: LONG });
    await type(page, `cd ${from} && tsz sent.bin; echo "tsz-exit-$?"\n`);
    const got = await download;
    assert.equal(got.suggestedFilename(), 'sent.bin');
    const saved = path.join(dir, 'saved.bin');
    await got.saveAs(saved);
    assert.equal(sha256(saved), sha256(file));
    await waitForText(page, /^tsz-exit-0$/m, LONG);
    // The transfer went through the acknowledgement window (256 KiB): the
    // bytes it took from the terminal were acknowledged, or it would stall.
    assert.ok((await page.evaluate(() => window.webterm.flow.acked)) > 5 * MIB);
  });

  test('a file dropped on the terminal is uploaded with trz', async () => {
    page = await fresh();
    const dest = path.join(dir, 'dropped');
    execFileSync('mkdir', ['-p', dest]);
    const file = path.join(dir, 'drop.bin');
    writeFileSync(file, randomBytes(5 * MIB));
    await page.waitForFunction(() => window.webterm.transfer.on);
    await type(page, `cd ${dest}\n`);
    await waitForText(page, /dropped\n\$ $/m);
    await dropFile(page, file);
    await until(() => existsSync(path.join(dest, 'drop.bin')) && sha256(path.join(dest, 'drop.bin')) === sha256(file), 'the dropped file on disk');
    await page.waitForFunction(() => !window.webterm.transfer.active, null, { timeout: LONG });
    assert.equal(await page.evaluate(() => window.webterm.stats.drops), 1);
  });

  test('trz -d uploads a folder, subfolders included', async () => {
    page = await fresh();
    const src = path.join(dir, 'tree');
    const dest = path.join(dir, 'tree-up');
    execFileSync('mkdir', ['-p', path.join(src, 'sub'), dest]);
    writeFileSync(path.join(src, 'a.bin'), randomBytes(300 * 1024));
    writeFileSync(path.join(src, 'sub', 'b.txt'), 'hello from a subfolder\n');
    await page.waitForFunction(() => window.webterm.transfer.on);
    await type(page, `cd ${dest} && trz -d; echo "trzd-exit-$?"\n`);
    await pick(page, src);
    await waitForText(page, /^trzd-exit-0$/m, LONG);
    assert.equal(sha256(path.join(dest, 'tree', 'a.bin')), sha256(path.join(src, 'a.bin')));
    assert.equal(readFileSync(path.join(dest, 'tree', 'sub', 'b.txt'), 'utf8'), 'hello from a subfolder\n');
  });

  // No key press opened these trz runs (the server's command did), so the
  // browser would refuse to open a file picker: the page asks for a click.
  test('trz without a recent key press: the page asks, and Cancel cancels', async () => {
    const dest = path.join(dir, 'asked');
    execFileSync('mkdir', ['-p', dest]);
    await restart([], ['/bin/sh', '-c', `cd ${dest} && trz; echo "asked-$?"; exec sleep 100`]);
    page = await openTerminal(browser, server.url);
    await page.locator('#transfer-cancel').click({ timeout: LONG });
    await waitForText(page, /^asked-0$/m, LONG);
    assert.equal(await page.locator('#transfer').isVisible(), false);
    assert.equal(await page.evaluate(() => window.webterm.stats.transferAsks), 1);
    assert.deepEqual(readdirSync(dest), []);
  });

  test('trz without a recent key press: Choose files opens the picker', async () => {
    const dest = path.join(dir, 'chosen');
    execFileSync('mkdir', ['-p', dest]);
    const file = path.join(dir, 'chosen.bin');
    writeFileSync(file, randomBytes(MIB));
    await restart([], ['/bin/sh', '-c', `cd ${dest} && trz; echo "chosen-$?"; exec sleep 100`]);
    page = await openTerminal(browser, server.url);
    const chooser = page.waitForEvent('filechooser', { timeout: LONG });
    await page.locator('#transfer-choose').click({ timeout: LONG });
    await (await chooser).setFiles([file]);
    await waitForText(page, /^chosen-0$/m, LONG);
    assert.equal(sha256(path.join(dest, 'chosen.bin')), sha256(file));
  });

  test('--max-upload: a larger upload is refused before anything is sent', async () => {
    page = await fresh(['--max-upload', '1M']);
    const dest = path.join(dir, 'limited');
    execFileSync('mkdir', ['-p', dest]);
    const file = path.join(dir, 'big.bin');
    writeFileSync(file, randomBytes(2 * MIB));
    await page.waitForFunction(() => window.webterm.transfer.on);
    const before = await page.evaluate(() => window.webterm.stats.inputBytes);
    await type(page, `cd ${dest} && trz; echo "trz-exit-$?"\n`);
    await pick(page, [file]);
    // trz shows the page's reason (and exits 0 all the same).
    const text = await waitForText(page, /^trz-exit-\d+$/m, LONG);
    assert.match(text, /2 MiB is more than this server's upload limit of 1 MiB \(--max-upload\)/);
    assert.doesNotMatch(text, /Traceback/);
    assert.equal(existsSync(path.join(dest, 'big.bin')), false);
    assert.equal(await page.evaluate(() => window.webterm.stats.refused), 1);
    // A drop over the limit is refused before trz is even typed.
    await dropFile(page, file);
    await page.waitForFunction(() => window.webterm.stats.refused === 2);
    assert.equal(await page.evaluate(() => window.webterm.stats.drops), undefined);
    assert.deepEqual(readdirSync(dest), []);
    // Far less went out than the file: keys and trzsz's refusal, no data.
    assert.ok((await page.evaluate(() => window.webterm.stats.inputBytes)) - before < 64 * 1024);
  });

  test('--no-file-transfer: trzsz is not loaded and trz\'s request reaches the terminal as is', async () => {
    await restart(['--no-file-transfer']);
    page = await browser.newPage();
    const requested = [];
    page.on('request', (r) => requested.push(new URL(r.url()).pathname));
    let chooser = false;
    page.on('filechooser', () => (chooser = true));
    await page.goto(server.url);
    await page.waitForFunction(() => window.webterm?.state === 'connected');
    await waitForText(page, /\$ $/m);
    assert.equal(await page.evaluate(() => window.webterm.transfer.on), false);
    await type(page, 'trz\n');
    await waitForText(page, /::TRZSZ:TRANSFER:R:/, LONG);
    assert.equal(await page.locator('#transfer').isVisible(), false);
    assert.equal(chooser, false);
    assert.ok(!requested.some((p) => p.endsWith('/trzsz.mjs')), requested.join(' '));
    await page.keyboard.press('Control+C');
  });
});
