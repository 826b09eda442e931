/**
 * Rebuild after an SDS dies: four SDS processes, RF 2, data written through
 * an SDC-like router; SIGKILL one SDS while writes keep racing; after the
 * DOWN threshold every PG is back to two members, every chunk is on exactly
 * two live SDSs and byte-identical to what was acknowledged. Progress via
 * GET /rebuild and `pflex rebuild status --json`.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { PFLEX_BIN, tempDir } from '../helpers/proc.js';
import { Router, startSdsProc, waitForMapEpoch } from '../sds/cluster.js';
import { ADMIN_PASSWORD, Model, placement, startFastMdm, verifyReads, waitFor, whole, writeChecked, type Job } from './cluster.js';

const run = promisify(execFile);
const KiB = 1024;

t.test('SIGKILL of an SDS: PGs heal to two copies, racing writes are kept, status via API and CLI', async (t) => {
  const mdm = await startFastMdm(t);
  const pd = await mdm.admin.createPd('pd1');
  const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 16, chunkBytes: 256 * KiB });
  const sds = await Promise.all(['sds1', 'sds2', 'sds3', 'sds4'].map((n) => startSdsProc(t, mdm, n)));
  await waitForMapEpoch(mdm, pool.id, sds, 60_000);
  const vol = await mdm.admin.createVolume({ name: 'v1', storagePoolId: pool.id, sizeBytes: 64 * 256 * KiB });
  const r = new Router(mdm, pool.id, vol.id, vol.volumeTreeId);
  t.teardown(() => r.close());
  await r.refresh();
  const m = new Model(256 * KiB);
  // 48 chunks: full ones and partial ones at odd offsets.
  for (let c = 0; c < 48; c++) await writeChecked(r, m, c, c % 3 === 0 ? 0 : 4096 * (c % 7), c % 3 === 0 ? 256 * KiB : 12 * KiB);

  const victim = sds[3]!;
  const victimPgs = (await mdm.admin.getPgMap(pool.id)).pgs.filter((p) => p.members.includes(victim.id)).length;
  t.ok(victimPgs > 0, `the victim holds ${victimPgs} PGs`);
  const killedAt = Date.now();
  victim.proc.child.kill('SIGKILL');

  // Writes race the eviction and the rebuild.
  let racing = true;
  let raced = 0;
  const writer = (async () => {
    let c = 0;
    while (racing) {
      await writeChecked(r, m, c % 56, 4096 * (c % 13), 8 * KiB);
      c += 5;
      raced++;
    }
  })();

  const live = sds.slice(0, 3);
  const map = await waitFor(mdm, pool.id, (mp, st) => whole(2)(mp, st) && mp.pgs.every((p) => !p.members.includes(victim.id)), 90_000, 'the PGs to heal');
  const healedMs = Date.now() - killedAt;
  racing = false;
  await writer;
  t.ok(raced > 0, `${raced} writes raced the rebuild`);
  t.ok(map.pgs.every((p) => p.members.every((id) => live.some((s) => s.id === id))), 'every member is a live SDS');

  await waitForMapEpoch(mdm, pool.id, live, 30_000);
  await r.refresh();
  t.same(await verifyReads(r, m), [], 'every chunk reads back as acknowledged');
  // The MDM may still move a PG for balance right after the heal (a copy, then the
  // leaver drops its data): the files are checked against a map that has settled.
  const settled = async () => {
    const mp = await waitFor(mdm, pool.id, whole(2), 30_000, 'a settled map');
    await waitForMapEpoch(mdm, pool.id, live, 30_000);
    const where = placement(live, mp, r, m, vol.volumeTreeId);
    const wrong = [...where].filter(([, e]) => e.good.length !== 2 || e.bad.length > 0);
    const misplaced = [...where].filter(([chunk, e]) => !e.good.every((id) => mp.pgs.find((p) => p.pg === r.pgOf(chunk))!.members.includes(id)))
      .map(([chunk, e]) => `chunk ${chunk} is held by ${e.good} but PG ${r.pgOf(chunk)} is ${mp.pgs.find((p) => p.pg === r.pgOf(chunk))!.members}`);
    return { wrong, misplaced };
  };
  let check = await settled();
  for (const deadline = Date.now() + 30_000; (check.wrong.length > 0 || check.misplaced.length > 0) && Date.now() < deadline;) {
    await new Promise((res) => setTimeout(res, 500));
    check = await settled();
  }
  t.same(check.wrong, [], 'every chunk is on exactly two live SDSs, byte-identical to what was written');
  t.same(check.misplaced, [], 'every chunk is held by the members of its PG');

  const jobs = await mdm.admin.request<Job[]>('GET', '/rebuild/jobs', { query: { limit: 1000 } });
  // A PG the victim held gets its copy back by a rebuild, or by a rebalance already moving it off the victim.
  const done = jobs.filter((j) => j.state === 'done' && (j.kind === 'rebuild' || j.replacesSdsId === victim.id));
  if (!t.ok(done.length >= victimPgs, `${done.length} copies done that restored a copy (${victimPgs} PGs lost a copy)`)) {
    for (const j of jobs) t.comment(JSON.stringify(j));
  }
  const bytes = done.reduce((a, j) => a + j.bytesDone, 0);
  const busyMs = done.reduce((a, j) => a + ((j.finishedAtMs ?? 0) - (j.startedAtMs ?? 0)), 0);
  t.comment(`healed in ${(healedMs / 1000).toFixed(1)} s after SIGKILL (DOWN after 5 s); ${done.length} PG copies, ${(bytes / 1048576).toFixed(2)} MiB, ` +
    `${busyMs > 0 ? ((bytes / 1048576) / (busyMs / 1000)).toFixed(1) : '-'} MiB/s per copy`);

  // The CLI shows the same status; idle now.
  const configDir = tempDir(t, 'pflex-rebuild-cli-');
  const env = { ...process.env, PFLEX_CONFIG_DIR: configDir, PFLEX_MDM_URL: mdm.url, PFLEX_PASSWORD: ADMIN_PASSWORD };
  await run(process.execPath, [PFLEX_BIN, 'login', '--user', 'admin', '--password', ADMIN_PASSWORD], { env });
  const out = await run(process.execPath, [PFLEX_BIN, 'rebuild', 'status', '--json'], { env });
  const status = JSON.parse(out.stdout) as { active: boolean; pools: Array<{ degradedPgs: number }>; jobs: unknown[] };
  t.equal(status.active, false, 'pflex rebuild status --json: idle');
  t.same(status.pools.map((p) => p.degradedPgs), [0]);
  const human = await run(process.execPath, [PFLEX_BIN, 'rebuild', 'status'], { env });
  t.match(human.stdout, /rebuild: idle/);
  const alerts = await mdm.admin.listAlerts({ category: 'rebuild', state: 'open' });
  t.same(alerts, [], 'no degraded-PG alert is open');
});
