import t from 'tap';
import { runPflex, type CliResult } from '../cli/helpers.js';
import { fetchJson } from '../helpers/http.js';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnPflex, tempDir } from '../helpers/proc.js';

const init = (args: string[]): Promise<CliResult> => runPflex(['mdm', 'init', ...args]);
const json = fetchJson;

t.test('pflex mdm init creates a cluster once; pflex mdm start serves it and keeps state across restarts', async (t) => {
  const dir = join(tempDir(t), 'data');
  const first = await init(['--data-dir', dir, '--admin-password', 'first-password']);
  t.equal(first.code, 0, first.stderr);
  t.equal(statSync(join(dir, 'cluster.key')).mode & 0o777, 0o600, 'cluster key is 0600');
  t.match(readFileSync(join(dir, 'cluster.key'), 'utf8'), /^[0-9a-f]{64}\n$/);
  const key = readFileSync(join(dir, 'cluster.key'), 'utf8');

  const again = await init(['--data-dir', dir, '--admin-password', 'other-password']);
  t.equal(again.code, 5, 'a second init is refused (conflict exit code)');
  t.match(again.stderr, /--force/);
  t.equal(readFileSync(join(dir, 'cluster.key'), 'utf8'), key, 'the cluster key is untouched');
  t.equal((await init(['--data-dir', dir])).code !== 0, true, 'the admin password is required');

  const start = (): ReturnType<typeof spawnPflex> => spawnPflex(t, ['mdm', 'start', '--data-dir', dir, '--port', '0', '--host', '127.0.0.1']);
  let mdm = start();
  let line = await mdm.waitForLog((l) => l.msg === 'mdm listening');
  t.type(line.port, 'number');
  t.ok((line.port as number) > 0, 'the bound port is logged');
  let base = `http://127.0.0.1:${line.port as number}`;
  t.same((await json(`${base}/health/live`)).body, { ok: true });
  t.equal((await json(`${base}/health`)).status, 401);
  const login = await json(`${base}/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: 'first-password' }),
  });
  t.equal(login.status, 200);
  const auth = { authorization: `Bearer ${login.body.token as string}`, 'content-type': 'application/json' };
  t.equal((await json(`${base}/protection-domains`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'pd-cli' }) })).status, 201);
  t.equal(await mdm.stop(), 0, 'SIGTERM exits cleanly');

  mdm = start();
  line = await mdm.waitForLog((l) => l.msg === 'mdm listening');
  base = `http://127.0.0.1:${line.port as number}`;
  const pds = await json(`${base}/protection-domains`, { headers: { authorization: auth.authorization } });
  t.same(pds.body.map((p: { name: string }) => p.name), ['pd-cli'], 'state and the token signing key survive the restart');
  await mdm.stop();

  const forced = await init(['--data-dir', dir, '--admin-password', 'second-password', '--force']);
  t.equal(forced.code, 0, forced.stderr);
  t.not(readFileSync(join(dir, 'cluster.key'), 'utf8'), key, '--force makes a new cluster');
});

t.test('pflex mdm start without a cluster fails with a clear message', async (t) => {
  const dir = tempDir(t);
  const mdm = spawnPflex(t, ['mdm', 'start', '--data-dir', dir, '--port', '0']);
  const code = await new Promise<number | null>((resolve) => mdm.child.on('exit', resolve));
  t.equal(code, 4);
  t.match(mdm.stderr.join('\n'), /pflex mdm init/);
});
