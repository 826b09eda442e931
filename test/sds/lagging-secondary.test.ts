/**
 * A secondary whose PG map lags the primary's answers EPOCH_AHEAD; the
 * primary gives it time to catch up (forwards again with backoff) instead of
 * fencing a healthy replica, and fences it only when it is still behind after
 * the bound. Two in-process SDSs on loopback with real file stores; the
 * secondary's map source can be held back (as when its MDM fetch is lost).
 */
import t, { type Test } from 'tap';
import { pino } from 'pino';
import { DataServer } from '../../src/sds/data-server.js';
import { FileChunkStore } from '../../src/sds/store/file-store.js';
import { IdentityVolumeTrees } from '../../src/sds/volume-trees.js';
import { PgTable, type FenceResult, type PgMapSource, type PgMapUpdate } from '../../src/sds/pg-table.js';
import { StaticPgMap } from '../../src/sds/static-pgmap.js';
import { DataClient, DataClientPool } from '../../src/dataplane/client.js';
import { statusName } from '../../src/dataplane/proto.js';
import { IoTokenVerifier } from '../../src/shared/iotoken.js';
import { tempDir } from '../helpers/proc.js';
import { IO_KEY, token } from './harness.js';

const TREE = 5;

/** The MDM as one SDS sees it: while held, fetches answer the map as it was when hold() was called. */
class HeldSource implements PgMapSource {
  private held: PgMapUpdate | undefined;
  fetches = 0;

  constructor(private readonly map: StaticPgMap) {}

  async hold(): Promise<void> {
    this.held = await this.map.fetch(undefined);
  }

  release(): void {
    this.held = undefined;
  }

  async fetch(since: number | undefined): Promise<PgMapUpdate> {
    this.fetches++;
    return this.held ?? this.map.fetch(since);
  }

  fence(pg: number, sdsId: number, epoch: number): Promise<FenceResult> {
    return this.map.fence(pg, sdsId, epoch);
  }
}

async function startServer(t: Test, id: number, map: StaticPgMap, source: PgMapSource, forwardCatchUpMs?: number): Promise<{ server: DataServer; store: FileChunkStore; port: number; pgs: PgTable }> {
  const store = await FileChunkStore.open({ root: tempDir(t, `pflex-lag-sds${id}-`) });
  const pgs = new PgTable(source);
  const peers = new DataClientPool({ requestTimeoutMs: 4000 });
  const server = new DataServer({
    selfId: () => id, store, pgs, tokens: new IoTokenVerifier(IO_KEY), trees: new IdentityVolumeTrees(), peers,
    log: pino({ level: process.env.PFLEX_LOG_LEVEL ?? 'silent' }), ...(forwardCatchUpMs !== undefined ? { forwardCatchUpMs } : {}),
  });
  const port = await server.listen(0, '127.0.0.1');
  map.sds.set(id, { id, address: '127.0.0.1', dataPort: port });
  t.teardown(async () => {
    peers.closeAll();
    await server.close();
    await store.close();
  });
  return { server, store, port, pgs };
}

async function pair(t: Test, forwardCatchUpMs?: number) {
  const map = new StaticPgMap([{ pg: 0, members: [1, 2] }]);
  const lagging = new HeldSource(map);
  const primary = await startServer(t, 1, map, map, forwardCatchUpMs);
  const secondary = await startServer(t, 2, map, lagging);
  await primary.pgs.refresh();
  await secondary.pgs.refresh();
  const client = new DataClient({ host: '127.0.0.1', port: primary.port, requestTimeoutMs: 15_000 });
  t.teardown(() => client.close());
  // A map change the secondary cannot learn yet: same members, new epoch (as when a joining member is added elsewhere).
  await lagging.hold();
  const e = map.setMembers(0, [1, 2]);
  await primary.pgs.refresh();
  const write = (data: Buffer) => client.write({ pgId: 0, epoch: e.epoch, volumeId: TREE, treeId: TREE, chunkIndex: 0, layerId: 0 }, 0, data, token(TREE));
  return { map, lagging, primary, secondary, write, epoch: e.epoch };
}

t.test('a secondary that catches up within the bound is waited for, not fenced', async (t) => {
  const p = await pair(t);
  setTimeout(() => p.lagging.release(), 300);
  const data = Buffer.alloc(4096, 7);
  const started = Date.now();
  const reply = await p.write(data);
  t.equal(statusName(reply.status), 'OK', 'the write is acknowledged');
  t.ok(Date.now() - started >= 250, `it waited for the secondary (${Date.now() - started} ms)`);
  t.equal(p.map.fenceCalls, 0, 'nobody asked the MDM to fence');
  t.same(p.map.pgs.get(0)!.members, [1, 2], 'both members stay');
  t.ok(p.lagging.fetches > 2, `the secondary refreshed its map on the newer epochs (${p.lagging.fetches} fetches)`);
  const held = await p.secondary.store.read(0, { treeId: TREE, chunkIndex: 0, layerId: 0 }, 0, data.length);
  t.ok(held?.equals(data), 'the secondary holds the write');
});

t.test('a secondary still behind after the bound is fenced, and the write is acknowledged', async (t) => {
  const p = await pair(t, 600);
  const started = Date.now();
  const reply = await p.write(Buffer.alloc(4096, 9));
  const tookMs = Date.now() - started;
  t.equal(statusName(reply.status), 'OK', 'the write is acknowledged once the secondary is out');
  t.ok(tookMs >= 550, `the primary gave it the bound first (${tookMs} ms)`);
  t.equal(p.map.fenceCalls, 1, 'one fence');
  t.same(p.map.pgs.get(0)!.members, [1], 'the lagging secondary left the PG');
});
