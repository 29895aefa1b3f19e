// Users' programs in the dashboard (issue 11), in Debian's chromium against a real server and a
// real node that runs programs (tessera-client run --programs, in bubblewrap): a user without
// the programs grant is told so in words; an admin allows it on the Users page; the user drops a
// program and a data file on the "Run a program" page and sees its stdout, stderr and exit
// status on the job page, downloads the raw stdout, sees a failing program's status in words,
// and a split job's units and summed result. Screenshots at 1280 and 375 px.
//
//   TESSERA_BIN_DIR=build node --test tests/browser/programs.test.mjs
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { ADMIN_PASSWORD, Grid, run, until } from './grid.mjs';

const BIN = process.env.TESSERA_BIN_DIR;
if (!BIN) throw new Error('set TESSERA_BIN_DIR to the CMake build dir');
const ARTIFACTS = path.join(BIN, 'tests', 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// What the tests need: a server with the program kind (all of them), and a node that runs
// programs (those that run one): a client with --programs and bubblewrap. Why not, or null.
async function noServer(grid) {
  const kinds = await grid.api('GET', '/kernels').catch(() => null);
  return kinds && kinds.kernels.some((k) => k.name === 'program') ? null : 'the server has no program kind';
}
async function noNode(grid) {
  const help = await run(grid.bin('tessera-client'), ['run', '--help']);
  if (!/--programs/.test(help.out)) return 'tessera-client run has no --programs';
  if (!fs.existsSync('/usr/bin/bwrap')) return '/usr/bin/bwrap is missing';
  return null;
}

const file = (name, text) => ({ name, mimeType: 'application/octet-stream', buffer: Buffer.from(text) });

describe('programs in the dashboard', () => {
  let grid, context, page, skip = null, skipRun = null;
  const errors = [];

  before(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    grid = new Grid(BIN);
    await grid.startServer();
    skip = await noServer(grid);
    if (skip) return;
    skipRun = await noNode(grid);
    if (!skipRun) await grid.enrollAndRun('program-node', await grid.enrollCommand(1), ['--programs', '--slots', '4']);
    await grid.api('POST', '/users', { username: 'carol', password: 'carol-password-1', role: 'user' });
    const userDir = fs.mkdtempSync(path.join(grid.dir, 'chromium-'));
    context = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--ignore-certificate-errors'],
      ignoreHTTPSErrors: true,
      acceptDownloads: true,
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
        fs.writeFileSync(path.join(ARTIFACTS, 'browser-programs-grid.log'), grid.logs());
        grid.remove();
      }
    }
  });

  const text = async (sel) => (await page.locator(sel).first().textContent()).trim();
  const visible = (sel) => page.locator(sel).first().waitFor({ state: 'visible' });
  const goto = (hash) => page.evaluate((h) => { location.hash = h; }, hash);
  const shot = async (name) => {
    await page.evaluate(() => document.getElementById('toasts').replaceChildren());
    await page.screenshot({ path: path.join(ARTIFACTS, `programs-${name}-${page.viewportSize().width}.png`), fullPage: true });
  };
  async function login(user, password) {
    await visible('#login-user');
    await page.fill('#login-user', user);
    await page.fill('#login-password', password);
    await page.click('form.login button[type=submit]');
    await visible('#stat-nodes');
  }
  async function logout() {
    await page.click('#logout');
    await visible('#login-user');
  }
  // Fills the run page and submits; resolves to the new job's id.
  async function runProgram(files, { np, args, split } = {}) {
    // A fresh form: files chosen earlier on the page stay chosen while it is open.
    await goto('#/jobs');
    await goto('#/run');
    await visible('#run-files');
    await page.setInputFiles('#run-files', files);
    if (np) await page.fill('#run-np', String(np));
    if (args) await page.fill('#run-args', args.join('\n'));
    if (split) {
      await page.check('#run-split-on');
      await page.fill('#run-space', String(split.space));
      await page.fill('#run-units', String(split.units));
      await page.selectOption('#run-combine', split.combine);
    }
    await page.click('#run-button');
    await page.waitForURL(/#\/jobs\/\d+$/, { timeout: 30000 });
    return Number(page.url().match(/#\/jobs\/(\d+)$/)[1]);
  }
  const finished = (id) => until(`job ${id} finished`, async () => {
    const j = await grid.api('GET', `/jobs/${id}`);
    return ['done', 'failed', 'cancelled'].includes(j.state) && j;
  }, 120000, 250);

  test('a user without the programs grant is told so, in words', async (t) => {
    if (skip) return t.skip(skip);
    await page.goto(`${grid.url}/`);
    await login('carol', 'carol-password-1');
    await goto('#/run');
    await visible('#run-grant');
    assert.match(await text('#run-grant'), /may not run programs/);
    await page.setInputFiles('#run-files', [file('hello.py', 'print("hi")\n')]);
    await page.click('#run-button');
    await visible('#run-error');
    const words = await text('#run-error');
    assert.match(words, /Forbidden \(403\)/);
    assert.match(words, /user 'carol' may not run programs/);
    assert.match(words, /tessera users grant carol programs/);
    assert.match(page.url(), /#\/run$/);
    assert.equal((await grid.api('GET', '/jobs')).jobs.length, 0);
    await logout();
  });

  test('an admin allows programs on the Users page', async (t) => {
    if (skip) return t.skip(skip);
    await login('admin', ADMIN_PASSWORD);
    await goto('#/users');
    const row = page.locator('.users-table tr[data-username="carol"]');
    await row.waitFor({ state: 'visible' });
    assert.equal(await row.getAttribute('data-programs'), 'no');
    await row.locator('button.grant').click();
    await until('carol allowed', async () => (await row.getAttribute('data-programs')) === 'yes');
    const carol = (await grid.api('GET', '/users')).users.find((u) => u.username === 'carol');
    assert.deepEqual(carol.grants, ['programs']);
    await shot('users');
    await logout();
  });

  let helloJob;
  test('the user runs a program with a data file and sees its stdout, stderr and exit status', async (t) => {
    if (skip || skipRun) return t.skip(skip || skipRun);
    await login('carol', 'carol-password-1');
    // Checked in the page before anything is sent.
    await goto('#/run');
    await visible('#run-files');
    await page.setInputFiles('#run-files', [file('notes.txt', 'x')]);
    await page.click('#run-button');
    await visible('#run-files-error');
    assert.match(await text('#run-files-error'), /None of these is a program/);

    const program = [
      'import sys',
      'from mpi4py import MPI',
      'c = MPI.COMM_WORLD',
      'total = c.reduce(c.Get_rank() + 1, root=0)',
      'if c.Get_rank() == 0:',
      '    data = open("numbers.txt").read().split()',
      '    print("ranks", c.Get_size(), "sum", total, "data", sum(map(int, data)), "args", " ".join(sys.argv[1:]))',
      '    print("a note", file=sys.stderr)',
    ].join('\n');
    helloJob = await runProgram([file('ranks.py', `${program}\n`), file('numbers.txt', '1 2 3\n')],
      { np: 2, args: ['x', 'two words'] });
    const job = await finished(helloJob);
    assert.equal(job.state, 'done', JSON.stringify(job));
    const expected = 'ranks 2 sum 3 data 6 args x two words';
    await until('stdout on the page', async () => (await text('#program-stdout')) === expected);
    assert.equal(await text('#program-stderr'), 'a note');
    assert.equal(await text('#program-exit'), '0');
    assert.match(await text('#program-outcome'), /exited normally/);
    assert.equal(await text('.page-head .badge'), 'done');
    assert.match(await text('#program-facts'), /ranks\.py/);
    assert.match(await text('#program-facts'), /Other files\s*numbers\.txt\s*Split/);
    // The raw stdout, downloaded with the session's token.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#program-download-output')]);
    const saved = path.join(grid.dir, 'stdout.txt');
    await download.saveAs(saved);
    assert.equal(fs.readFileSync(saved, 'utf8'), `${expected}\n`);
    await shot('job');
  });

  test('a failing program shows its exit status and stderr in words', async (t) => {
    if (skip || skipRun) return t.skip(skip || skipRun);
    const id = await runProgram([file('fail.sh', 'echo partial\necho "it broke" >&2\nexit 3\n')]);
    const job = await finished(id);
    assert.equal(job.state, 'failed');
    await until('the exit status', async () => (await text('#program-exit')) === '3');
    assert.match(await text('#program-outcome'), /exited with status 3/);
    assert.equal(await text('#program-stdout'), 'partial');
    assert.equal(await text('#program-stderr'), 'it broke');
    await visible('#job-error');
    assert.match(await text('#job-error'), /failed: unit 0: exit status 3/);
  });

  test('a split program: each unit and the summed result', async (t) => {
    if (skip || skipRun) return t.skip(skip || skipRun);
    const id = await runProgram([file('count.sh', 'echo "$TESSERA_UNIT_COUNT"\n')],
      { split: { space: 100, units: 4, combine: 'sum' } });
    const job = await finished(id);
    assert.equal(job.state, 'done', JSON.stringify(job));
    assert.equal(job.result.value, 100);
    await until('the combined result', async () => /sum\) over 4 units: 100/.test(await text('#program-combined')));
    await until('4 unit rows', async () => (await page.locator('#program-units tbody tr').count()) === 4);
    assert.equal(await page.locator('#program-units tr[data-status="ok"]').count(), 4);
    await shot('split');
  });

  test('the run page and a program job fit a phone (375 px)', async (t) => {
    if (skip) return t.skip(skip);
    if (await page.locator('#who').isHidden()) await login('carol', 'carol-password-1');
    await page.setViewportSize({ width: 375, height: 812 });
    const pages = [['#/run', 'run', '#run-files']];
    if (helloJob) pages.push([`#/jobs/${helloJob}`, 'job', '#program-stdout']);
    for (const [hash, name, sel] of pages) {
      await goto(hash);
      await visible(sel);
      await page.waitForTimeout(300);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${name} is ${overflow} px wider than the phone`);
      await shot(name);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  test('the pages logged no errors', (t) => {
    if (skip) return t.skip(skip);
    // Expected: the 403 of the upload without the grant.
    const real = errors.filter((e) => !/^console: Failed to load resource: .*status of 403/.test(e));
    assert.deepEqual(real, []);
  });
});
