/**
 * A loopback cluster for rebuild tests: an MDM with short heartbeat/DOWN
 * timings and a fast rebuild loop (config file), SDS processes from
 * test/sds/cluster.ts, and a data model to check what was written.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { Status } from '../../src/dataplane/proto.js';
import { type PgMap, type Volume } from '../../src/shared/mdm-client.js';
import { spawnPflex, tempDir } from '../helpers/proc.js';
import { startMdm, type Mdm } from '../helpers/mdm.js';
import { Router, waitForMapEpoch, type SdsProc } from '../sds/cluster.js';
import type { SdsRebuildStatus } from '../../src/dataplane/rebuild-proto.js';
import { controlAuthorization } from '../../src/shared/control-auth.js';
import { CHUNK_FILE_SUFFIX, chunkFileData } from '../../src/sds/store/chunk-file-layout.js';

export { ADMIN_PASSWORD } from '../helpers/mdm.js';

/** Heartbeats every 2 s (the SDS's fixed period): STALE after 4 s, DOWN after 5 s. */
export const FAST_CONFIG = {
  heartbeatIntervalMs: 2000, staleAfterMissedBeats: 2, downAfterMs: 5000, healthTickMs: 250,
  rebuildTickMs: 200, rebuildRetryDelayMs: 500, rebuildConcurrentPgsMax: 4,
};

export function startFastMdm(t: Test, config: Record<string, number> = {}, port = 0, reuse?: Mdm): Promise<Mdm> {
  return startMdm(t, { config: { ...FAST_CONFIG, ...config }, port, prefix: 'pflex-rebuild-mdm-', ...(reuse ? { reuse } : {}) });
}

/** An SDS process in a fault set of pool1/pd1, on a given storage root (a restart reuses one). */
export async function startSdsIn(t: Test, mdm: Mdm, name: string, faultSet: string, dir = tempDir(t, `pflex-${name}-`)): Promise<SdsProc> {
  const proc = spawnPflex(t, [
    'sds-server', 'start', '--data-dir', dir, '--mdm', mdm.url, '--cluster-key-file', mdm.keyFile, '--name', name,
    '--pd', 'pd1', '--pool', 'pool1', '--fault-set', faultSet, '--host', '127.0.0.1', '--port', '0', '--control-port', '0', '--mgmt-port', '0',
  ]);
  const listening = await proc.waitForLog((l) => l.msg === 'sds listening', 60_000);
  const registered = await proc.waitForLog((l) => l.msg === 'sds registered', 60_000);
  return { name, dir, proc, id: registered.sdsId as number, port: listening.port as number, controlPort: listening.controlPort as number, mgmtPort: listening.mgmtPort as number };
}

/**
 * pd1/pool1 (RF 2, 16 PGs) over fault sets {sds1} and {sds2, sds3, sds4}:
 * sds1 holds a copy of every PG, so every PG comes back to it after it
 * returns (the delta-rebuild setting).
 */
export async function startSplitCluster(t: Test, mdm: Mdm, chunkBytes: number): Promise<{ poolId: number; victim: SdsProc; others: SdsProc[]; map: PgMap }> {
  const pd = await mdm.admin.createPd('pd1');
  await mdm.admin.createFaultSet(pd.id, 'fsA');
  await mdm.admin.createFaultSet(pd.id, 'fsB');
  const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 16, chunkBytes });
  const victim = await startSdsIn(t, mdm, 'sds1', 'fsA');
  const others = await Promise.all(['sds2', 'sds3', 'sds4'].map((n) => startSdsIn(t, mdm, n, 'fsB')));
  const map = await waitForMapEpoch(mdm, pool.id, [victim, ...others], 60_000);
  return { poolId: pool.id, victim, others, map };
}

/** A volume of the pool and a data-client router to it (closed at teardown). */
export async function volumeRouter(t: Test, mdm: Mdm, poolId: number, sizeBytes: number): Promise<{ vol: Volume; r: Router }> {
  const vol = await mdm.admin.createVolume({ name: 'v1', storagePoolId: poolId, sizeBytes });
  const r = new Router(mdm, poolId, vol.id, vol.volumeTreeId);
  t.teardown(() => r.close());
  await r.refresh();
  return { vol, r };
}

/** The copies an SDS runs or ran as a primary (GET /rebuilds on its control listener). */
export async function sdsRebuilds(mdm: Mdm, s: SdsProc): Promise<SdsRebuildStatus[]> {
  const res = await fetch(`http://127.0.0.1:${s.controlPort}/rebuilds`, { headers: { authorization: controlAuthorization(mdm.clusterKey, 'mdm') } });
  if (!res.ok) throw new Error(`GET /rebuilds on ${s.name}: ${res.status}`);
  return (await res.json()) as SdsRebuildStatus[];
}

/** What was acknowledged, per chunk: the bytes from offset 0 (the rest reads as zeros). */
export class Model {
  readonly chunks = new Map<number, Buffer>();

  constructor(readonly chunkBytes: number) {}

  apply(chunk: number, offset: number, data: Buffer): void {
    const old = this.chunks.get(chunk) ?? Buffer.alloc(0);
    const next = Buffer.alloc(Math.max(old.length, offset + data.length));
    old.copy(next);
    data.copy(next, offset);
    this.chunks.set(chunk, next);
  }
}

/** Writes through the router and records the write in the model once acknowledged. */
export async function writeChecked(r: Router, m: Model, chunk: number, offset: number, length: number): Promise<void> {
  const data = randomBytes(length);
  const reply = await r.write(chunk, offset, data);
  if (reply.status !== Status.OK) throw new Error(`write of chunk ${chunk} answered ${reply.status}`);
  m.apply(chunk, offset, data);
}

/** Reads every chunk of the model back through the router; returns the chunks that differ. */
export async function verifyReads(r: Router, m: Model): Promise<number[]> {
  const bad: number[] = [];
  for (const [chunk, want] of m.chunks) {
    const reply = await r.read(chunk, 0, want.length);
    const got = reply.status === Status.NO_CHUNK ? Buffer.alloc(want.length) : reply.payload;
    if (reply.status !== Status.OK || !got.equals(want)) bad.push(chunk);
  }
  return bad;
}

/**
 * The chunk's data on one SDS (its file by the PG directory layout of
 * docs/sds.md, without the checksum table), or undefined when it has no file.
 */
export function chunkFile(s: SdsProc, pg: number, treeId: number, chunk: number): Buffer | undefined {
  const p = join(s.dir, 'chunks', `pg-${pg}`, `${treeId}-${chunk}-0${CHUNK_FILE_SUFFIX}`);
  return existsSync(p) ? chunkFileData(readFileSync(p)) : undefined;
}

/** PG directories with at least one chunk file on an SDS. */
export function pgDirs(s: SdsProc): number[] {
  const root = join(s.dir, 'chunks');
  if (!existsSync(root)) return [];
  return readdirSync(root).filter((d) => /^pg-\d+$/.test(d) && readdirSync(join(root, d)).some((f) => f.endsWith(CHUNK_FILE_SUFFIX))).map((d) => Number(d.slice(3)));
}

/**
 * For each chunk of the model: the SDSs (of those given) whose file holds
 * exactly the model's bytes (zeros beyond), and whether any holds something else.
 */
export function placement(sds: SdsProc[], map: PgMap, r: Router, m: Model, treeId: number): Map<number, { good: number[]; bad: number[] }> {
  const out = new Map<number, { good: number[]; bad: number[] }>();
  for (const [chunk, want] of m.chunks) {
    const pg = r.pgOf(chunk);
    const e = { good: [] as number[], bad: [] as number[] };
    for (const s of sds) {
      const f = chunkFile(s, pg, treeId, chunk);
      if (!f) continue;
      const n = Math.max(f.length, want.length);
      const a = Buffer.alloc(n); f.copy(a);
      const b = Buffer.alloc(n); want.copy(b);
      (a.equals(b) ? e.good : e.bad).push(s.id);
    }
    out.set(chunk, e);
  }
  void map;
  return out;
}

export interface RebuildStatus {
  active: boolean;
  pools: Array<{ id: number; degradedPgs: number; rebuildingPgs: number }>;
  jobs: Array<{ pg: number; state: string }>;
  draining: number[];
}

export interface Job { id: number; pg: number; kind: string; state: string; bytesDone: number; chunksDone: number; startedAtMs: number | null; finishedAtMs: number | null; targetSdsId: number; replacesSdsId: number | null }

/** Polls until pred holds for the map (and the rebuild status), or throws after timeoutMs. */
export async function waitFor(mdm: Mdm, poolId: number, pred: (map: PgMap, status: RebuildStatus) => boolean, timeoutMs: number, what: string): Promise<PgMap> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const map = await mdm.admin.getPgMap(poolId);
    const status = await mdm.admin.request<RebuildStatus>('GET', '/rebuild');
    if (pred(map, status)) return map;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(status).slice(0, 600)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** Every PG has rf members, none joining, no copy running. */
export const whole = (rf: number) => (map: PgMap, status: RebuildStatus): boolean =>
  map.pgs.every((p) => p.members.length === rf && (p.joining ?? []).length === 0) && status.jobs.length === 0;
