/**
 * Replication among three in-process SDSs (real sockets, real file stores)
 * with an in-memory PG map standing in for the MDM. The same rules are
 * exercised across processes with a real MDM in sds-process.test.ts.
 */
import t, { type Test as Tap } from 'tap';
import { readFileSync, readdirSync, existsSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { DataClient } from '../../src/dataplane/client.js';
import { statusName, Flag } from '../../src/dataplane/proto.js';
import { StaticPgMap } from '../../src/sds/static-pgmap.js';
import { CHUNK_FILE_SUFFIX, dataPosition } from '../../src/sds/store/chunk-file-layout.js';
import { Rng } from './rng.js';
import { startSds, token, type TestSds } from './harness.js';

const TREE = 9;
const PGS = 6;

async function cluster(t: Tap, forwardTimeoutMs = 4000): Promise<{ map: StaticPgMap; sds: TestSds[] }> {
  // RF 2 over three SDSs: every ordered pair appears once.
  const pairs = [[1, 2], [2, 3], [3, 1], [2, 1], [3, 2], [1, 3]];
  const map = new StaticPgMap(pairs.slice(0, PGS).map((members, pg) => ({ pg, members })));
  const sds = [];
  for (const id of [1, 2, 3]) sds.push(await startSds(t, id, map, forwardTimeoutMs));
  for (const s of sds) await s.server.opts.pgs.refresh();
  return { map, sds };
}

/** One data client per SDS, routing by the map like an SDC would. */
function router(t: Tap, map: StaticPgMap, sds: TestSds[]) {
  const clients = new Map<number, DataClient>();
  for (const s of sds) {
    const c = new DataClient({ host: '127.0.0.1', port: s.port, requestTimeoutMs: 10000 });
    clients.set(s.id, c);
    t.teardown(() => c.close());
  }
  const tok = token(TREE);
  return {
    async write(pg: number, chunkIndex: number, offset: number, data: Buffer, flags = 0): Promise<void> {
      for (let attempt = 0; attempt < 5; attempt++) {
        const e = map.pgs.get(pg)!;
        const r = await clients.get(e.members[0]!)!.write({ pgId: pg, epoch: e.epoch, volumeId: TREE, treeId: TREE, chunkIndex, layerId: 0 }, offset, data, tok, flags);
        if (r.status === 0) return;
        if (statusName(r.status) !== 'STALE_EPOCH') throw new Error(`write failed: ${statusName(r.status)}`);
      }
      throw new Error('write kept failing with STALE_EPOCH');
    },
    async read(pg: number, chunkIndex: number, offset: number, length: number) {
      const e = map.pgs.get(pg)!;
      return clients.get(e.members[0]!)!.read({ pgId: pg, epoch: e.epoch, volumeId: TREE, treeId: TREE, chunkIndex, layerId: 0 }, offset, length, tok);
    },
    async flush(pg: number) {
      const e = map.pgs.get(pg)!;
      return clients.get(e.members[0]!)!.flush({ pgId: pg, epoch: e.epoch, volumeId: TREE, treeId: TREE, chunkIndex: 0, layerId: 0 }, tok);
    },
  };
}

/** Chunk files of a PG on one SDS, name -> bytes (data and checksums). */
function pgFiles(s: TestSds, pg: number): Map<string, Buffer> {
  const dir = join(s.root, `pg-${pg}`);
  const out = new Map<string, Buffer>();
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) out.set(name, readFileSync(join(dir, name)));
  return out;
}

t.test('after random writes the replicas of every PG are byte-identical on disk', async (t) => {
  const seed = Number(process.env.PFLEX_SEED ?? Date.now() % 1e9);
  t.comment(`seed ${seed}`);
  const rng = new Rng(seed);
  const { map, sds } = await cluster(t);
  const io = router(t, map, sds);
  const pending = [];
  for (let i = 0; i < 400; i++) {
    const pg = rng.int(PGS);
    const len = 1 + rng.int(rng.int(3) === 0 ? 200000 : 5000);
    const off = rng.int(1024 * 1024 - len);
    pending.push(io.write(pg, rng.int(4), off, rng.bytes(len), rng.int(10) === 0 ? Flag.FUA : 0));
    if (pending.length >= 32) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  t.equal((await io.flush(0)).status, 0, 'flush');
  for (let pg = 0; pg < PGS; pg++) {
    const [a, b] = map.pgs.get(pg)!.members.map((id) => pgFiles(sds[id - 1]!, pg));
    t.ok(a!.size > 0, `pg ${pg} has chunks`);
    t.same([...a!.keys()], [...b!.keys()], `pg ${pg}: same chunk files`);
    const diff = [...a!].filter(([name, buf]) => !buf.equals(b!.get(name)!)).map(([n]) => n);
    t.same(diff, [], `pg ${pg}: identical bytes`);
    const third = sds.find((s) => !map.pgs.get(pg)!.members.includes(s.id))!;
    t.equal(pgFiles(third, pg).size, 0, `pg ${pg}: nothing on the non-member`);
  }
});

t.test('a secondary that dies mid-stream is fenced; writes keep being acknowledged and none is lost', async (t) => {
  const { map, sds } = await cluster(t, 4000);
  const io = router(t, map, sds);
  const rng = new Rng(7);
  const acked: Array<{ pg: number; chunk: number; off: number; data: Buffer }> = [];
  let killed = false;
  const victim = sds[1]!; // SDS 2: secondary of PGs 0 and 3, primary of PGs 1 and 4
  const pgsOnSurvivors = [0, 2, 5]; // PGs whose primary survives
  for (let round = 0; round < 20; round++) {
    if (round === 8) { await victim.stop(); killed = true; }
    const batch = [];
    for (let i = 0; i < 10; i++) {
      const pg = pgsOnSurvivors[rng.int(pgsOnSurvivors.length)]!;
      const w = { pg, chunk: round, off: i * 4096, data: rng.bytes(4096) };
      batch.push(io.write(w.pg, w.chunk, w.off, w.data).then(() => acked.push(w)));
    }
    await Promise.all(batch);
  }
  t.ok(killed);
  t.equal(acked.length, 200, 'every write was acknowledged');
  t.same(map.pgs.get(0)!.members, [1], 'the dead secondary left PG 0');
  t.same(map.pgs.get(2)!.members, [3, 1], 'PGs without it keep their members');
  t.ok(map.fenceCalls >= 1 && map.fenceCalls <= 4, `fenced once per PG (calls: ${map.fenceCalls})`);
  for (const w of acked) {
    const r = await io.read(w.pg, w.chunk, w.off, w.data.length);
    if (r.status !== 0 || !r.payload.equals(w.data)) { t.fail(`acknowledged write lost: pg ${w.pg} chunk ${w.chunk} @${w.off}`); return; }
  }
  t.pass('every acknowledged write reads back from the survivors');
  // ...and is on disk on every remaining replica.
  const s3 = pgFiles(sds[2]!, 2);
  const s1 = pgFiles(sds[0]!, 2);
  t.same([...s3.keys()], [...s1.keys()]);
  t.ok([...s3].every(([n, b]) => b.equals(s1.get(n)!)), 'PG 2 replicas identical after the failure');
});

t.test('FLUSH reaches the secondaries; one that cannot flush is fenced', async (t) => {
  const { map, sds } = await cluster(t);
  const io = router(t, map, sds);
  await io.write(0, 0, 0, Buffer.alloc(8192, 7)); // PG 0 = [1, 2]
  await io.write(2, 0, 0, Buffer.alloc(8192, 8)); // PG 2 = [3, 1]
  t.equal((await io.flush(0)).status, 0, 'flush with every secondary alive');
  t.equal(sds[0]!.server.metrics.forwarded >= 2, true, 'the write and the flush were forwarded');
  await io.write(0, 1, 0, Buffer.alloc(4096, 9));
  await sds[1]!.stop(); // SDS 2 owes a flush for PG 0
  t.equal((await io.flush(0)).status, 0, 'flush succeeds once the dead secondary is fenced');
  t.same(map.pgs.get(0)!.members, [1], 'SDS 2 left PG 0');
  t.same(map.pgs.get(2)!.members, [3, 1], 'PG 2 (not owing SDS 2 anything) unchanged');
});

t.test('a flipped byte in a chunk file fails the read with IO_ERROR, never corrupt data', async (t) => {
  const { map, sds } = await cluster(t);
  const io = router(t, map, sds);
  await io.write(0, 0, 0, Buffer.alloc(16384, 0x33));
  await io.flush(0);
  const primary = sds[map.pgs.get(0)!.members[0]! - 1]!;
  const path = join(primary.root, 'pg-0', `${TREE}-0-0${CHUNK_FILE_SUFFIX}`);
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from([0x34]), 0, 1, dataPosition(5000));
  closeSync(fd);
  const bad = await io.read(0, 0, 4096, 4096);
  t.equal(statusName(bad.status), 'IO_ERROR');
  t.equal(bad.payload.length > 0 && bad.payload.toString().includes('checksum'), true, 'the error says why');
  t.equal(statusName((await io.read(0, 0, 8192, 4096)).status), 'OK', 'other blocks still read');
  t.equal(primary.server.metrics.errorReplies >= 1, true);
});
