/**
 * Rebuild benchmark: a real MDM and four SDS processes on loopback, RF 2,
 * 16 PGs, 1 MiB chunks; writes --mib MiB through a data client, SIGKILLs one
 * SDS and measures the time until every PG has two members again, and the
 * copy throughput (bytes copied / wall time of the copies). Run once with the
 * default bandwidth limit and once effectively unthrottled.
 *
 *   npx tsc -p . && npm run bench:rebuild [-- --mib 128]
 */
import { randomBytes } from 'node:crypto';
import { fillChunks, Scope } from './rebuild-common.js';
import { startSdsProc, waitForMapEpoch } from '../test/sds/cluster.js';
import { startFastMdm, volumeRouter, waitFor, whole, type Job } from '../test/rebuild/cluster.js';

const argMib = process.argv.indexOf('--mib');
const MIB = argMib > 0 ? Number(process.argv[argMib + 1]) : 128;
const CHUNK = 1024 * 1024;

async function once(label: string, config: Record<string, number>): Promise<void> {
  const scope = new Scope();
  const t = scope.t;
  try {
    const mdm = await startFastMdm(t, config);
    const pd = await mdm.admin.createPd('pd1');
    const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 16, chunkBytes: CHUNK });
    const sds = await Promise.all(['sds1', 'sds2', 'sds3', 'sds4'].map((n) => startSdsProc(t, mdm, n)));
    await waitForMapEpoch(mdm, pool.id, sds, 60_000);
    const { r } = await volumeRouter(t, mdm, pool.id, MIB * CHUNK);
    const data = randomBytes(CHUNK);
    await fillChunks(r, MIB, data);
    const map = await mdm.admin.getPgMap(pool.id);
    const victim = sds[3]!;
    const lost = map.pgs.filter((p) => p.members.includes(victim.id)).length;
    const killed = performance.now();
    victim.proc.child.kill('SIGKILL');
    let downAt = 0;
    await waitFor(mdm, pool.id, (mp) => {
      if (!downAt && mp.pgs.every((p) => !p.members.includes(victim.id))) downAt = performance.now();
      return downAt > 0;
    }, 60_000, 'eviction');
    await waitFor(mdm, pool.id, (mp, st) => whole(2)(mp, st), 600_000, 'heal');
    const healed = performance.now();
    const jobs = (await mdm.admin.request<Job[]>('GET', '/rebuild/jobs', { query: { limit: 1000 } })).filter((j) => j.state === 'done');
    const bytes = jobs.reduce((a, j) => a + j.bytesDone, 0);
    const first = Math.min(...jobs.map((j) => j.startedAtMs ?? Infinity));
    const last = Math.max(...jobs.map((j) => j.finishedAtMs ?? 0));
    console.log(`${label}: ${MIB} MiB written (RF 2), ${lost} PGs lost a copy; evicted ${((downAt - killed) / 1000).toFixed(1)} s after SIGKILL; ` +
      `whole ${((healed - killed) / 1000).toFixed(1)} s after SIGKILL (${((healed - downAt) / 1000).toFixed(1)} s of rebuild); ` +
      `${jobs.length} PG copies, ${(bytes / CHUNK).toFixed(0)} MiB in ${((last - first) / 1000).toFixed(1)} s = ${((bytes / CHUNK) / ((last - first) / 1000)).toFixed(1)} MiB/s`);
  } finally {
    await scope.close();
  }
}

await once('default limits (64 MiB/s per source SDS, 4 PGs at once)', {});
await once('unthrottled (1 GiB/s, 8 PGs at once)', { rebuildBandwidthBytesPerS: 1024 * 1024 * 1024, rebuildConcurrentPgsMax: 8 });
