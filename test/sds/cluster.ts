/**
 * A real cluster on loopback for SDS tests: an MDM process (pflex mdm init +
 * start), SDS processes (pflex sds-server start), and a small routing client
 * that behaves like an SDC towards the SDSs (map from the MDM, retry on
 * STALE_EPOCH / NOT_PRIMARY, report a dead primary to the MDM).
 */
import type { Test } from 'tap';
import { DataClientPool } from '../../src/dataplane/client.js';
import { Status, statusName, type Frame } from '../../src/dataplane/proto.js';
import { PflexError } from '../../src/shared/errors.js';
import { issueIoToken } from '../../src/shared/iotoken.js';
import { deriveKey } from '../../src/shared/keys.js';
import { type PgMap } from '../../src/shared/mdm-client.js';
import { pgOfChunk } from '../../src/shared/pg.js';
import { spawnPflex, tempDir, type PflexProcess } from '../helpers/proc.js';
import { listenerJson } from '../helpers/listener.js';

import type { Mdm } from '../helpers/mdm.js';

export { startMdm, type Mdm } from '../helpers/mdm.js';

export interface SdsProc {
  name: string;
  id: number;
  dir: string;
  port: number;
  controlPort: number;
  mgmtPort: number;
  proc: PflexProcess;
}

/** An SDS process; dir: its storage root (a restart passes the old one). */
export async function startSdsProc(t: Test, mdm: Mdm, name: string, pool = 'pool1', pd = 'pd1', dir = tempDir(t, `pflex-${name}-`)): Promise<SdsProc> {
  const proc = spawnPflex(t, [
    'sds-server', 'start', '--data-dir', dir, '--mdm', mdm.url, '--cluster-key-file', mdm.keyFile, '--name', name,
    '--pd', pd, '--pool', pool, '--host', '127.0.0.1', '--port', '0', '--control-port', '0', '--mgmt-port', '0',
    // A TLS cluster (startMdm with tls): the SDS gets its own certificate of the same CA.
    ...(mdm.tls ? mdm.tls.args(name) : []),
  ]);
  const listening = await proc.waitForLog((l) => l.msg === 'sds listening', 120_000);
  const registered = await proc.waitForLog((l) => l.msg === 'sds registered', 60_000);
  return {
    name, dir, proc, id: registered.sdsId as number,
    port: listening.port as number, controlPort: listening.controlPort as number, mgmtPort: listening.mgmtPort as number,
  };
}

/** Waits until every running SDS has learned the MDM's current map epoch (via its mgmt /health). */
export async function waitForMapEpoch(mdm: Mdm, poolId: number, sds: SdsProc[], timeoutMs = 60_000): Promise<PgMap> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const map = await mdm.admin.getPgMap(poolId);
    const epochs = await Promise.all(sds.map(async (s) => {
      const h = await listenerJson<{ mapEpoch: number | null }>(mdm, s.mgmtPort, '/health');
      return h.mapEpoch;
    }));
    if (map.ready && epochs.every((e) => e === map.epoch)) return map;
    if (Date.now() > deadline) throw new Error(`SDSs did not learn map epoch ${map.epoch} (they have ${epochs.join(', ')})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** An SDC-like router: chunk -> PG -> primary, with the retries an SDC does. */
export class Router {
  readonly clients = new DataClientPool({ requestTimeoutMs: 10_000 });
  map!: PgMap;
  readonly token: Buffer;
  fencedPrimaries = 0;

  constructor(readonly mdm: Mdm, readonly poolId: number, readonly volumeId: number, readonly treeId: number) {
    this.token = issueIoToken(deriveKey(mdm.clusterKey, 'io-token'), { sdcId: 1, volumeId, rights: 'rw', expiresAtMs: Date.now() + 3_600_000 });
  }

  async refresh(): Promise<void> {
    this.map = await this.mdm.admin.getPgMap(this.poolId);
  }

  pgOf(chunkIndex: number): number {
    return pgOfChunk(this.treeId, chunkIndex, this.map.pgCount);
  }

  /** Sends a request to the chunk's primary until it is answered with something other than a routing error. */
  async send(chunkIndex: number, op: (c: ReturnType<DataClientPool['get']>, addr: { pgId: number; epoch: number; volumeId: number; treeId: number; chunkIndex: number; layerId: number }) => Promise<Frame>): Promise<Frame> {
    let last = '';
    for (let attempt = 0; attempt < 30; attempt++) {
      const pg = this.pgOf(chunkIndex);
      const entry = this.map.pgs.find((p) => p.pg === pg)!;
      const primary = this.map.sds.find((s) => s.id === entry.members[0])!;
      const client = this.clients.get(primary.address, primary.dataPort);
      try {
        const reply = await op(client, { pgId: pg, epoch: entry.epoch, volumeId: this.volumeId, treeId: this.treeId, chunkIndex, layerId: 0 });
        if (reply.status === Status.STALE_EPOCH || reply.status === Status.NOT_PRIMARY || reply.status === Status.EPOCH_AHEAD) {
          last = statusName(reply.status);
          await this.refresh();
          continue;
        }
        return reply;
      } catch (err) {
        if (!(err instanceof PflexError) || err.code !== 'PFLEX_ERR_UNAVAILABLE') throw err;
        last = err.message;
        // The primary is gone: report it, as an SDC does, then retry on the new primary.
        await this.mdm.admin.fencePgMember(this.poolId, pg, primary.id, entry.epoch).then(
          (a) => { if (a.fenced) this.fencedPrimaries++; },
          () => undefined,
        );
        await this.refresh();
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    throw new Error(`chunk ${chunkIndex}: no answer after retries (last: ${last})`);
  }

  write(chunkIndex: number, offset: number, data: Buffer, flags = 0): Promise<Frame> {
    return this.send(chunkIndex, (c, a) => c.write(a, offset, data, this.token, flags));
  }

  read(chunkIndex: number, offset: number, length: number): Promise<Frame> {
    return this.send(chunkIndex, (c, a) => c.read(a, offset, length, this.token));
  }

  close(): void {
    this.clients.closeAll();
  }
}
