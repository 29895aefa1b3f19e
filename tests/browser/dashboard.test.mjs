// The dashboard in a real browser (Debian's chromium, driven by playwright-core) against a real
// tessera-server with real tessera-client nodes on 127.0.0.1. What a user would check: log in,
// submit Monte Carlo Pi through the form and watch it reach 100% with the right estimate,
// cancel a job, see nodes appear, enroll one with a token made in the page, add a user who then
// cannot reach the admin pages, and the server's words for a bad submission. Screenshots at
// 1280 and 375 px go to BUILD/tests/artifacts/.
//
//   TESSERA_BIN_DIR=build node --test tests/browser/dashboard.test.mjs
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { ADMIN_PASSWORD, Grid, until } from './grid.mjs';

const BIN = process.env.TESSERA_BIN_DIR;
if (!BIN) throw new Error('set TESSERA_BIN_DIR to the CMake build dir');
const ARTIFACTS = path.join(BIN, 'tests', 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// The estimate as the page must show it: 4·hits/samples, exact, rounded half up to 12 decimals.
function estimate(hits, samples, digits = 12) {
  const num = 4n * BigInt(hits), den = BigInt(samples), scale = 10n ** BigInt(digits);
  const q = (num * scale * 2n + den) / (den * 2n);
  return `${q / scale}.${(q % scale).toString().padStart(digits, '0')}`;
}

describe('dashboard', () => {
  let grid, context, page, userDir;
  const errors = []; // page errors and console errors: a clean page has none

  before(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    grid = new Grid(BIN);
    await grid.startServer();
    await grid.enrollAndRun('browser-node-1', await grid.enrollCommand(1));
    userDir = fs.mkdtempSync(path.join(grid.dir, 'chromium-'));
    // A fresh profile in the test's temp dir; no browser is downloaded: Debian's chromium.
    context = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--ignore-certificate-errors'],
      ignoreHTTPSErrors: true,
      viewport: { width: 1280, height: 900 },
    });
    page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(20000);
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  });

  after(async () => {
    try {
      if (context) await context.close();
    } finally {
      if (grid) {
        await grid.stop();
        fs.writeFileSync(path.join(ARTIFACTS, 'browser-grid.log'), grid.logs());
        grid.remove();
      }
    }
  });

  const text = async (sel) => (await page.locator(sel).first().textContent()).trim();
  const visible = (sel) => page.locator(sel).first().waitFor({ state: 'visible' });
  const goto = async (hash) => {
    await page.evaluate((h) => { location.hash = h; }, hash);
  };
  const shot = async (name) => {
    await page.evaluate(() => document.getElementById('toasts').replaceChildren());
    await page.screenshot({ path: path.join(ARTIFACTS, `dashboard-${name}-${page.viewportSize().width}.png`), fullPage: true });
  };
  async function login(user, password) {
    await visible('#login-user');
    await page.fill('#login-user', user);
    await page.fill('#login-password', password);
    await page.click('form.login button[type=submit]');
  }

  test('GET / serves the dashboard; a wrong password is refused in words; the admin logs in', async () => {
    const res = await page.goto(`${grid.url}/`);
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-type'], /^text\/html/);
    await login('admin', 'not-the-password');
    await visible('form.login .box.error');
    assert.match(await text('form.login .box.error'), /wrong user name or password/i);
    await login('admin', ADMIN_PASSWORD);
    await visible('#stat-nodes');
    // The one node enrolled at start-up is online, with its cores.
    await until('1 node online on the overview', async () => (await text('#stat-nodes')) === '1');
    assert.match(await text('#stat-nodes-sub'), /^[1-9]\d* cores/);
    assert.equal(await page.evaluate(() => Object.keys(sessionStorage).join()), 'tessera.session');
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
  });

  let piJob;
  test('a Monte Carlo Pi job submitted in the form reaches 100% with the exact estimate', async () => {
    await page.click('#nav a[data-page=submit]');
    await visible('#submit-samples');
    await page.fill('#submit-samples', '2e8');
    await page.fill('#submit-seed', '42');
    await page.fill('#submit-units', '20');
    await page.click('#submit-button');
    await page.waitForURL(/#\/jobs\/\d+$/);
    piJob = Number(page.url().match(/#\/jobs\/(\d+)$/)[1]);
    // The bar fills live (no reload) and the job ends done.
    await page.waitForFunction(() => document.querySelector('#job-progress')?.getAttribute('aria-valuenow') === '100.0', null, { timeout: 90000 });
    assert.equal(await text('#job-progress .bar-label'), '100%');
    await until('the done badge', async () => (await text('.page-head .badge')) === 'done');
    const job = await grid.api('GET', `/jobs/${piJob}`);
    assert.equal(job.state, 'done');
    assert.deepEqual(job.params, { samples: 200000000, seed: 42 });
    assert.equal(job.units.total, 20);
    assert.equal(job.result.samples, 200000000);
    await visible('#pi-estimate');
    const shown = await text('#pi-estimate');
    assert.equal(shown, estimate(job.result.hits, job.result.samples));
    assert.ok(Math.abs(Number(shown) - job.result.pi) < 1e-12, `${shown} vs the API's ${job.result.pi}`);
    assert.ok(Math.abs(Number(shown) - Math.PI) < 1e-3, `${shown} is not near π`);
    assert.equal(await text('#pi-hits'), `${job.result.hits.toLocaleString('en-US')} / 200,000,000`);
    assert.match(await text('#pi-error'), /^[+−]\d/);
    // The convergence plot has one point per validated unit; units by node add up to 20.
    await until('20 points on the convergence plot', async () => (await page.locator('#convergence circle').count()) === 20);
    const perNode = await page.locator('#job-nodes .hbar-value').allTextContents();
    assert.equal(perNode.reduce((a, t) => a + Number(t.split(' ')[0]), 0), 20);
    assert.match(await text('#job-nodes .hbar-name'), /browser-node-1/);
    await shot('job');
  });

  test('page validation stops a bad job before it is sent', async () => {
    await goto('#/submit');
    await visible('#submit-samples');
    const posts = [];
    const onRequest = (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/v1/jobs')) posts.push(r); };
    page.on('request', onRequest);
    await page.fill('#submit-samples', 'lots');
    await page.fill('#submit-replication', '2');
    await page.fill('#submit-quorum', '3');
    await page.click('#submit-button');
    await visible('#submit-samples-error');
    assert.equal(await text('#submit-samples-error'), 'A whole number, please.');
    assert.equal(await text('#submit-quorum-error'), 'Cannot exceed the replication.');
    page.off('request', onRequest);
    assert.equal(posts.length, 0, 'the page sent a job it knew was bad');
  });

  test("a bad job that gets past the page shows the server's error in words", async () => {
    await goto('#/jobs');
    await goto('#/submit');
    await visible('#submit-samples');
    // Bypass the page's checks: the request leaves with samples 0, as a tampered page would send.
    let sent = null;
    await page.route('**/api/v1/jobs', async (route) => {
      const body = JSON.parse(route.request().postData());
      body.params.samples = 0;
      sent = body;
      await route.continue({ postData: JSON.stringify(body) });
    });
    await page.fill('#submit-samples', '1000');
    await page.click('#submit-button');
    await visible('#submit-error');
    await page.unroute('**/api/v1/jobs');
    assert.ok(sent, 'no request went out');
    // The page shows exactly what the server says about that body.
    const direct = await grid.request('POST', '/api/v1/jobs', { token: grid.adminToken, body: sent });
    assert.equal(direct.status, 400);
    const words = await text('#submit-error');
    assert.ok(words.includes(direct.body.error.message), `"${words}" lacks "${direct.body.error.message}"`);
    assert.match(words, /samples must be an integer from 1 to 10\^18/);
    assert.match(words, /Bad request \(400\)/);
    assert.match(page.url(), /#\/submit$/, 'a refused job must not leave the form');
  });

  test('another job is cancelled from the jobs list while it runs', async () => {
    await goto('#/submit');
    await visible('#submit-samples');
    await page.fill('#submit-samples', '1e13');
    await page.fill('#submit-seed', '7');
    await page.fill('#submit-units', '1000');
    await page.click('#submit-button');
    await page.waitForURL(/#\/jobs\/\d+$/);
    const id = Number(page.url().match(/#\/jobs\/(\d+)$/)[1]);
    await page.click('#nav a[data-page=jobs]');
    const rowSel = `.jobs-table tr[data-id="${id}"]`;
    // The idle node picks it up; the list shows it running without a reload.
    await until('the job running in the list', async () => (await page.getAttribute(rowSel, 'data-state')) === 'running', 30000);
    await visible(`${rowSel} button.cancel`);
    await page.click(`${rowSel} button.cancel`);
    await visible('#dialog[open]');
    assert.match(await text('#dialog-title'), new RegExp(`Cancel job ${id}`));
    await page.click('#dialog-ok');
    await until('the cancelled badge', async () => (await text(`${rowSel} .badge`)) === 'cancelled');
    assert.equal(await page.locator(`${rowSel} button.cancel`).isHidden(), true);
    assert.equal((await grid.api('GET', `/jobs/${id}`)).state, 'cancelled');
    // The finished Pi job is listed as done at 100%.
    assert.equal(await text(`.jobs-table tr[data-id="${piJob}"] .badge`), 'done');
    assert.equal(await text(`.jobs-table tr[data-id="${piJob}"] .bar-label`), '100%');
    await shot('jobs');
  });

  test('an enrollment token made in the page enrolls a node that appears live on the Nodes page', async () => {
    await page.click('#nav a[data-page=nodes]');
    await visible('.nodes-table tr[data-key]');
    assert.match(await text('.nodes-table'), /browser-node-1/);
    await page.evaluate(() => { window.notReloaded = true; });
    await page.click('#nav a[data-page=tokens]');
    await visible('#token-uses');
    await page.fill('#token-uses', '1');
    await page.fill('#token-lifetime', '1');
    await page.selectOption('#token-lifetime-unit', 'hours');
    await page.click('#token-create');
    await visible('#token-command');
    const command = await text('#token-command');
    assert.match(command, new RegExp(`^tessera-client enroll ${grid.url.replace(/\./g, '\\.')} tse1\\.\\S+$`));
    await until('the token in the list', async () => (await page.locator('.tokens-table tr[data-state=active]').count()) >= 1);
    await shot('tokens');
    // The command works as shown; this node may compute only in a window of local time that
    // starts in two hours, so it shows as paused.
    const minute = new Date().getHours() * 60 + new Date().getMinutes();
    const hhmm = (m) => `${String(Math.floor(m / 60) % 24).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
    const hours = `${hhmm((minute + 120) % 1440)}-${hhmm((minute + 180) % 1440)}`;
    await grid.enrollAndRun('browser-node-2', command, ['--hours', hours]);
    await page.click('#nav a[data-page=nodes]');
    const row2 = page.locator('.nodes-table tr[data-key]', { hasText: 'browser-node-2' });
    await row2.waitFor({ state: 'visible' });
    await until('browser-node-2 online', async () => (await row2.getAttribute('data-state')) === 'online');
    await until('browser-node-2 paused outside its hours',
      async () => (await row2.locator('.badge').textContent()) === 'paused: hours');
    // Each node's health from its heartbeats: load and memory of this machine.
    const row1 = page.locator('.nodes-table tr[data-key]', { hasText: 'browser-node-1' });
    await until('browser-node-1 health', async () => /load \d+\.\d\d · .*B of .*B free/.test(await row1.textContent()));
    assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page reloaded');
    // The token is spent.
    const tokens = (await grid.api('GET', '/enroll-tokens')).tokens;
    assert.ok(tokens.some((t) => t.uses_left === 0), JSON.stringify(tokens));
    // Disable and enable a node from the page.
    await row2.locator('button.toggle').click();
    await page.click('#dialog-ok');
    await until('browser-node-2 disabled', async () => (await row2.getAttribute('data-state')) === 'disabled');
    await row2.locator('button.toggle').click();
    await until('browser-node-2 enabled', async () => (await row2.getAttribute('data-state')) !== 'disabled');
    await shot('nodes');
  });

  test('a token is revoked from the page', async () => {
    await page.click('#nav a[data-page=tokens]');
    await page.click('#token-create');
    await visible('#token-command');
    const before = (await grid.api('GET', '/enroll-tokens')).tokens.filter((t) => !t.revoked && t.uses_left > 0);
    assert.equal(before.length, 1);
    const row = page.locator(`.tokens-table tr[data-key="${before[0].id}"]`);
    await row.locator('button.revoke').click();
    await page.click('#dialog-ok');
    await until('the revoked badge', async () => (await row.getAttribute('data-state')) === 'revoked');
    assert.equal((await grid.api('GET', '/enroll-tokens')).tokens.find((t) => t.id === before[0].id).revoked, true);
  });

  test('the overview shows the grid; screenshots at 1280 and 375 px', async () => {
    await page.click('#nav a[data-page=overview]');
    await until('2 nodes online', async () => (await text('#stat-nodes')) === '2');
    assert.match(await text('#recent-jobs'), new RegExp(`#${piJob} montecarlo_pi`));
    await shot('overview');
    await page.setViewportSize({ width: 375, height: 812 });
    for (const [hash, name, sel] of [['#/', 'overview', '#stat-nodes'], [`#/jobs/${piJob}`, 'job', '#pi-estimate'],
      ['#/jobs', 'jobs', '.jobs-table'], ['#/submit', 'submit', '#submit-samples'], ['#/nodes', 'nodes', '.nodes-table tr[data-key]']]) {
      await goto(hash);
      await visible(sel);
      await page.waitForTimeout(300);
      // Nothing sticks out sideways at phone width.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${name} is ${overflow} px wider than the phone`);
      await shot(name);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  test('an admin adds a user, who cannot see or use the admin pages', async () => {
    await page.click('#nav a[data-page=users]');
    await visible('#user-name');
    await page.fill('#user-name', 'alice');
    await page.fill('#user-password', 'alice-password-1');
    await page.selectOption('#user-role', 'user');
    await page.click('#user-add');
    const alice = page.locator('.users-table tr[data-username="alice"]');
    await alice.waitFor({ state: 'visible' });
    assert.equal(await alice.getAttribute('data-state'), 'active');
    await shot('users');

    await page.click('#logout');
    await visible('#login-notice');
    assert.match(await text('#login-notice'), /logged out/i);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'the token outlived the logout');
    await login('alice', 'alice-password-1');
    await visible('#stat-nodes');
    assert.equal(await text('#who-name'), 'alice · user');
    for (const p of ['nodes', 'tokens', 'users']) {
      assert.equal(await page.locator(`#nav a[data-page=${p}]`).isHidden(), true, `${p} link shown to a user`);
    }
    // A direct visit shows the server's 403 in words, and nothing of the page.
    for (const [hash, route] of [['#/nodes', '/api/v1/nodes'], ['#/users', '/api/v1/users'], ['#/tokens', '/api/v1/enroll-tokens']]) {
      await goto(hash);
      await visible('#main .forbidden .box.error');
      const words = await text('#main .forbidden .box.error');
      assert.match(words, /Forbidden \(403\)/);
      assert.ok(words.includes(route), `"${words}" does not name ${route}`);
      assert.match(words, /for administrators/);
      assert.equal(await page.locator('.nodes-table, .users-table, .tokens-table, #user-form, #token-form').count(), 0);
    }
    await shot('forbidden');
    // Alice sees her own jobs only: none yet.
    await goto('#/jobs');
    await visible('.page-head h1');
    assert.equal(await text('.page-head h1'), 'Your jobs');
    await visible('#main p.empty');
  });

  test('an ended session sends the page back to the login with a message', async () => {
    await goto('#/jobs');
    const token = await page.evaluate(() => sessionStorage.getItem('tessera.session'));
    assert.ok(token && token.startsWith('tss.'));
    // The session is revoked behind the page's back (as when it expires).
    await grid.api('POST', '/logout', {}, token);
    await visible('#login-notice');
    assert.match(await text('#login-notice'), /session has expired or was revoked/);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    // Logging in again lands on the page that was open.
    await login('alice', 'alice-password-1');
    await page.waitForURL(/#\/jobs$/);
  });

  test('the page logged no errors', () => {
    // Expected answers, logged by chromium as failed loads: the 400 of the tampered job, the
    // 401s of the wrong password and the revoked session, the 403s of the admin pages.
    const real = errors.filter((e) => !/^console: Failed to load resource: .*status of 40[013]/.test(e));
    assert.deepEqual(real, []);
  });
});
