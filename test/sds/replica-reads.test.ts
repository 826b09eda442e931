/**
 * Replica reads (docs/sds.md "Replica reads"): an acting secondary serves a
 * READ flagged REPLICA_READ only at the PG's current epoch and while its map
 * is confirmed by the MDM within the read lease; a joining or removed member
 * refuses; a primary that learned of a member's removal holds write
 * acknowledgements until the removed member's lease ran out, so a write
 * acknowledged after the removal is never missing from a replica that still
 * serves reads. Real DataServers and file stores on loopback; a StaticPgMap
 * stands in for the MDM.
 */
import t, { type Test as Tap } from 'tap';
import { randomBytes } from 'node:crypto';
import { DataClient } from '../../src/dataplane/client.js';
import { Flag, Status, statusName, type Frame } from '../../src/dataplane/proto.js';
import { StaticPgMap } from '../../src/sds/static-pgmap.js';
import { startSds, token, type TestSds } from './harness.js';

const TREE = 5;
const LEASE_MS = 1_000;
const tok = token(TREE);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function cluster(t: Tap): Promise<{ map: StaticPgMap; sds: TestSds[]; client: (id: number) => DataClient }> {
  const map = new StaticPgMap([{ pg: 0, members: [1, 2, 3] }]);
  const sds: TestSds[] = [];
  for (const id of [1, 2, 3]) sds.push(await startSds(t, id, map, 4000, { replicaReadLeaseMs: LEASE_MS }));
  for (const s of sds) await s.server.opts.pgs.refresh();
  const clients = new Map<number, DataClient>();
  for (const s of sds) {
    const c = new DataClient({ host: '127.0.0.1', port: s.port, requestTimeoutMs: 10_000 });
    clients.set(s.id, c);
    t.teardown(() => c.close());
  }
  return { map, sds, client: (id) => clients.get(id)! };
}

const key = (epoch: number) => ({ pgId: 0, epoch, volumeId: TREE, treeId: TREE, chunkIndex: 0, layerId: 0 });

function read(c: DataClient, epoch: number, length: number, flags: number): Promise<Frame> {
  return c.read(key(epoch), 0, length, tok, flags);
}

t.test('an acting secondary serves a replica read at the current epoch; not otherwise', async (t) => {
  const { map, sds, client } = await cluster(t);
  const data = randomBytes(8192);
  const w = await client(1).write(key(map.epoch), 0, data, tok);
  t.equal(statusName(w.status), 'OK', 'written through the primary');
  for (const id of [2, 3]) {
    const r = await read(client(id), map.epoch, data.length, Flag.REPLICA_READ);
    t.equal(statusName(r.status), 'OK', `secondary ${id} serves it`);
    t.ok(r.payload.equals(data), `secondary ${id} returns the acknowledged write`);
  }
  t.equal(sds[1]!.server.metrics.replicaReads, 1, 'counted as a replica read');
  t.equal(statusName((await read(client(2), map.epoch, 10, 0)).status), 'NOT_PRIMARY', 'without the flag a secondary still refuses');
  t.equal(statusName((await read(client(2), map.epoch - 1, 10, Flag.REPLICA_READ)).status), 'STALE_EPOCH', 'an older epoch is refused');
  t.equal(statusName((await read(client(2), map.epoch + 1, 10, Flag.REPLICA_READ)).status), 'EPOCH_AHEAD', 'a newer epoch than it knows is refused');
  const wr = await client(2).write(key(map.epoch), 0, data, tok, Flag.REPLICA_READ);
  t.equal(statusName(wr.status), 'NOT_PRIMARY', 'the flag does not open writes to a secondary');
});

t.test('a secondary whose map is not confirmed within the lease refuses until it refreshes', async (t) => {
  const { map, sds, client } = await cluster(t);
  await client(1).write(key(map.epoch), 0, Buffer.alloc(4096, 1), tok);
  await sleep(LEASE_MS + 200);
  t.equal(statusName((await read(client(3), map.epoch, 4096, Flag.REPLICA_READ)).status), 'NOT_PRIMARY', 'lease run out: refused');
  await sds[2]!.server.opts.pgs.refresh();
  const r = await read(client(3), map.epoch, 4096, Flag.REPLICA_READ);
  t.equal(statusName(r.status), 'OK', 'served again once the map is confirmed');
  t.ok(r.payload.equals(Buffer.alloc(4096, 1)));
});

t.test('a removed member cannot serve a read that misses a write acknowledged after its removal', async (t) => {
  const { map, sds, client } = await cluster(t);
  const oldEpoch = map.epoch;
  await client(1).write(key(oldEpoch), 0, Buffer.alloc(4096, 1), tok);
  // SDS 3 confirms its map just before the MDM takes it out, then hears nothing more (cut off from the MDM).
  await sds[2]!.server.opts.pgs.refresh();
  map.setMembers(0, [1, 2]);
  await sds[0]!.server.opts.pgs.refresh();
  await sds[1]!.server.opts.pgs.refresh();
  const w = await client(1).write(key(map.epoch), 0, Buffer.alloc(4096, 2), tok);
  t.equal(statusName(w.status), 'OK', 'the write at the new epoch is acknowledged');
  // Right after that acknowledgement SDS 3 (still at the old epoch in its own view) must not serve the old bytes.
  const stale = await read(client(3), oldEpoch, 4096, Flag.REPLICA_READ);
  t.not(stale.status, Status.OK, `the removed member refuses (${statusName(stale.status)})`);
  await sds[1]!.server.opts.pgs.refresh(); // the hold outlasted its own lease too (no poll loop in this harness)
  const fresh = await read(client(2), map.epoch, 4096, Flag.REPLICA_READ);
  t.equal(statusName(fresh.status), 'OK', 'the remaining secondary serves it');
  t.ok(fresh.payload.equals(Buffer.alloc(4096, 2)), 'with the acknowledged write');
});

t.test('a joining member refuses replica reads', async (t) => {
  const { map, sds, client } = await cluster(t);
  map.epoch++;
  map.pgs.set(0, { pg: 0, members: [1, 2], joining: [3], epoch: map.epoch });
  for (const s of sds) await s.server.opts.pgs.refresh();
  t.equal(statusName((await read(client(3), map.epoch, 4096, Flag.REPLICA_READ)).status), 'NOT_PRIMARY');
  t.equal(statusName((await read(client(2), map.epoch, 4096, Flag.REPLICA_READ)).status), 'NO_CHUNK', 'an acting secondary answers (nothing written)');
});
