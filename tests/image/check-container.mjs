// The image test's browser half: opens webterm's page served by a running
// container in Debian's Chromium, and checks that the terminal reaches the
// image's shell prompt and runs commands there as the unprivileged user, on
// the expected architecture. scripts/test-image.sh runs it per platform.
//
//   node tests/image/check-container.mjs http://127.0.0.1:PORT aarch64
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser, openTerminal, outputDir, type, waitForText } from '../browser/harness.mjs';

const [url, arch] = process.argv.slice(2);
if (!url || !arch) {
  console.error('usage: check-container.mjs URL EXPECTED_UNAME_M');
  process.exit(2);
}

const browser = await launchBrowser();
try {
  const page = await openTerminal(browser, url);
  // The image's /etc/profile prompt: user@host:dir$ (busybox sh, login).
  await waitForText(page, /webterm@[\w.-]+:~\$ $/m, 30000);
  await type(page, 'echo "arch=$(uname -m) uid=$(id -u) sum=$((6*7)) term=$TERM"\n');
  const text = await waitForText(page, /arch=\S+ uid=\d+ sum=42 term=\S+/, 30000);
  const m = text.match(/arch=(\S+) uid=(\d+) sum=42 term=(\S+)/);
  const problems = [];
  if (m[1] !== arch) problems.push(`uname -m is ${m[1]}, expected ${arch}`);
  if (m[2] === '0') problems.push('the shell runs as root');
  if (m[3] !== 'xterm-256color') problems.push(`TERM is ${m[3]}`);
  // Terminfo is in the image: busybox has no tput, so check the file the
  // way a curses program finds it.
  await type(page, 'test -r /usr/share/terminfo/x/xterm-256color && t=ok || t=missing; echo "terminfo=$t."\n');
  const ti = await waitForText(page, /terminfo=(ok|missing)\./, 30000);
  if (ti.includes('terminfo=missing.')) problems.push('no terminfo for xterm-256color');
  if (page.errors.length) problems.push(`page errors: ${page.errors.join('; ')}`);
  await page.screenshot({ path: path.join(outputDir, `image-${arch}.png`) });
  writeFileSync(path.join(outputDir, `image-${arch}.txt`), await page.evaluate(() => window.webterm.text()));
  // Leave an orphan that escapes the terminal's session, then end the
  // session: PID 1 must reap the orphan when it exits (test-image.sh checks).
  await type(page, 'setsid sleep 3 </dev/null >/dev/null 2>&1 & exit\n');
  await page.waitForFunction(() => window.webterm.state === 'closed', null, { timeout: 30000 })
    .catch(() => problems.push('the session did not end after exit'));
  if (problems.length) {
    console.error(`FAIL ${url} (${arch}):\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log(`ok: ${url} reached the shell prompt on ${arch} as uid ${m[2]}`);
  }
} finally {
  await browser.close();
}
