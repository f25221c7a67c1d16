// The socktop image's browser check: the page of a container running the
// socktop TUI against a socktop_agent container shows the dashboard with the
// agent's live numbers, and `q` quits it (the session ends).
//
//   node tests/image/check-socktop.mjs http://127.0.0.1:PORT
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser, openTerminal, outputDir, type, waitForText } from '../browser/harness.mjs';

const [url] = process.argv.slice(2);
if (!url) {
  console.error('usage: check-socktop.mjs URL');
  process.exit(2);
}

const browser = await launchBrowser();
try {
  const page = await openTerminal(browser, url, { width: 1200, height: 700 });
  // socktop draws its panes once the agent has sent metrics: a CPU
  // percentage and memory figures.
  const text = await waitForText(page, /CPU[\s\S]*\d+(\.\d+)?\s*%[\s\S]*Mem/i, 60000);
  await page.screenshot({ path: path.join(outputDir, 'image-socktop.png') });
  writeFileSync(path.join(outputDir, 'image-socktop.txt'), text);
  await type(page, 'q');
  await page.waitForFunction(() => window.webterm.state === 'closed', null, { timeout: 30000 });
  console.log(`ok: ${url} showed socktop's dashboard and q ended the session`);
} finally {
  await browser.close();
}
