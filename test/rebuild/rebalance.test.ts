/**
 * Rebalance, drain and a returning SDS, on real processes: a fourth SDS
 * takes PGs (copied before it serves), `pflex sds remove` drains it and then
 * removes it, and an SDS killed, evicted and restarted on the same storage
 * root never serves its stale copies (they are dropped; a PG coming back to
 * it is copied whole first).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { PFLEX_BIN, tempDir } from '../helpers/proc.js';
import { Router, startSdsProc, waitForMapEpoch, type SdsProc } from '../sds/cluster.js';
import { spawnPflex } from '../helpers/proc.js';
import { ADMIN_PASSWORD, Model, pgDirs, placement, startFastMdm, verifyReads, waitFor, whole, writeChecked, type Job } from './cluster.js';

const run = promisify(execFile);
const KiB = 1024;

t.test('add an SDS: rebalance; pflex sds remove: drain then removal; a returning SDS serves nothing stale', async (t) => {
  const mdm = await startFastMdm(t);
  const pd = await mdm.admin.createPd('pd1');
  const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 16, chunkBytes: 256 * KiB });
  const sds = await Promise.all(['sds1', 'sds2', 'sds3'].map((n) => startSdsProc(t, mdm, n)));
  await waitForMapEpoch(mdm, pool.id, sds, 60_000);
  const vol = await mdm.admin.createVolume({ name: 'v1', storagePoolId: pool.id, sizeBytes: 64 * 256 * KiB });
  const r = new Router(mdm, pool.id, vol.id, vol.volumeTreeId);
  t.teardown(() => r.close());
  await r.refresh();
  const m = new Model(256 * KiB);
  for (let c = 0; c < 40; c++) await writeChecked(r, m, c, 4096 * (c % 5), c % 2 === 0 ? 256 * KiB - 4096 * (c % 5) : 20 * KiB);

  // Rebalance: sds4 joins and gets PGs, each copied before it is a member.
  const sds4 = await startSdsProc(t, mdm, 'sds4');
  const all = [...sds, sds4];
  let map = await waitFor(mdm, pool.id, (mp, st) => whole(2)(mp, st) && mp.pgs.filter((p) => p.members.includes(sds4.id)).length >= 6, 90_000, 'rebalance onto sds4');
  const onNew = map.pgs.filter((p) => p.members.includes(sds4.id)).length;
  t.ok(onNew >= 6, `sds4 holds ${onNew} of 32 PG copies after rebalance`);
  await waitForMapEpoch(mdm, pool.id, all, 30_000);
  await r.refresh();
  t.same(await verifyReads(r, m), [], 'data intact after rebalance');
  let wrong = [...placement(all, map, r, m, vol.volumeTreeId)].filter(([, e]) => e.good.length !== 2 || e.bad.length > 0);
  t.same(wrong, [], 'every chunk on exactly two SDSs after rebalance (moved copies dropped)');
  const jobs = await mdm.admin.request<Job[]>('GET', '/rebuild/jobs', { query: { limit: 1000 } });
  t.ok(jobs.some((j) => j.kind === 'rebalance' && j.state === 'done'), 'rebalance copies recorded');

  // Drain: pflex sds remove waits until sds4 holds nothing and is gone.
  const configDir = tempDir(t, 'pflex-rebalance-cli-');
  const env = { ...process.env, PFLEX_CONFIG_DIR: configDir, PFLEX_MDM_URL: mdm.url };
  await run(process.execPath, [PFLEX_BIN, 'login', '--user', 'admin', '--password', ADMIN_PASSWORD], { env });
  const removed = await run(process.execPath, [PFLEX_BIN, 'sds', 'remove', 'sds4'], { env, timeout: 90_000 });
  t.match(removed.stdout, /drained and removed SDS sds4/);
  map = await mdm.admin.getPgMap(pool.id);
  t.ok(map.pgs.every((p) => !p.members.includes(sds4.id) && !(p.joining ?? []).includes(sds4.id)), 'no PG names sds4');
  t.notOk((await mdm.admin.listSds()).some((s) => s.id === sds4.id), 'sds4 is removed');
  await waitForMapEpoch(mdm, pool.id, sds, 30_000);
  await r.refresh();
  t.same(await verifyReads(r, m), [], 'data intact after the drain');
  wrong = [...placement(sds, map, r, m, vol.volumeTreeId)].filter(([, e]) => e.good.length !== 2 || e.bad.length > 0);
  t.same(wrong, [], 'every chunk on exactly two of the remaining SDSs');
  await sds4.proc.stop('SIGKILL');

  // A returning SDS: sds1 dies, data changes, sds1 comes back on its old storage root.
  const victim = sds[0]!;
  await victim.proc.stop('SIGKILL');
  // Overwrite every chunk the victim held while it is away.
  const held = [...m.chunks.keys()].filter((c) => map.pgs.find((p) => p.pg === r.pgOf(c))!.members.includes(victim.id));
  t.ok(held.length > 0, `the victim held ${held.length} chunks`);
  for (const c of held) await writeChecked(r, m, c, 0, 16 * KiB);
  await waitFor(mdm, pool.id, (mp, st) => mp.pgs.every((p) => !p.members.includes(victim.id)) && st.jobs.length === 0, 60_000, 'eviction of sds1');
  const back = spawnPflex(t, [
    'sds-server', 'start', '--data-dir', victim.dir, '--mdm', mdm.url, '--cluster-key-file', mdm.keyFile, '--name', victim.name,
    '--pd', 'pd1', '--pool', 'pool1', '--host', '127.0.0.1', '--port', '0', '--control-port', '0', '--mgmt-port', '0',
  ]);
  const listening = await back.waitForLog((l) => l.msg === 'sds listening', 60_000);
  await back.waitForLog((l) => l.msg === 'sds registered', 60_000);
  const returned: SdsProc = { ...victim, proc: back, port: listening.port as number, controlPort: listening.controlPort as number, mgmtPort: listening.mgmtPort as number };
  // Reads while it returns and while PGs rebalance back to it.
  const during = await verifyReads(r, m);
  t.same(during, [], 'reads right after the return see the new data');
  map = await waitFor(mdm, pool.id, (mp, st) => whole(2)(mp, st) && mp.pgs.some((p) => p.members.includes(victim.id)), 90_000, 'rebalance back onto the returned sds1');
  const live = [returned, ...sds.slice(1)];
  await waitForMapEpoch(mdm, pool.id, live, 30_000);
  await r.refresh();
  t.same(await verifyReads(r, m), [], 'reads after the return and rebalance see the new data');
  wrong = [...placement(live, map, r, m, vol.volumeTreeId)].filter(([, e]) => e.good.length !== 2 || e.bad.length > 0);
  t.same(wrong, [], 'no stale copy anywhere: every chunk on exactly its two members, current');
  // A PG it is joining (being copied to it) holds data before it is a member;
  // a PG it left is dropped on its next map change, so allow that a moment.
  const stale = (mp: typeof map): number[] => pgDirs(returned).filter((pg) => {
    const e = mp.pgs.find((p) => p.pg === pg);
    return !e || (!e.members.includes(victim.id) && !(e.joining ?? []).includes(victim.id));
  });
  map = await waitFor(mdm, pool.id, (mp) => stale(mp).length === 0, 30_000, 'the returned SDS to drop the PGs it left').catch(() => map);
  t.same(stale(map), [], 'the returned SDS keeps data only of PGs it is a member of (or joining)');
});
