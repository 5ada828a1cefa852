// Drives the console's session timeline in Debian's chromium (headless) for
// tests/integration/test_console.py. Usage:
//   node timeline_test.js ADMIN_URL TOKEN_FILE SESSION_ID MISSING_ID [LIVE_ID]
// Signs in, opens SESSION_ID's timeline through the "recording" input,
// reports every timeline row's cells (textContent) and whether any recorded
// markup became an element; opens MISSING_ID (no recording) for its error;
// with LIVE_ID, clicks that live session's Timeline button in the sessions
// table. Prints a JSON report on stdout.
'use strict';
const fs = require('fs');
const { chromium } = require('playwright-core');

async function main() {
  const [url, tokenFile, id, missing, live] = process.argv.slice(2);
  const token = fs.readFileSync(tokenFile, 'utf8').trim();
  const report = { console_errors: [], csp_violations: [] };
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') report.console_errors.push(m.text());
    });
    await page.goto(url + '/', { waitUntil: 'load' });
    await page.evaluate(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__csp = (window.__csp || []).concat([e.violatedDirective]);
      });
    });
    await page.fill('#token', token);
    await page.click('#signin');
    await page.waitForSelector('#app:not([hidden])', { timeout: 15000 });

    await page.fill('#rec-id', id);
    await page.press('#rec-id', 'Enter');
    await page.waitForSelector('#timeline tbody tr', { timeout: 15000 });
    report.rows = await page.$$eval('#timeline tbody tr',
      (trs) => trs.map((tr) => Array.from(tr.cells).map((td) => td.textContent)));
    report.head = await page.textContent('#timeline-head');
    report.error = await page.textContent('#timeline-error');
    report.injected_elements = await page.evaluate(
      () => document.querySelectorAll('#timeline img, #timeline script, #timeline b, ' +
                                      '#timeline-head img, #timeline-head b').length);
    report.xss = await page.evaluate(() => window.__xss === 1);

    await page.fill('#rec-id', missing);
    await page.click('#rec-open');
    await page.waitForSelector('#timeline-error:not(:empty)', { timeout: 15000 });
    report.missing_error = await page.textContent('#timeline-error');
    report.missing_rows = await page.locator('#timeline tbody tr').count();

    await page.fill('#rec-id', '../../x');
    await page.click('#rec-open');
    report.bad_id_error = await page.textContent('#timeline-error');

    if (live) {
      // the only live session's row (the test keeps one open)
      const btn = page.locator('#sessions tbody tr button.timeline').first();
      await btn.waitFor({ timeout: 20000 });
      await btn.click();
      await page.waitForFunction(
        () => document.querySelector('#timeline tbody tr') ||
              document.getElementById('timeline-error').textContent !== '',
        null, { timeout: 15000 });
      report.live_input = await page.inputValue('#rec-id');
    }
    report.csp_violations = await page.evaluate(() => window.__csp || []);
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
