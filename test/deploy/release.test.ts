/**
 * The release archive the Ansible common role ships (scripts/pack-release.sh)
 * runs on its own: unpacked in an empty directory, its MDM starts (compiled
 * better-sqlite3 included), its MGMT serves the dashboard's static files and
 * logs in through that MDM, and the CLI answers. A file read at run time but
 * missing from the archive fails here in seconds instead of as a restart loop
 * deep in the vagrant test. Packing twice gives the same bytes (Ansible's
 * "changed=0" on a second run depends on it).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ADMIN_PASSWORD } from '../helpers/mdm.js';
import { ROOT, spawnPflex, tempDir } from '../helpers/proc.js';

const dir = tempDir(t, 'pflex-release-');
const archive = join(dir, 'pflex.tar.gz');
const rel = join(dir, 'rel');
const pack = (): string => execFileSync('bash', [join(ROOT, 'scripts/pack-release.sh'), archive], { cwd: ROOT, encoding: 'utf8' }).trim();

t.test('pack twice: the same bytes', async (t) => {
  t.match(pack(), /^written [0-9a-f]{64}$/, 'first pack writes the archive');
  t.match(pack(), /^unchanged [0-9a-f]{64}$/, 'second pack of the same build is unchanged');
  mkdirSync(rel);
  execFileSync('tar', ['-xzf', archive, '-C', rel]);
  const listing = execFileSync('tar', ['-tzf', archive], { encoding: 'utf8', maxBuffer: 64 << 20 }).split('\n');
  t.ok(listing.includes('src/mgmt/public/app.js'), 'the dashboard front end is in the archive');
  t.notOk(listing.some((f) => f.startsWith('dist/test/') || f.startsWith('node_modules/tap/')), 'no tests and no dev dependencies');
});

t.test('MDM, MGMT and the CLI run from the unpacked archive', async (t) => {
  const bin = join(rel, 'bin/pflex.js');
  const help = execFileSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
  t.match(help, /pflex mgmt /, 'the CLI lists the mgmt command');

  const dataDir = join(dir, 'mdm');
  execFileSync(process.execPath, [bin, 'mdm', 'init', '--data-dir', dataDir, '--admin-password', ADMIN_PASSWORD], { stdio: 'pipe' });
  const mdm = spawnPflex(t, ['mdm', 'start', '--data-dir', dataDir, '--port', '0'], {}, bin);
  const mdmPort = (await mdm.waitForLog((l) => l.msg === 'mdm listening', 120_000)).port;

  const mgmt = spawnPflex(t, ['mgmt', 'start', '--mdm', `http://127.0.0.1:${String(mdmPort)}`, '--host', '127.0.0.1', '--port', '0'], {}, bin);
  const base = `http://127.0.0.1:${String((await mgmt.waitForLog((l) => l.msg === 'mgmt listening', 60_000)).port)}`;

  for (const path of ['/static/app.js', '/static/style.css', '/static/vendor/uPlot.esm.js']) {
    const r = await fetch(base + path);
    t.equal(r.status, 200, `GET ${path}`);
    t.ok((await r.text()).length > 100, `${path} has content`);
  }
  const bad = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ username: 'admin', password: 'wrong' }) });
  t.not(bad.status, 303, 'a wrong password is refused');
  const login = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ username: 'admin', password: ADMIN_PASSWORD, next: '/volumes' }) });
  t.equal(login.status, 303, 'admin logs in to the dashboard through the MDM');
  const cookie = login.headers.get('set-cookie')?.split(';')[0] ?? '';
  const page = await fetch(`${base}/volumes`, { headers: { cookie } });
  t.equal(page.status, 200, 'the volumes page is served to the session');
  t.match(await page.text(), /<html/i, 'an HTML page');
});
