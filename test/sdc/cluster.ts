/**
 * A whole pflex cluster on loopback for SDC tests: an MDM process, three SDS
 * processes (separate storage roots), one SDC process (`pflex sdc-server`),
 * a pool with two copies and volumes mapped to the SDC. Everything is torn
 * down with the test.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { Volume } from '../../src/shared/mdm-client.js';
import { CHUNK_FILE_SUFFIX, chunkFileData } from '../../src/sds/store/chunk-file-layout.js';
import { spawnPflex, type PflexProcess } from '../helpers/proc.js';
import { startMdm, startSdsProc, waitForMapEpoch, type Mdm, type SdsProc } from '../sds/cluster.js';
import { startFastMdm } from '../rebuild/cluster.js';

export interface SdcProc {
  proc: PflexProcess;
  id: number;
  port: number;
  controlPort: number;
  mgmtPort: number;
  /** nbd://127.0.0.1:PORT/NAME */
  uri(volume?: string): string;
}

export interface Cluster {
  mdm: Mdm;
  poolId: number;
  sds: SdsProc[];
  sdc: SdcProc;
  /** Creates a volume and maps it to the SDC. */
  volume(name: string, sizeBytes: number, accessMode?: 'readWrite' | 'readOnly'): Promise<Volume>;
}

export interface ClusterOptions {
  pgCount?: number;
  chunkBytes?: number;
  sdcArgs?: string[];
  /** MDM config file keys (src/mdm/config.ts); when given, the MDM starts with them over test/rebuild's FAST_CONFIG. */
  mdmConfig?: Record<string, number>;
}

export async function startSdcProc(t: Test, mdm: Mdm, name = 'sdc1', extraArgs: string[] = []): Promise<SdcProc> {
  const proc = spawnPflex(t, [
    'sdc-server', '--mdm', mdm.url, '--cluster-key-file', mdm.keyFile, '--name', name, '--host', '127.0.0.1',
    '--port', '0', '--control-port', '0', '--mgmt-port', '0', ...extraArgs,
  ]);
  const listening = await proc.waitForLog((l) => l.msg === 'sdc listening', 90_000);
  const registered = await proc.waitForLog((l) => l.msg === 'sdc registered', 90_000);
  const port = listening.port as number;
  return {
    proc, id: registered.sdcId as number, port, controlPort: listening.controlPort as number, mgmtPort: listening.mgmtPort as number,
    uri: (volume = '') => `nbd://127.0.0.1:${port}/${volume}`,
  };
}

export async function startCluster(t: Test, opts: ClusterOptions = {}): Promise<Cluster> {
  const mdm = opts.mdmConfig ? await startFastMdm(t, opts.mdmConfig) : await startMdm(t);
  const pd = await mdm.admin.createPd('pd1');
  const pool = await mdm.admin.createPool({
    protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: opts.pgCount ?? 32,
    ...(opts.chunkBytes ? { chunkBytes: opts.chunkBytes } : {}),
  });
  const [sds, sdc] = await Promise.all([
    Promise.all(['sds1', 'sds2', 'sds3'].map((n) => startSdsProc(t, mdm, n))),
    startSdcProc(t, mdm, 'sdc1', opts.sdcArgs),
  ]);
  await waitForMapEpoch(mdm, pool.id, sds, 30_000);
  return {
    mdm, poolId: pool.id, sds, sdc,
    async volume(name, sizeBytes, accessMode = 'readWrite') {
      const v = await mdm.admin.createVolume({ name, storagePoolId: pool.id, sizeBytes });
      return mdm.admin.mapVolume(v.id, sdc.id, { accessMode });
    },
  };
}

/** Every chunk file of a volume tree on one SDS (by the PG directory layout of docs/sds.md). */
function treeFiles(s: SdsProc, treeId: number): Array<{ pgDir: string; name: string; chunkIndex: number; path: string }> {
  const root = join(s.dir, 'chunks');
  const out: Array<{ pgDir: string; name: string; chunkIndex: number; path: string }> = [];
  if (!existsSync(root)) return out;
  for (const pgDir of readdirSync(root)) {
    const dir = join(root, pgDir);
    const names = gone(() => (statSync(dir).isDirectory() ? readdirSync(dir) : []));
    for (const name of names ?? []) {
      if (!name.endsWith(CHUNK_FILE_SUFFIX)) continue;
      const stem = name.slice(0, -CHUNK_FILE_SUFFIX.length);
      const m = /^(\d+)-(\d+)-(\d+)$/.exec(stem);
      if (m && Number(m[1]) === treeId) out.push({ pgDir, name: stem, chunkIndex: Number(m[2]), path: join(dir, name) });
    }
  }
  return out;
}

/** Chunk files of a volume tree on one SDS: "chunkIndex" -> pg directory names holding it. */
export function chunksOn(s: SdsProc, treeId: number): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const f of treeFiles(s, treeId)) out.set(f.chunkIndex, [...(out.get(f.chunkIndex) ?? []), f.pgDir]);
  return out;
}

/**
 * Chunk data of a tree on one SDS: "pg-N/tree-index-layer" -> the chunk's
 * bytes (its file without the checksum table). Replicas holding the same
 * data may differ in the table: a block never written has the word 0 on one
 * and the CRC of a zero block on another that received a whole-chunk copy.
 */
export function chunkFiles(s: SdsProc, treeId: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const f of treeFiles(s, treeId)) {
    const bytes = gone(() => readFileSync(f.path));
    if (bytes) out.set(`${f.pgDir}/${f.name}`, chunkFileData(bytes));
  }
  return out;
}

/**
 * fn's result, or undefined when what it reads was deleted meanwhile: the
 * SDS reclaims chunks in the background (a dropped layer, a moved PG), so a
 * file listed a moment ago may be gone when read.
 */
export function gone<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
