/**
 * SDS data-path benchmark: a real MDM and two SDS processes on loopback, one
 * pool with RF 2 and a single PG, and a pipelined data client (in this
 * process) pushing 1 MiB and 4 KiB writes and reads to the PG's primary,
 * which replicates every write to the secondary before acknowledging.
 *
 *   npm run build && npm run bench:sds [-- --seconds 5] [-- --tls]
 *
 * With --tls (or BENCH_TLS=1) the cluster runs TLS: the data connections
 * (client -> primary, primary -> secondary) are mutual TLS 1.3, which is
 * what the figures then cost. Prints MB/s, IOPS and p50/p99 latency per phase.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataClient } from '../src/dataplane/client.js';
import { Status, statusName } from '../src/dataplane/proto.js';
import { startMdm, startSdsProc, waitForMapEpoch } from '../test/sds/cluster.js';
import { makeCerts } from '../test/helpers/certs.js';
import type { Test } from 'tap';

const argSeconds = process.argv.indexOf('--seconds');
const SECONDS = argSeconds > 0 ? Number(process.argv[argSeconds + 1]) : Number(process.env.BENCH_SECONDS ?? 4);
const TLS = process.argv.includes('--tls') || process.env.BENCH_TLS === '1';
const CHUNK = 1024 * 1024;
const CHUNKS = 4096; // volume size in chunks (4 GiB, thin)
const HOT = 32; // chunks the rewrite and 4 KiB phases cycle over

/** Collects teardown functions like a tap Test does, so the test cluster helpers work here. */
class Scope {
  private readonly fns: Array<() => unknown> = [];
  teardown(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async close(): Promise<void> {
    for (const fn of this.fns.reverse()) await fn();
  }
}

interface Phase {
  name: string;
  op: 'write' | 'read';
  size: number;
  depth: number;
  random: boolean;
  /** Chunks the phase cycles over (from chunk `first`). */
  chunks: number;
  first: number;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function runPhase(c: DataClient, addrOf: (chunk: number) => Parameters<DataClient['write']>[0], token: Buffer, ph: Phase): Promise<string> {
  const data = Buffer.alloc(ph.size, 0x5a);
  const lat: number[] = [];
  let ops = 0;
  let seq = 0;
  let errors = 0;
  const end = performance.now() + SECONDS * 1000;
  const perChunk = CHUNK / ph.size;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const n = ph.random ? Math.floor(Math.random() * ph.chunks * perChunk) : seq++ % (ph.chunks * perChunk);
      const chunk = ph.first + Math.floor(n / perChunk);
      const off = (n % perChunk) * ph.size;
      const t0 = performance.now();
      const r = ph.op === 'write' ? await c.write(addrOf(chunk), off, data, token) : await c.read(addrOf(chunk), off, ph.size, token);
      lat.push(performance.now() - t0);
      if (r.status !== Status.OK && r.status !== Status.NO_CHUNK) {
        if (errors++ === 0) console.error(`${ph.name}: ${statusName(r.status)} ${r.payload.toString()}`);
      }
      ops++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: ph.depth }, worker));
  const secs = (performance.now() - t0) / 1000;
  const sorted = Float64Array.from(lat).sort();
  const mbs = (ops * ph.size) / secs / 1e6;
  return `| ${ph.name} | ${ph.depth} | ${mbs.toFixed(1)} | ${Math.round(ops / secs)} | ${percentile(sorted, 0.5).toFixed(2)} | ${percentile(sorted, 0.99).toFixed(2)} | ${errors} |`;
}

async function main(): Promise<void> {
  const scope = new Scope();
  const work = mkdtempSync(join(tmpdir(), 'pflex-bench-sds-'));
  scope.teardown(() => rmSync(work, { recursive: true, force: true }));
  try {
    const t = scope as unknown as Test;
    const certs = TLS ? makeCerts(t, ['mdm', 'sds1', 'sds2', 'bench-client']) : undefined;
    const mdm = await startMdm(t, certs ? { tls: certs } : {});
    const pd = await mdm.admin.createPd('pd1');
    const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 1 });
    const sds = await Promise.all(['sds1', 'sds2'].map((n) => startSdsProc(t, mdm, n)));
    const map = await waitForMapEpoch(mdm, pool.id, sds);
    const vol = await mdm.admin.createVolume({ name: 'bench', storagePoolId: pool.id, sizeBytes: CHUNKS * CHUNK });
    const entry = map.pgs[0]!;
    const primary = sds.find((s) => s.id === entry.members[0])!;
    const { issueIoToken } = await import('../src/shared/iotoken.js');
    const { deriveKey } = await import('../src/shared/keys.js');
    const token = issueIoToken(deriveKey(mdm.clusterKey, 'io-token'), { sdcId: 1, volumeId: vol.id, rights: 'rw', expiresAtMs: Date.now() + 3_600_000 });
    const c = new DataClient({ host: '127.0.0.1', port: primary.port, requestTimeoutMs: 60_000, ...(certs ? { tls: certs.material('bench-client') } : {}) });
    scope.teardown(() => c.close());
    const addrOf = (chunk: number) => ({ pgId: 0, epoch: entry.epoch, volumeId: vol.id, treeId: vol.volumeTreeId, chunkIndex: chunk, layerId: 0 });
    console.log(`SDS bench: RF 2, one PG, 2 SDS processes + client on loopback, data plane ${TLS ? 'mutual TLS 1.3' : 'plain TCP'}, ${SECONDS} s per phase, node ${process.version}`);
    console.log('');
    console.log('| phase | queue depth | MB/s | IOPS | p50 ms | p99 ms | errors |');
    console.log('|---|---|---|---|---|---|---|');
    // 'new chunks' writes chunks never written before (each creates its files);
    // the other phases work on HOT chunks that already exist.
    const phases: Phase[] = [
      { name: 'write 1 MiB new chunks', op: 'write', size: CHUNK, depth: 8, random: false, chunks: CHUNKS - HOT, first: HOT },
      { name: 'write 1 MiB rewrite', op: 'write', size: CHUNK, depth: 8, random: false, chunks: HOT, first: 0 },
      { name: 'read 1 MiB', op: 'read', size: CHUNK, depth: 8, random: false, chunks: HOT, first: 0 },
      { name: 'write 4 KiB rand', op: 'write', size: 4096, depth: 32, random: true, chunks: HOT, first: 0 },
      { name: 'read 4 KiB rand', op: 'read', size: 4096, depth: 32, random: true, chunks: HOT, first: 0 },
      { name: 'write 4 KiB QD1', op: 'write', size: 4096, depth: 1, random: true, chunks: HOT, first: 0 },
    ];
    // Create the hot chunks first (not measured).
    await Promise.all(Array.from({ length: HOT }, (_, i) => c.write(addrOf(i), 0, Buffer.alloc(CHUNK, 1), token)));
    const only = process.env.BENCH_PHASES?.split(',');
    for (const ph of phases) if (!only || only.includes(ph.name)) console.log(await runPhase(c, addrOf, token, ph));
    // A clean stop lets `NODE_OPTIONS=--cpu-prof` write the SDS processes' profiles.
    await Promise.all(sds.map((s) => s.proc.stop('SIGTERM')));
  } finally {
    await scope.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
