/**
 * Delta rebuild benchmark: a real MDM and four SDS processes on loopback,
 * RF 2, 16 PGs, 1 MiB chunks, fault sets {sds1} and {sds2, sds3, sds4} (so
 * every PG comes back to sds1). Writes --mib MiB, SIGKILLs sds1, overwrites
 * --changed chunks while it is away, waits for its eviction, restarts it and
 * measures the time from its return until every PG is whole again, and what
 * was sent. Run twice: sds1 back on its old storage root (delta: unchanged
 * chunks are compared, not sent) and on an emptied one (every chunk sent:
 * the whole-copy cost).
 *
 *   npx tsc -p . && node dist/bench/rebuild-delta.js [--mib 128 --changed 8] [--unthrottled-only]
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Status } from '../src/dataplane/proto.js';
import { fillChunks, Scope } from './rebuild-common.js';
import { sdsRebuilds, startFastMdm, startSdsIn, startSplitCluster, volumeRouter, waitFor, whole, type Job } from '../test/rebuild/cluster.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MIB = arg('--mib', 128);
const CHANGED = arg('--changed', 8);
const CHUNK = 1024 * 1024;

async function once(label: string, keepData: boolean, config: Record<string, number>): Promise<void> {
  const scope = new Scope();
  const t = scope.t;
  try {
    const mdm = await startFastMdm(t, config);
    const { poolId, victim, others } = await startSplitCluster(t, mdm, CHUNK);
    const { r } = await volumeRouter(t, mdm, poolId, MIB * CHUNK);
    const data = randomBytes(CHUNK);
    await fillChunks(r, MIB, data);
    await victim.proc.stop('SIGKILL');
    const other = randomBytes(CHUNK);
    for (let i = 0; i < CHANGED; i++) {
      const reply = await r.write(Math.floor((i * MIB) / CHANGED), 0, other);
      if (reply.status !== Status.OK) throw new Error('write failed');
    }
    await waitFor(mdm, poolId, (mp) => mp.pgs.every((p) => !p.members.includes(victim.id)), 60_000, 'eviction');
    if (!keepData) rmSync(join(victim.dir, 'chunks'), { recursive: true, force: true });
    const started = performance.now();
    await startSdsIn(t, mdm, 'sds1', 'fsA', victim.dir);
    await waitFor(mdm, poolId, (mp, st) => whole(2)(mp, st) && mp.pgs.every((p) => p.members.includes(victim.id)), 600_000, 'heal');
    const healed = performance.now();
    const done = (await Promise.all(others.map((s) => sdsRebuilds(mdm, s)))).flat().filter((j) => j.targetSdsId === victim.id && j.state === 'done');
    const jobs = (await mdm.admin.request<Job[]>('GET', '/rebuild/jobs', { query: { limit: 1000 } })).filter((j) => j.targetSdsId === victim.id && j.state === 'done');
    const copyMs = Math.max(...jobs.map((j) => j.finishedAtMs ?? 0)) - Math.min(...jobs.map((j) => j.startedAtMs ?? Infinity));
    const sum = (k: 'chunksSkipped' | 'chunksPushed' | 'bytesPushed' | 'bytesSkipped'): number => done.reduce((a, j) => a + j[k], 0);
    console.log(`${label}: ${MIB} MiB written (RF 2), ${CHANGED} chunks changed while sds1 was away; every PG whole ` +
      `${((healed - started) / 1000).toFixed(1)} s after its restart (copies ${(copyMs / 1000).toFixed(1)} s, first start to last join); ${done.length} PG copies: ${sum('chunksPushed')} chunks sent ` +
      `(${(sum('bytesPushed') / CHUNK).toFixed(1)} MiB), ${sum('chunksSkipped')} found identical (${(sum('bytesSkipped') / CHUNK).toFixed(1)} MiB not sent)`);
  } finally {
    await scope.close();
  }
}

const config = { rebuildBandwidthBytesPerS: 1024 * 1024 * 1024, rebuildConcurrentPgsMax: 8 };
await once('delta (old storage root kept), unthrottled', true, config);
await once('whole copy (storage root emptied), unthrottled', false, config);
if (!process.argv.includes('--unthrottled-only')) {
  await once('delta, default limits (64 MiB/s per source, 4 PGs at once)', true, {});
  await once('whole copy, default limits', false, {});
}
