// Three webterm replicas behind Debian's nginx, balancing round-robin with no
// stickiness: every page request and every socket may land on any replica,
// and the page still gets its own shell back, share links work, and losing
// a replica ends only its own sessions.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchBrowser, startServer, type, waitForText } from './harness.mjs';
import { WEBSOCKET_MAP, freePorts, startNginx } from './nginx.mjs';

async function metric(url, name) {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

async function until(what, check, timeout = 30000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The shell's pid, as the shell says it. */
async function shellPid(page, tag) {
  await type(page, `echo "${tag}=$$"\n`);
  const text = await waitForText(page, new RegExp(`^${tag}=\\d+$`, 'm'));
  return text.match(new RegExp(`^${tag}=(\\d+)$`, 'm'))[1];
}

/** nginx round-robin over the replicas at `addrs`, listening on `port`. */
function nginxConf(addrs, port) {
  return `
      ${WEBSOCKET_MAP}
      upstream webterm { ${addrs.map((a) => `server ${a} max_fails=0;`).join(' ')} }
      server {
        listen 127.0.0.1:${port};
        location / {
          proxy_pass http://webterm;
          proxy_http_version 1.1;
          proxy_set_header Upgrade $http_upgrade;
          proxy_set_header Connection $connection_upgrade;
          proxy_set_header Host $http_host;
          proxy_read_timeout 1h;
        }
      }`;
}

describe('three replicas behind a round-robin nginx', () => {
  let dir;
  let replicas;
  let proxy;
  let front;
  let browser;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'webterm-cluster-'));
    const secret = path.join(dir, 'secret');
    writeFileSync(secret, 'a-cluster-secret-of-at-least-32-bytes-0123456789');
    // The ports are chosen before anything starts (each replica names the
    // others in --peers, nginx names all three), so one can be taken
    // meanwhile: then everything starts again on new ones, as tests/cluster.rs
    // does.
    let pf;
    for (let attempt = 1; ; attempt += 1) {
      let addrs;
      [pf, ...addrs] = await freePorts(4);
      addrs = addrs.map((p) => `127.0.0.1:${p}`);
      const started = await Promise.allSettled(['a', 'b', 'c'].map((name, i) => startServer([
        '--listen', addrs[i], '--node-id', name, '--peers', addrs.join(','),
        '--secret-file', secret, '--drain-timeout', '10m', '--', '/bin/sh',
      ])));
      replicas = started.filter((s) => s.status === 'fulfilled').map((s) => s.value);
      const failed = started.filter((s) => s.status === 'rejected').map((s) => s.reason);
      if (failed.length === 0) {
        try {
          proxy = await startNginx(nginxConf(addrs, pf), pf);
          break;
        } catch (e) {
          failed.push(e);
        }
      }
      await Promise.all(replicas.map((r) => r.stop()));
      replicas = [];
      const taken = failed.every((e) => /os error 98|Address already in use/.test(String(e)));
      if (!taken || attempt === 5) throw failed[0];
    }
    for (const r of replicas) await until('peers', async () => (await metric(r.url, 'webterm_peers')) === 2);
    front = `http://127.0.0.1:${pf}/`;
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await proxy?.stop();
    // A first SIGTERM starts the drain (10 minutes); a second, once the
    // drain has begun (/readyz answers 503), ends it at once.
    await Promise.all((replicas || []).filter((r) => r.proc.exitCode === null).map(async (r) => {
      r.proc.kill('SIGTERM');
      await until('the drain to begin', async () => r.proc.exitCode !== null
        || (await fetch(`${r.url}/readyz`).then((x) => x.status, () => 0)) !== 200);
      await r.stop();
    }));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('twenty reloads get the same shell and its output back', async () => {
    const page = await browser.newPage();
    await page.goto(front);
    await page.waitForFunction(() => window.webterm?.state === 'connected');
    const pid = await shellPid(page, 'first');
    await type(page, 'echo "mark-$((6*7))"\n');
    await waitForText(page, /^mark-42$/m);
    const id = await page.evaluate(() => window.webterm.session.id);
    for (let i = 0; i < 20; i += 1) {
      await page.reload();
      await page.waitForFunction(() => window.webterm?.state === 'connected');
      await waitForText(page, /^mark-42$/m);
      assert.equal(await page.evaluate(() => window.webterm.session.id), id, `reload ${i}`);
      assert.equal(await shellPid(page, `again${i}`), pid, `reload ${i}`);
    }
    // One session in the whole cluster, and no socket left forwarding.
    const started = await Promise.all(replicas.map((r) => metric(r.url, 'webterm_sessions_started_total')));
    assert.equal(started.reduce((a, b) => a + b, 0), 1, `started: ${started}`);
    await page.close();
  });

  test('a share link opened with no cookies shows live output', async () => {
    const context = await browser.newContext();
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: front.replace(/\/$/, '') });
    const owner = await context.newPage();
    await owner.goto(front);
    await owner.waitForFunction(() => window.webterm?.state === 'connected');
    await type(owner, 'echo "shared-$((7*6))"\n');
    await waitForText(owner, /^shared-42$/m);
    await owner.click('#menu-button');
    await owner.click('#share');
    const link = await owner.evaluate(() => navigator.clipboard.readText());
    const stranger = await browser.newContext();
    const viewer = await stranger.newPage();
    await viewer.goto(link);
    await viewer.waitForFunction(() => window.webterm?.state === 'viewing');
    await waitForText(viewer, /^shared-42$/m);
    for (let i = 0; i < 3; i += 1) {
      await type(owner, `echo "live-$((${i}+100))"\n`);
      await waitForText(viewer, new RegExp(`^live-${i + 100}$`, 'm'));
    }
    await stranger.close();
    await context.close();
  });

  test('losing a replica ends its sessions, says so, and spares the others', async () => {
    // Pages until two hold sessions on different replicas.
    const pages = [];
    const owners = new Set();
    let doomed;
    let spared;
    for (let i = 0; i < 12 && !spared; i += 1) {
      const page = await browser.newPage();
      await page.goto(front);
      // Connected is the socket open; the session's id comes with setup.
      await page.waitForFunction(() => window.webterm?.state === 'connected' && window.webterm.session);
      pages.push(page);
      const tag = (await page.evaluate(() => window.webterm.session.id)).slice(0, 8);
      if (!doomed) doomed = { page, tag };
      else if (tag !== doomed.tag) spared = { page, tag };
      owners.add(tag);
      // nginx hands out requests in turn, and a page load makes a fixed
      // number of them: when that is a multiple of three, every page would
      // ask the same replica for its session. Move the turn on by a number
      // that changes from page to page.
      for (let k = 0; k <= i % 3; k += 1) await fetch(`${front}healthz`);
    }
    assert.ok(spared, `every page landed on one replica: ${[...owners]}`);
    const sparedPid = await shellPid(spared.page, 'before');
    const tags = await Promise.all(replicas.map(async (r) => (await fetch(`${r.url}/config.json`).then((x) => x.json())).node));
    const victim = replicas[tags.indexOf(doomed.tag)];
    victim.proc.kill('SIGKILL');
    // A socket through another replica is closed with 4005 at once; one
    // straight to the victim is lost (1006), retried, and then told.
    await doomed.page.waitForFunction(
      () => window.webterm.state === 'closed' && /Session ended: .*(server holding this session|no server holds this session)/.test(window.webterm.status),
      null,
      { timeout: 30000 },
    ).catch(async (e) => {
      throw new Error(`${e.message}; the page says: ${await doomed.page.evaluate(() => window.webterm.status)}`);
    });
    // The other session lives on. Its page may have been reaching it
    // through the victim (a forwarded socket), and then reconnects through
    // another replica: type once it is connected, again if the keys were
    // lost to that reconnect.
    const deadline = Date.now() + 30000;
    for (;;) {
      await spared.page.waitForFunction(() => window.webterm.state === 'connected', null, { timeout: 30000 });
      await type(spared.page, 'echo "still-$((1+1))"\n');
      const ok = await waitForText(spared.page, /^still-2$/m, 3000).then(() => true, () => false);
      if (ok) break;
      assert.ok(Date.now() < deadline, 'the spared session never answered');
    }
    assert.equal(await shellPid(spared.page, 'after'), sparedPid, 'the spared page got a new shell');
    for (const p of pages) await p.close();
    // Nothing is left forwarding on the replicas that remain.
    for (const r of replicas.filter((x) => x !== victim)) {
      await until('forwarded sockets to close', async () => (await metric(r.url, 'webterm_forwarded_sockets')) === 0);
    }
  });

  test('a draining replica keeps its sessions, reached through the others, until they end', async () => {
    const page = await browser.newPage();
    await page.goto(front);
    await page.waitForFunction(() => window.webterm?.state === 'connected' && window.webterm.session);
    const pid = await shellPid(page, 'drainpid');
    const tag = (await page.evaluate(() => window.webterm.session.id)).slice(0, 8);
    const tags = await Promise.all(replicas.map((r) => fetch(`${r.url}/config.json`)
      .then((x) => x.json()).then((c) => c.node, () => null)));
    const owner = replicas[tags.indexOf(tag)];
    const exited = new Promise((resolve) => owner.proc.on('exit', resolve));
    owner.proc.kill('SIGTERM');
    await page.waitForFunction(() => window.webterm.state === 'warning' && /restarts in/.test(window.webterm.status), null, { timeout: 30000 });
    await type(page, 'echo "during-$((6*7))"\n');
    await waitForText(page, /^during-42$/m);
    // Reloads land anywhere (the draining replica takes no new sessions,
    // but still serves its own): the same shell every time, and the banner.
    for (let i = 0; i < 3; i += 1) {
      await page.reload();
      await page.waitForFunction(() => window.webterm?.state === 'warning' && window.webterm.session, null, { timeout: 30000 });
      assert.equal(await shellPid(page, `drained${i}`), pid, `reload ${i}`);
    }
    // The session ends by itself: the replica leaves at once, not in 10 minutes.
    await type(page, 'exit\n');
    await page.waitForFunction(() => window.webterm.state === 'closed', null, { timeout: 30000 });
    const code = owner.proc.exitCode ?? await Promise.race([
      exited,
      new Promise((resolve) => setTimeout(() => resolve('still running after 60 s'), 60000)),
    ]);
    assert.equal(code, 0);
    await page.close();
  });
});
