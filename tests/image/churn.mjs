// The image test's churn half: many sessions opened and ended against a
// running container, each leaving background processes behind, one of them
// escaped from the terminal's session (setsid). webterm is PID 1 there:
// scripts/test-image.sh then checks that nothing but webterm is left and
// that no zombie remains, on each platform (arm64 under qemu included).
//
//   node tests/image/churn.mjs http://127.0.0.1:PORT [SESSIONS]
import { launchBrowser } from '../browser/harness.mjs';

const [url, count = '24'] = process.argv.slice(2);
if (!url) {
  console.error('usage: churn.mjs URL [SESSIONS]');
  process.exit(2);
}

const browser = await launchBrowser();
try {
  // A page of the same origin that starts no terminal of its own, so the
  // sockets below pass the Origin check and are the only sessions. Its
  // strict CSP (connect-src 'none' on what is not the page) is bypassed.
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  await page.goto(new URL('healthz', url).toString());
  const ended = await page.evaluate(async ({ n, batch }) => {
    const socketUrl = new URL('ws', location.href);
    socketUrl.protocol = 'ws:';
    const one = (i) => new Promise((resolve, reject) => {
      const ws = new WebSocket(socketUrl, ['webterm.binary.v1']);
      ws.binaryType = 'arraybuffer';
      let text = '';
      let typed = false;
      let done = false;
      const timer = setTimeout(() => reject(new Error(`session ${i}: no answer; it shows ${JSON.stringify(text.slice(-200))}`)), 120000);
      ws.onmessage = (ev) => {
        if (typeof ev.data === 'string') return; // control messages
        text += new TextDecoder().decode(ev.data);
        // The prompt; busybox's line editor then asks where the cursor is
        // (ESC [6n) and goes on without an answer.
        if (!typed && /[$#] (\x1b\[6n)?$/.test(text)) {
          typed = true;
          ws.send(new TextEncoder().encode(
            'sleep 300 & setsid sleep 300 </dev/null >/dev/null 2>&1 & echo "left-$((40+2))"\r',
          ));
        } else if (typed && !done && text.includes('left-42')) {
          done = true;
          ws.close(1000, 'churn');
        }
      };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        if (done) resolve(ev.code);
        else reject(new Error(`session ${i} closed early (${ev.code} ${ev.reason}): ${JSON.stringify(text.slice(-200))}`));
      };
    });
    let ok = 0;
    for (let i = 0; i < n; i += batch) {
      const codes = await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, k) => one(i + k)));
      ok += codes.length;
    }
    return ok;
  }, { n: Number(count), batch: 6 });
  console.log(`ok: ${ended} sessions started, left background processes, and ended`);
} catch (e) {
  console.error(`FAIL churn against ${url}: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
