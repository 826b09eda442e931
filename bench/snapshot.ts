/**
 * Write cost after a snapshot: a real MDM and two SDS processes on loopback
 * (RF 2, one PG), a pipelined data client in this process. N chunks are
 * written whole, the volume is snapshotted, then 4 KiB writes hit each chunk
 * once (every one a first write in the new layer: copy-on-write of the 1 MiB
 * chunk on both replicas), then the same again (steady state: the chunks are
 * in the layer now). For comparison the same 4 KiB pattern before any
 * snapshot, and whole-chunk 1 MiB writes after a second snapshot (they cover
 * the chunk: nothing to copy).
 *
 *   npm run build && npm run bench:snapshot [-- --chunks 512]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { DataClient } from '../src/dataplane/client.js';
import { Status, statusName } from '../src/dataplane/proto.js';
import { issueIoToken } from '../src/shared/iotoken.js';
import { deriveKey } from '../src/shared/keys.js';
import { startMdm, startSdsProc, waitForMapEpoch } from '../test/sds/cluster.js';

const argChunks = process.argv.indexOf('--chunks');
const CHUNKS = argChunks > 0 ? Number(process.argv[argChunks + 1]) : Number(process.env.BENCH_CHUNKS ?? 256);
const CHUNK = 1024 * 1024;
const DEPTH = 16;

class Scope {
  private readonly fns: Array<() => unknown> = [];
  teardown(fn: () => unknown): void { this.fns.push(fn); }
  async close(): Promise<void> { for (const fn of this.fns.reverse()) await fn(); }
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/** One write per chunk (size bytes at a fixed offset), DEPTH in flight; a table row. */
async function pass(name: string, write: (chunk: number) => Promise<number>): Promise<string> {
  const lat: number[] = [];
  let next = 0;
  let errors = 0;
  const worker = async (): Promise<void> => {
    while (next < CHUNKS) {
      const chunk = next++;
      const t0 = performance.now();
      const status = await write(chunk);
      lat.push(performance.now() - t0);
      if (status !== Status.OK && errors++ === 0) console.error(`${name}: ${statusName(status)}`);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: DEPTH }, worker));
  const secs = (performance.now() - t0) / 1000;
  const sorted = Float64Array.from(lat).sort();
  return `| ${name} | ${Math.round(CHUNKS / secs)} | ${percentile(sorted, 0.5).toFixed(2)} | ${percentile(sorted, 0.99).toFixed(2)} | ${errors} |`;
}

async function main(): Promise<void> {
  const scope = new Scope();
  const work = mkdtempSync(join(tmpdir(), 'pflex-bench-snap-'));
  scope.teardown(() => rmSync(work, { recursive: true, force: true }));
  try {
    const t = scope as unknown as Test;
    const mdm = await startMdm(t);
    const pd = await mdm.admin.createPd('pd1');
    const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 1 });
    const sds = await Promise.all(['sds1', 'sds2'].map((n) => startSdsProc(t, mdm, n)));
    const map = await waitForMapEpoch(mdm, pool.id, sds);
    const vol = await mdm.admin.createVolume({ name: 'bench', storagePoolId: pool.id, sizeBytes: 2 * CHUNKS * CHUNK });
    const entry = map.pgs[0]!;
    const primary = sds.find((s) => s.id === entry.members[0])!;
    const token = issueIoToken(deriveKey(mdm.clusterKey, 'io-token'), { sdcId: 1, volumeId: vol.id, rights: 'rw', expiresAtMs: Date.now() + 3_600_000 });
    const c = new DataClient({ host: '127.0.0.1', port: primary.port, requestTimeoutMs: 60_000 });
    scope.teardown(() => c.close());
    let layerId = vol.layerId;
    const addr = (chunk: number) => ({ pgId: 0, epoch: entry.epoch, volumeId: vol.id, treeId: vol.volumeTreeId, chunkIndex: chunk, layerId });
    const small = Buffer.alloc(4096, 0x5a);
    const whole = Buffer.alloc(CHUNK, 0x33);
    const w4k = async (chunk: number) => (await c.write(addr(chunk), 64 * 1024, small, token)).status;
    const w1m = async (chunk: number) => (await c.write(addr(chunk), 0, whole, token)).status;
    const snapshot = async (name: string) => { layerId = (await mdm.admin.createSnapshot(vol.id, name), await mdm.admin.getVolume(vol.id)).layerId; };

    console.log(`snapshot bench: RF 2, one PG, 2 SDS processes + client on loopback, ${CHUNKS} chunks of 1 MiB, ${DEPTH} writes in flight, node ${process.version}`);
    console.log('');
    console.log('| phase (one write per chunk) | writes/s | p50 ms | p99 ms | errors |');
    console.log('|---|---|---|---|---|');
    await pass('fill: 1 MiB whole chunks (not measured)', w1m);
    console.log(await pass('4 KiB, no snapshot (chunk exists)', w4k));
    await snapshot('s1');
    console.log(await pass('4 KiB, first write after a snapshot (COW 1 MiB)', w4k));
    console.log(await pass('4 KiB, second write (steady state)', w4k));
    await snapshot('s2');
    console.log(await pass('1 MiB whole chunk after a snapshot (no copy)', w1m));
    console.log(await pass('1 MiB whole chunk, steady state', w1m));
    await Promise.all(sds.map((s) => s.proc.stop('SIGTERM')));
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
