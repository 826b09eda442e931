import t from 'tap';
import { statSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readClusterKey } from '../../src/shared/component-auth.js';
import { MdmClient, componentAuth, type Volume } from '../../src/shared/mdm-client.js';
import { freePort, tempDir } from '../helpers/proc.js';
import { ADMIN_PASSWORD, runPflex, startMdm } from './helpers.js';

const mdm = await startMdm(t);
const configDir = join(tempDir(t, 'pflex-cli-config-'), 'pflex');
const env = { PFLEX_CONFIG_DIR: configDir, PFLEX_MDM_URL: mdm.url, PFLEX_PASSWORD: '' };
const pflex = (...args: string[]) => runPflex(args, env);
const json = <T>(text: string): T => JSON.parse(text) as T;

t.test('before login: commands are refused with exit 3 and a clear message', async (t) => {
  const r = await pflex('pd', 'list');
  t.equal(r.code, 3);
  t.match(r.stderr, /bearer token is required.*\[PFLEX_ERR_UNAUTHENTICATED\]\n\(log in first: pflex login/);
  const bad = await pflex('login', '--user', 'admin', '--password', 'wrong-password');
  t.equal(bad.code, 3, 'wrong password: exit 3');
  t.match(bad.stderr, /wrong user name or password/);
  t.notOk(existsSync(join(configDir, 'credentials.json')), 'no credentials saved');
});

t.test('login keeps the token in the config dir, readable by the user only', async (t) => {
  const r = await runPflex(['login', '--user', 'admin', '--password-stdin'], env, `${ADMIN_PASSWORD}\n`);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /logged in to .* as admin \(admin\)/);
  const file = join(configDir, 'credentials.json');
  t.equal(statSync(file).mode & 0o777, 0o600, 'credentials file is 0600');
  t.equal(statSync(configDir).mode & 0o777, 0o700, 'config dir is 0700');
  const creds = json<{ token: string; mdmUrl: string; user: string }>(readFileSync(file, 'utf8'));
  t.equal(creds.mdmUrl, mdm.url);
  t.equal(creds.user, 'admin');
  t.ok(creds.token.length > 20, 'token saved');
  const who = await pflex('whoami', '--json');
  t.equal(who.code, 0, who.stderr);
  t.match(json(who.stdout), { sub: 'admin', role: 'admin' });
});

t.test('pd, pool, volume: create, list as table and JSON, show, rename, expand, delete', async (t) => {
  let r = await pflex('pd', 'create', 'pd1');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /name:\s+pd1/);
  r = await pflex('pool', 'create', 'pool1', '--pd', 'pd1', '--rf', '2', '--pg-count', '64', '--json');
  t.equal(r.code, 0, r.stderr);
  t.match(json(r.stdout), { name: 'pool1', replicationFactor: 2, pgCount: 64 });
  r = await pflex('volume', 'create', 'vol1', '--pool', 'pool1', '--size', '10G');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /size:\s+10\.0 GiB \(10737418240 bytes\)/);

  r = await pflex('volume', 'list');
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.match(lines[0], /^\s*ID\s+NAME\s+SIZE\s+TYPE\s+POOL/, 'table header');
  t.match(lines[1], /^\s*\d+\s+vol1\s+10\.0 GiB\s+thin\s+\d+/, 'one row per volume');
  r = await pflex('volume', 'list', '--json');
  const vols = json<Volume[]>(r.stdout);
  t.equal(vols.length, 1);
  t.match(vols[0], { name: 'vol1', sizeBytes: 10 * 2 ** 30, provisioning: 'thin' });

  r = await pflex('pool', 'list');
  t.match(r.stdout, /^\s*1\s+pool1\s+1\s+2\s+64\s/m);

  r = await pflex('volume', 'rename', 'vol1', 'data1');
  t.equal(r.code, 0, r.stderr);
  r = await pflex('volume', 'expand', 'data1', '+6G', '--json');
  t.equal(r.code, 0, r.stderr);
  t.equal(json<Volume>(r.stdout).sizeBytes, 16 * 2 ** 30, 'expanded by 6 GiB');
  r = await pflex('volume', 'expand', 'data1', '1G');
  t.equal(r.code, 2, 'expand refuses to shrink');
  t.match(r.stderr, /only grows/);

  r = await pflex('volume', 'create', 'big', '--pool', 'pool1', '--size', '1G', '--thick');
  t.equal(r.code, 5, 'a thick volume needs capacity the pool (without SDSs) does not have');
  t.match(r.stderr, /PFLEX_ERR_CAPACITY/);
  r = await pflex('volume', 'create', 'scratch', '--pool', 'pool1', '--size', '1G', '--json');
  t.equal(r.code, 0, r.stderr);
  r = await pflex('volume', 'delete', 'scratch');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /deleted volume scratch/);
});

t.test('map and unmap a volume to an SDC that registered itself', async (t) => {
  const key = readClusterKey(join(mdm.dataDir, 'cluster.key'));
  const sdcClient = new MdmClient({ url: mdm.url, componentAuth: componentAuth('sdc', 'guid-host-a', key) });
  const sdc = await sdcClient.registerSdc({ guid: 'guid-host-a', name: 'host-a', address: '127.0.0.1' });

  let r = await pflex('sdc', 'list');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /host-a\s+guid-host-a/);
  r = await pflex('volume', 'map', 'data1', '--sdc', 'host-a');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /mapped volume data1 to SDC host-a \(read-write\)/);
  r = await pflex('volume', 'show', 'data1', '--json');
  const vol = json<Volume>(r.stdout);
  t.match(vol.mappings, [{ sdcId: sdc.id, accessMode: 'readWrite' }]);
  const grant = await sdcClient.issueIoToken(sdc.id, vol.id);
  t.equal(grant.rights, 'rw', 'the mapped SDC gets an IO token');
  t.equal(grant.bytes.length, 34, 'binary token');

  r = await pflex('volume', 'map', 'data1', '--sdc', 'host-a');
  t.not(r.code, 0, 'mapping twice is refused');
  t.match(r.stderr, /\[PFLEX_ERR_/);

  // Two SDSs join pool1 (RF 2): the PG map becomes ready and is balanced between them.
  for (const name of ['sds-1', 'sds-2']) {
    const sdsClient = new MdmClient({ url: mdm.url, componentAuth: componentAuth('sds', name, key) });
    await sdsClient.registerSds({ name, protectionDomainName: 'pd1', storagePoolName: 'pool1', address: '127.0.0.1', dataPort: 9700, capacityBytes: 2 ** 40 });
  }
  const [summary, perPg] = await Promise.all([pflex('pool', 'pgmap', 'pool1', '--summary'), pflex('pool', 'pgmap', 'pool1', '--json')]);
  t.equal(summary.code, 0, summary.stderr);
  t.match(summary.stdout, /^sds-1\s+\d+\s+\w+\s+64\s+32$/m, 'every PG on both SDSs, half the primaries each');
  t.match(summary.stdout, /^sds-2\s+\d+\s+\w+\s+64\s+32$/m);
  const pgMap = json<{ ready: boolean; pgs: Array<{ members: number[] }> }>(perPg.stdout);
  t.equal(pgMap.ready, true);
  t.equal(pgMap.pgs.length, 64);

  r = await pflex('volume', 'unmap', 'data1', '--sdc', 'guid-host-a');
  t.equal(r.code, 0, r.stderr);
  r = await pflex('volume', 'show', 'data1', '--json');
  t.same(json<Volume>(r.stdout).mappings, [], 'unmapped');
  await t.rejects(sdcClient.issueIoToken(sdc.id, vol.id), { code: 'PFLEX_ERR_FORBIDDEN' }, 'no token after unmap');
});

t.test('errors: clear message on stderr and the exit code of the error table', async (t) => {
  let r = await pflex('volume', 'show', 'nope');
  t.equal(r.code, 4);
  t.match(r.stderr, /^pflex: no volume named "nope" \[PFLEX_ERR_NOT_FOUND\]/);
  r = await pflex('pd', 'create', 'bad name');
  t.equal(r.code, 2);
  t.match(r.stderr, /PFLEX_ERR_BAD_REQUEST/);
  r = await pflex('pd', 'create', 'pd1');
  t.equal(r.code, 5, 'duplicate name is a conflict');
  t.match(r.stderr, /PFLEX_ERR_CONFLICT/);
  r = await pflex('volume', 'create', 'v9', '--pool', 'pool1', '--size', 'lots');
  t.equal(r.code, 2);
  t.match(r.stderr, /not a size: "lots"/);
  const port = await freePort();
  r = await runPflex(['pd', 'list', '--mdm', `http://127.0.0.1:${port}`], env);
  t.equal(r.code, 6, 'MDM unreachable: exit 6');
  t.match(r.stderr, /cannot reach the MDM at http:\/\/127\.0\.0\.1:\d+ .*\[PFLEX_ERR_UNAVAILABLE\]/);
  r = await pflex('volume');
  t.not(r.code, 0, 'a noun without a verb is a usage error');
  t.match(r.stderr, /name a volume command/);
});

t.test('health, alerts and audit', async (t) => {
  let r = await pflex('health', '--json');
  t.equal(r.code, 0, r.stderr);
  t.match(json(r.stdout), { status: /OK|DEGRADED|ERROR/, sds: { total: 2 }, storagePools: [{ name: 'pool1', pgMapReady: true }] });

  r = await pflex('alert', 'raise', '--severity', 'WARNING', '--message', 'disk tray 3 is loose', '--json');
  t.equal(r.code, 0, r.stderr);
  const alert = json<{ id: number }>(r.stdout);
  r = await pflex('alert', 'list');
  t.match(r.stdout, /WARNING\s+open\s+manual\s+cli/);
  r = await pflex('alert', 'resolve', String(alert.id));
  t.equal(r.code, 0, r.stderr);
  r = await pflex('alert', 'list', '--state', 'resolved', '--json');
  t.match(json(r.stdout), [{ id: alert.id, state: 'resolved', resolvedBy: 'admin' }]);

  r = await pflex('audit', 'list', '--json', '--limit', '200');
  t.equal(r.code, 0, r.stderr);
  const entries = json<Array<{ action: string; result: string; actor: string }>>(r.stdout);
  t.ok(entries.some((e) => e.action === 'POST /volumes' && e.result === 'success' && e.actor === 'admin'), 'volume creation audited');
  t.ok(entries.some((e) => e.result === 'failure'), 'failures audited');
});

t.test('users: a monitor can read but not change (exit 3)', async (t) => {
  let r = await pflex('user', 'create', 'watcher', '--role', 'monitor', '--password', 'watcher-password');
  t.equal(r.code, 0, r.stderr);
  r = await pflex('user', 'list', '--json');
  t.match(json(r.stdout), [{ name: 'admin', role: 'admin' }, { name: 'watcher', role: 'monitor' }]);
  const monitorEnv = { ...env, PFLEX_CONFIG_DIR: join(configDir, '..', 'monitor') };
  r = await runPflex(['login', '--user', 'watcher', '--password', 'watcher-password'], monitorEnv);
  t.equal(r.code, 0, r.stderr);
  r = await runPflex(['pd', 'create', 'pd-by-monitor'], monitorEnv);
  t.equal(r.code, 3, 'monitor may not create');
  t.match(r.stderr, /PFLEX_ERR_FORBIDDEN/);
});

t.test('logout forgets the token', async (t) => {
  const r = await pflex('logout');
  t.equal(r.code, 0);
  t.notOk(existsSync(join(configDir, 'credentials.json')));
  const after = await pflex('pd', 'list');
  t.equal(after.code, 3);
});
