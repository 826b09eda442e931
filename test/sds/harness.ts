/**
 * In-process SDSs for tests: real DataServers on loopback over real file
 * stores, sharing one StaticPgMap in place of the MDM.
 */
import type { Test } from 'tap';
import { pino } from 'pino';
import { DataServer, type DataServerOptions } from '../../src/sds/data-server.js';
import { FileChunkStore } from '../../src/sds/store/file-store.js';
import { IdentityVolumeTrees } from '../../src/sds/volume-trees.js';
import { PgTable } from '../../src/sds/pg-table.js';
import { StaticPgMap } from '../../src/sds/static-pgmap.js';
import { DataClientPool } from '../../src/dataplane/client.js';
import { IoTokenVerifier, issueIoToken, type IoRights } from '../../src/shared/iotoken.js';
import { deriveKey } from '../../src/shared/keys.js';
import { tempDir } from '../helpers/proc.js';

export const CLUSTER_KEY = Buffer.alloc(32, 7);
export const IO_KEY = deriveKey(CLUSTER_KEY, 'io-token');

export function token(treeId: number, rights: IoRights = 'rw', expiresAtMs = Date.now() + 3_600_000): Buffer {
  return issueIoToken(IO_KEY, { sdcId: 1, volumeId: treeId, rights, expiresAtMs });
}

export interface TestSds {
  id: number;
  server: DataServer;
  store: FileChunkStore;
  root: string;
  port: number;
  peers: DataClientPool;
  stop(): Promise<void>;
}

export async function startSds(t: Test, id: number, map: StaticPgMap, forwardTimeoutMs = 4000, extra: Partial<DataServerOptions> = {}): Promise<TestSds> {
  const root = tempDir(t, `pflex-sds${id}-`);
  const store = await FileChunkStore.open({ root });
  const pgs = new PgTable(map);
  await pgs.refresh();
  const peers = new DataClientPool({ requestTimeoutMs: forwardTimeoutMs });
  const server = new DataServer({
    selfId: () => id, store, pgs, tokens: new IoTokenVerifier(IO_KEY), trees: new IdentityVolumeTrees(), peers, log: pino({ level: process.env.PFLEX_LOG_LEVEL ?? 'silent' }),
    ...extra,
  });
  const port = await server.listen(0, '127.0.0.1');
  map.sds.set(id, { id, address: '127.0.0.1', dataPort: port });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    peers.closeAll();
    await server.close();
    await store.close();
  };
  t.teardown(stop);
  return { id, server, store, root, port, peers, stop };
}
