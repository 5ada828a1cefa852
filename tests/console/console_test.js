// Drives the admin web console in Debian's chromium (headless) for
// tests/integration/test_console.py. Usage:
//   node console_test.js ADMIN_URL TOKEN_FILE ACTION_SUBSTRING
// Signs in with the token, finds the pending request whose action contains
// ACTION_SUBSTRING, checks the exact action text is shown as text (never as
// HTML), approves it with a reason, and prints a JSON report on stdout.
'use strict';
const fs = require('fs');
const { chromium } = require('playwright-core');

async function main() {
  const [url, tokenFile, needle] = process.argv.slice(2);
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
    const resp = await page.goto(url + '/', { waitUntil: 'load' });
    report.headers = resp.headers();
    await page.evaluate(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__csp = (window.__csp || []).concat([e.violatedDirective]);
      });
    });
    report.login_visible = await page.isVisible('#login');
    // a wrong token is refused and the login stays
    await page.fill('#token', 'not-a-token');
    await page.click('#signin');
    await page.waitForSelector('#login-error:not(:empty)', { timeout: 15000 });
    report.bad_login_error = await page.textContent('#login-error');
    await page.fill('#token', token);
    await page.click('#signin');
    await page.waitForSelector('#app:not([hidden])', { timeout: 15000 });
    report.who = await page.textContent('#who');
    report.token_in_session_storage = await page.evaluate(
      () => sessionStorage.getItem('airlock.token') !== null);
    const card = page.locator('.approval', { hasText: needle }).first();
    await card.waitFor({ timeout: 20000 });
    report.card_id = await card.getAttribute('data-id');
    report.action_text = await card.locator('pre.action').textContent();
    report.card_text = await card.innerText();
    report.injected_elements = await page.evaluate(
      () => document.querySelectorAll('#pending img, #pending script, #pending b').length);
    await card.locator('input.reason').fill('looks fine, from the console');
    await card.locator('button.approve').click();
    await page.waitForFunction(
      (id) => { const s = document.getElementById('status'); return s && s.textContent.indexOf(id) >= 0; },
      report.card_id, { timeout: 15000 });
    report.status = await page.textContent('#status');
    // the card leaves the pending list on the next refresh
    await page.waitForFunction(
      (id) => !document.querySelector('.approval[data-id="' + id + '"]'),
      report.card_id, { timeout: 15000 });
    report.sessions_rows = await page.locator('#sessions tbody tr').count();
    await page.waitForFunction(() => document.querySelectorAll('#audit tbody tr').length > 0,
      null, { timeout: 15000 });
    report.audit_rows = await page.locator('#audit tbody tr').count();
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
