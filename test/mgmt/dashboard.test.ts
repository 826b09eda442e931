/**
 * The dashboard in a real browser (Debian chromium driven by playwright-core)
 * against a live `pflex up --demo` cluster: unauthenticated requests are
 * refused, an admin logs in, every page renders real figures, a volume is
 * created, mapped, expanded, unmapped and deleted (bad input gets a clear
 * message), an SDS killed with SIGKILL shows DOWN and raises an alert that
 * is resolved from the page. A PNG of every page is saved (path printed).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { haveCommand, ROOT, tempDir } from '../helpers/proc.js';
import { up } from '../helpers/up.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = !existsSync(CHROMIUM) ? `${CHROMIUM} missing (apt-get install chromium; scripts/install-test-deps.sh does it as root)`
  : !haveCommand('qemu-io') ? 'qemu-io missing (qemu-utils)' : false;
const SHOTS = process.env.PFLEX_SCREENSHOT_DIR ?? join(ROOT, '.tap', 'screenshots', 'mgmt');
const waitMs = 30_000;
/** The page's document, for the predicates that run in the browser (the project's TS lib has no DOM). */
declare const document: { cookie: string; querySelectorAll(selector: string): ArrayLike<{ textContent: string | null }> };

/** qemu-io writes and reads on the demo volume until stopped, so the charts have figures. */
function ioLoop(nbdPort: number): { stop: () => Promise<void> } {
  let running = true;
  let current: ReturnType<typeof spawn> | undefined;
  const loop = (async () => {
    for (let i = 0; running && i < 200; i++) {
      current = spawn('qemu-io', ['-f', 'raw', `nbd://127.0.0.1:${nbdPort}/demo`, '-c', `write -P ${i % 250} ${(i % 8) * 4}M 4M`, '-c', `read ${(i % 8) * 4}M 4M`], { stdio: 'ignore' });
      await once(current, 'exit');
    }
  })();
  return {
    async stop() {
      running = false;
      current?.kill('SIGKILL');
      await loop;
    },
  };
}

t.test('the dashboard in headless chromium against pflex up', { skip }, async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  t.comment(`screenshots: ${SHOTS}`);
  const dataDir = join(tempDir(t, 'pflex-mgmt-'), 'data');
  const { line } = await up(t, dataDir, [], { PFLEX_MDM_DOWN_AFTER_MS: '6000', PFLEX_MDM_STALE_AFTER_MISSED_BEATS: '2' });
  const base = String(line.mgmtUrl).replace(/\/$/, '');
  const pids = line.pids as Record<string, number>;
  const password = readFileSync(join(dataDir, 'admin-password'), 'utf8').trim();
  t.match(base, /^http:\/\/127\.0\.0\.1:\d+$/, 'pflex up prints the dashboard URL');

  // Without a session: pages redirect to the login, the API and the live stream answer 401.
  const page0 = await fetch(`${base}/volumes`, { redirect: 'manual' });
  t.equal(page0.status, 303, 'a page without a session redirects');
  t.match(page0.headers.get('location'), /^\/login\?next=%2Fvolumes$/);
  for (const [method, path] of [['GET', '/api/mdm/volumes'], ['GET', '/api/events'], ['POST', '/api/mdm/volumes'], ['GET', '/api/session']] as const) {
    const r = await fetch(`${base}${path}`, { method, ...(method === 'POST' ? { headers: { 'content-type': 'application/json' }, body: '{}' } : {}) });
    t.equal(r.status, 401, `${method} ${path} without a session is refused`);
  }
  const forged = await fetch(`${base}/api/mdm/volumes`, { headers: { cookie: 'pflex_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } });
  t.equal(forged.status, 401, 'a forged session cookie is refused');

  const profile = mkdtempSync(join(tmpdir(), 'pflex-chromium-'));
  const ctx: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1400, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  t.teardown(async () => {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  });
  const page: Page = await ctx.newPage();
  page.setDefaultTimeout(waitMs);
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  // Log in: a wrong password gets a message, the right one lands on the page asked for.
  await page.goto(`${base}/volumes`);
  t.match(page.url(), /\/login\?next=%2Fvolumes$/, 'the browser is sent to the login page');
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', 'not-the-password');
  await page.click('button[type=submit]');
  t.equal(await page.textContent('.error'), 'Wrong user name or password.', 'a wrong password is refused with a clear message');
  await shot('login');
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/volumes`);
  const cookie = (await ctx.cookies()).find((c) => c.name === 'pflex_session');
  t.ok(cookie?.httpOnly && cookie.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');
  t.notOk(await page.evaluate(() => document.cookie.includes('pflex_session')), 'page scripts cannot read it');

  // Volumes: bad input first, then create, map, expand, unmap, delete.
  const create = async (name: string, size: string) => {
    await page.fill('#create-volume input[name=name]', name);
    await page.fill('#create-volume input[name=size]', size);
    await page.click('#create-volume button[type=submit]');
  };
  const createError = page.locator('#create-volume ~ .error');
  await page.waitForSelector('#create-volume select[name=pool] option', { state: 'attached' });
  await create('vol2', '12X');
  await t.resolveMatch(createError.textContent(), /Size "12X" is not a size/, 'a malformed size is explained');
  await create('demo', '128M');
  await createError.filter({ hasText: 'already exists' }).waitFor();
  t.match(await createError.textContent(), 'Could not create the volume: volume "demo" already exists', 'a duplicate name: the MDM\'s message');
  await create('vol2', '1000');
  await createError.filter({ hasText: 'multiple of 4096' }).waitFor();
  t.pass('a size that is not a multiple of 4 KiB: the MDM\'s message');
  await create('bad name!', '1G');
  t.match(await createError.textContent(), /Name: 1-64 letters/, 'a bad name is explained');
  await create('vol2', '128M');
  await page.waitForSelector('tr[data-name=vol2]');
  t.match(await page.textContent('#create-volume ~ .notice'), /Volume vol2 created \(128 MiB, thin\)/);

  await page.click('tr[data-name=vol2] button');
  const manageMsg = page.locator('#manage > .error');
  await page.selectOption('#map-volume select[name=sdc]', { label: 'sdc1 (ACTIVE)' });
  await page.click('#map-volume button');
  await page.locator('tr[data-name=vol2]', { hasText: 'sdc1' }).waitFor();
  t.pass('vol2 is mapped to sdc1');
  await page.fill('#expand-volume input', '64M');
  await page.click('#expand-volume button');
  await t.resolveMatch(manageMsg.textContent(), /must be larger than the current 128 MiB/, 'shrinking through "expand" is refused with a message');
  await page.fill('#expand-volume input', '256M');
  await page.click('#expand-volume button');
  await page.locator('tr[data-name=vol2]', { hasText: '256 MiB' }).waitFor();
  t.pass('vol2 expanded to 256 MiB');
  await shot('volumes');
  await page.click('#unmap-volume button');
  await page.locator('tr[data-name=vol2]', { hasText: 'not mapped' }).waitFor();
  t.pass('vol2 unmapped');
  page.once('dialog', (d) => void d.accept());
  await page.click('#delete-volume button');
  await page.waitForSelector('tr[data-name=vol2]', { state: 'detached' });
  t.pass('vol2 deleted');

  // Overview: live figures arrive over SSE while qemu-io drives the demo volume.
  const io = ioLoop(line.nbdPort as number);
  await page.goto(`${base}/`);
  await page.waitForFunction(() => {
    const cells = Array.from(document.querySelectorAll('td')).map((c) => c.textContent ?? '');
    const i = cells.indexOf('demo');
    return i >= 0 && /[1-9]/.test(cells[i + 2] ?? '') && document.querySelectorAll('.uplot').length === 6;
  }, undefined, { timeout: 60_000 });
  t.pass('the overview shows write IOPS of the demo volume and six live charts');
  await page.waitForSelector('.card .badge');
  t.match(await page.textContent('.card'), /Cluster(OK|DEGRADED)/i, 'the cluster state card');
  await page.waitForTimeout(4000);
  await shot('overview');
  await io.stop();

  await page.goto(`${base}/topology`);
  await page.waitForSelector('li[data-sds=sds3]');
  const tree = await page.textContent('#content');
  for (const x of ['pd1', 'pool1', 'sds1', 'sds2', 'sds3', 'sdc1', 'demo']) t.match(tree, x, `the topology shows ${x}`);
  await shot('topology');

  await page.goto(`${base}/sdcs`);
  await page.waitForSelector('tr[data-name=sdc1][data-state=ACTIVE]');
  t.match(await page.textContent('tr[data-name=sdc1] .age'), /s ago/, 'the SDC heartbeat age is shown');
  await shot('sdc');

  // An SDS dies: the SDS page shows it DOWN, an alert is raised and resolved from the alerts page.
  await page.goto(`${base}/sds`);
  await page.waitForSelector('tr[data-name=sds1][data-state=ACTIVE]');
  process.kill(pids.sds1!, 'SIGKILL');
  await page.waitForSelector('tr[data-name=sds1][data-state=DOWN]', { timeout: 60_000 });
  t.pass('sds1 shows DOWN after SIGKILL');
  t.match(await page.textContent('tr[data-name=sds1] .age'), /s ago/);
  await shot('sds');

  await page.goto(`${base}/alerts`);
  const alertRow = 'tr[data-source="sds:sds1"][data-state=open]';
  await page.waitForSelector(alertRow);
  t.match(await page.textContent(`${alertRow} td:first-child`), 'ERROR', 'an ERROR alert for sds1');
  await shot('alerts');
  await page.click(`${alertRow} button`);
  await page.waitForSelector(alertRow, { state: 'detached' });
  t.match(await page.textContent('#alert-filters ~ .notice'), /resolved/, 'resolved from the page');
  await page.selectOption('#alert-filters select[name=state]', 'resolved');
  await page.waitForSelector('tr[data-source="sds:sds1"][data-state=resolved]');
  t.pass('and listed in the history');

  await page.goto(`${base}/rebuild`);
  await page.waitForSelector('text=Recent jobs');
  t.match(await page.textContent('#content'), /pool1/, 'the rebuild page lists the pool');
  await page.waitForTimeout(1500);
  await shot('rebuild');

  await page.goto(`${base}/audit`);
  await page.waitForSelector('td:text("POST /volumes")');
  const audit = await page.textContent('#content');
  t.match(audit, /DELETE \/volumes\/:id/, 'the audit log shows the deletion made from the dashboard');
  t.match(audit, /PFLEX_ERR_CONFLICT/, 'and the refused duplicate');
  t.match(audit, /component/, 'and what the components did (SDS joining PGs)');
  await page.fill('#audit-filters input[name=actor]', 'admin');
  await page.click('#audit-filters button');
  await page.waitForFunction(() => {
    const actors = Array.from(document.querySelectorAll('#content tbody tr td:nth-child(2)'), (td) => td.textContent);
    return actors.length > 0 && actors.every((a) => a === 'admin');
  });
  const filtered = await page.textContent('#content');
  t.match(filtered, /DELETE \/volumes\/:id/, 'filtered by actor admin: the deletion is listed');
  t.notMatch(filtered, /component/, 'and no component entry');
  await shot('audit');

  // Log out: the session is gone.
  await page.click('header form button');
  await page.waitForURL(/\/login$/);
  await page.goto(`${base}/sds`);
  t.match(page.url(), /\/login\?next=%2Fsds$/, 'after logout pages need a login again');
  t.same(pageErrors, [], 'no script error on any page');
});
