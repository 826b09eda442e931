/**
 * The SDC's VolumeBackend against real in-process SDS data servers (file
 * stores, loopback) that share a StaticPgMap standing in for the MDM:
 * requests split at chunk boundaries and reassembled (a write in parts sent
 * as views), zeros and holes for
 * unwritten chunks, FLUSH sent to exactly the SDSs written since the last
 * flush, a stale map refreshed and retried, a dead primary reported and its
 * PGs served by the survivor, a resize or access change applied in place
 * to requests already allowed by an older size or access, an error after the IO timeout, and a piece
 * stuck on a silent primary re-sent once a newer map drops that primary.
 */
import t from 'tap';
import { pino } from 'pino';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { DataClientPool } from '../../src/dataplane/client.js';
import { NBD_ERRNO } from '../../src/nbd/constants.js';
import type { MdmClient, PgMap } from '../../src/shared/mdm-client.js';
import { pgOfChunk } from '../../src/shared/pg.js';
import { StaticPgMap } from '../../src/sds/static-pgmap.js';
import { PoolMap } from '../../src/sdc/pool-map.js';
import { VolumeToken } from '../../src/sdc/tokens.js';
import { VolumeBackend } from '../../src/sdc/volume-backend.js';
import { startSds, token, type TestSds } from '../sds/harness.js';

const CHUNK = 64 * 1024;
const PG_COUNT = 6;
const TREE = 7;
const log = pino({ level: process.env.PFLEX_LOG_LEVEL ?? 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the SDC asks of the MDM, answered from the StaticPgMap. */
function fakeMdm(map: StaticPgMap): MdmClient {
  const pgMap = (): PgMap => ({
    storagePoolId: 1, epoch: map.epoch, pgCount: PG_COUNT, replicationFactor: 2, chunkBytes: CHUNK, ready: true,
    pgs: [...map.pgs.values()].map((p) => ({ pg: p.pg, members: [...p.members], epoch: p.epoch })),
    sds: [...map.sds.values()].map((s) => ({ id: s.id, name: `sds${s.id}`, address: s.address, dataPort: s.dataPort, state: 'ACTIVE' })),
  }) as PgMap;
  return {
    getPgMap: async () => pgMap(),
    fencePgMember: async (_pool: number, pg: number, sdsId: number, epoch: number) => {
      const r = await map.fence(pg, sdsId, epoch);
      return { fenced: r.fenced, pg: r.entry, map: pgMap() };
    },
    issueIoToken: async () => ({ token: '', sdcId: 1, volumeId: TREE, rights: 'rw', expiresAtMs: Date.now() + 3_600_000, bytes: token(TREE) }),
  } as unknown as MdmClient;
}

/** Counts FLUSH requests the SDC sends, per SDS port. */
class CountingPool extends DataClientPool {
  readonly flushes = new Map<number, number>();
  override get(host: string, port: number) {
    const c = super.get(host, port);
    if (!(c as { counted?: boolean }).counted) {
      (c as { counted?: boolean }).counted = true;
      const flush = c.flush.bind(c);
      c.flush = (...args) => { this.flushes.set(port, (this.flushes.get(port) ?? 0) + 1); return flush(...args); };
    }
    return c;
  }
}

t.test('VolumeBackend over in-process SDSs', async (t) => {
  // PG p: primary sds (p % 3) + 1, secondary the next one.
  const map = new StaticPgMap(Array.from({ length: PG_COUNT }, (_, pg) => ({ pg, members: [(pg % 3) + 1, ((pg + 1) % 3) + 1] })));
  const sds: TestSds[] = [];
  for (const id of [1, 2, 3]) sds.push(await startSds(t, id, map));
  // SDSs learn peer addresses when they refresh: a new epoch for every PG makes each refresh on first use.
  for (const [pg, e] of [...map.pgs]) map.setMembers(pg, e.members);
  const mdm = fakeMdm(map);
  const clients = new CountingPool({ requestTimeoutMs: 2000 });
  t.teardown(() => clients.closeAll());
  const backend = new VolumeBackend(
    { id: TREE, name: 'v', treeId: TREE, layerId: 0, poolId: 1, sizeBytes: 64 * CHUNK, chunkBytes: CHUNK, readOnly: false },
    { map: new PoolMap(1, mdm, log), token: new VolumeToken(mdm, () => 1, TREE, log), clients, log, ioTimeoutMs: 4000 },
  );
  const primaryOf = (chunk: number) => map.pgs.get(pgOfChunk(TREE, chunk, PG_COUNT))!.members[0]!;
  const portOf = (id: number) => sds.find((s) => s.id === id)!.port;

  await t.test('a request across chunks is split and reassembled; unwritten bytes read as zeros', async (t) => {
    const data = randomBytes(2 * CHUNK + 1000);
    await backend.write(CHUNK - 500, data, { fua: false });
    t.same(await backend.read(CHUNK - 500, data.length), data, 'read back across three chunks');
    t.same(await backend.read(CHUNK - 600, 100), Buffer.alloc(100), 'zeros before the write');
    t.same(await backend.read(40 * CHUNK, 3 * CHUNK), Buffer.alloc(3 * CHUNK), 'zeros in unwritten chunks');
    const ext = await backend.blockStatus(0, 8 * CHUNK);
    t.same(ext.map((e) => e.hole), [false, true], 'chunks 0-3 written are data, the rest holes');
    t.same(ext.map((e) => e.length), [4 * CHUNK, 4 * CHUNK]);
  });

  await t.test('writev: a payload in parts (as it came off the NBD socket) lands as the joined bytes; readv returns the pieces', async (t) => {
    const data = randomBytes(3 * CHUNK);
    // Part boundaries that fall inside, on and across chunk boundaries.
    const cuts = [0, 7, CHUNK - 300, CHUNK - 300 + 1, CHUNK + 300, 2 * CHUNK - 300, 2 * CHUNK + 4096, data.length];
    const parts = cuts.slice(1).map((end, i) => data.subarray(cuts[i]!, end));
    const at = 20 * CHUNK + 300;
    await backend.writev(at, parts, { fua: false });
    t.same(await backend.read(at, data.length), data, 'read back as written');
    const pieces = await backend.readv(at, data.length);
    t.equal(pieces.length, 4, 'one buffer per chunk piece');
    t.same(Buffer.concat(pieces), data, 'the pieces in order are the bytes');
    t.same(await backend.read(at - 300, 300), Buffer.alloc(300), 'bytes before the write untouched');
  });

  await t.test('FLUSH goes to exactly the SDSs written since the last flush', async (t) => {
    await backend.flush();
    clients.flushes.clear();
    // Chunks whose primary is sds 2 only.
    const chunks = Array.from({ length: 60 }, (_, i) => i).filter((c) => primaryOf(c) === 2).slice(0, 3);
    for (const c of chunks) await backend.write(c * CHUNK + 10, Buffer.alloc(100, 1), { fua: false });
    await backend.flush();
    t.same([...clients.flushes.entries()], [[portOf(2), 1]], 'one FLUSH, to sds 2');
    clients.flushes.clear();
    await backend.flush();
    t.equal(clients.flushes.size, 0, 'nothing written since: no FLUSH');
    await backend.write(chunks[0]! * CHUNK, Buffer.alloc(10, 2), { fua: true });
    await backend.flush();
    t.equal(clients.flushes.size, 0, 'a FUA write needs no later FLUSH');
  });

  await t.test('replica reads: spread over both members of each PG, same bytes as written', async (t) => {
    const spread = new VolumeBackend(
      { id: TREE, name: 'v', treeId: TREE, layerId: 0, poolId: 1, sizeBytes: 64 * CHUNK, chunkBytes: CHUNK, readOnly: false },
      { map: new PoolMap(1, mdm, log), token: new VolumeToken(mdm, () => 1, TREE, log), clients, log, ioTimeoutMs: 4000, replicaReads: true },
    );
    const data = randomBytes(12 * CHUNK);
    await backend.write(16 * CHUNK, data, { fua: false });
    for (const s of sds) await s.server.opts.pgs.refresh();
    const before = sds.map((s) => s.server.metrics.replicaReads);
    for (let i = 0; i < 2; i++) t.ok((await spread.read(16 * CHUNK, data.length)).equals(data), `pass ${i + 1}: every byte as written`);
    const served = sds.map((s, i) => s.server.metrics.replicaReads - before[i]!);
    t.ok(spread.stats.replicaReads > 0, `${spread.stats.replicaReads} pieces served by secondaries (${spread.stats.replicaFallbacks} sent on to the primary)`);
    t.equal(served.reduce((a, b) => a + b, 0), spread.stats.replicaReads, 'the SDSs counted the same replica reads');
  });

  await t.test('update(): a new size and access apply at once to what connections opened earlier send', async (t) => {
    const v = new VolumeBackend(
      { id: TREE, name: 'v', treeId: TREE, layerId: 0, poolId: 1, sizeBytes: 64 * CHUNK, chunkBytes: CHUNK, readOnly: false },
      { map: new PoolMap(1, mdm, log), token: new VolumeToken(mdm, () => 1, TREE, log), clients, log, ioTimeoutMs: 4000 },
    );
    const data = randomBytes(4096);
    await v.write(40 * CHUNK, data, { fua: false });
    v.update({ name: 'v2', sizeBytes: 32 * CHUNK, readOnly: false });
    t.equal(v.size, 32 * CHUNK, 'the new size is what new connections are told');
    await t.rejects(v.read(40 * CHUNK, 4096), { errno: NBD_ERRNO.EINVAL, message: /beyond the end of volume v2/ }, 'a read past the new end is refused');
    await t.rejects(v.write(40 * CHUNK, data, { fua: false }), { name: 'NbdError', errno: NBD_ERRNO.ENOSPC }, 'so is a write');
    await t.rejects(v.trim(31 * CHUNK, 2 * CHUNK, { fua: false }), { name: 'NbdError', errno: NBD_ERRNO.ENOSPC }, 'and a trim across the new end');
    v.update({ name: 'v2', sizeBytes: 64 * CHUNK, readOnly: true });
    t.ok(v.capabilities.readOnly, 'read-only is what new connections are told');
    t.ok((await v.read(40 * CHUNK, 4096)).equals(data), 'grown again: the bytes are still there');
    await t.rejects(v.write(0, data, { fua: false }), { errno: NBD_ERRNO.EPERM, message: /mapped read-only/ }, 'a write on read-only access is refused');
    await t.rejects(v.zero(0, 4096, { fua: false, mayTrim: true, fast: false }), { name: 'NbdError', errno: NBD_ERRNO.EPERM }, 'so is a zero');
    const o = v.stats.ops;
    t.same([o.read.errors, o.write.errors, o.trim.errors, o.zero.errors], [1, 2, 1, 1], 'each refusal counts as an error of its operation');
    v.update({ name: 'v2', sizeBytes: 64 * CHUNK, readOnly: false });
    await v.write(0, data, { fua: false });
    t.ok((await v.read(0, 4096)).equals(data), 'read-write again: writes go through');
  });

  await t.test('a map change the SDC has not seen: refreshed and retried', async (t) => {
    const chunk = 5;
    const pg = pgOfChunk(TREE, chunk, PG_COUNT);
    const before = map.pgs.get(pg)!.members;
    map.setMembers(pg, [before[1]!, before[0]!]); // swap primary and secondary
    const data = randomBytes(3000);
    await backend.write(chunk * CHUNK + 77, data, { fua: false });
    t.same(await backend.read(chunk * CHUNK + 77, data.length), data, 'written and read at the new primary');
    t.ok(backend.stats.retries > 0, 'after a retry');
  });

  await t.test('a dead primary is reported; its PGs are served by the survivor', async (t) => {
    const victim = sds.find((s) => s.id === 1)!;
    const chunks = Array.from({ length: 60 }, (_, i) => i).filter((c) => primaryOf(c) === 1).slice(0, 4);
    const data = chunks.map(() => randomBytes(5000));
    await Promise.all(chunks.map((c, i) => backend.write(c * CHUNK, data[i]!, { fua: false })));
    // A crash: connections cut, nothing else (a graceful stop would also close its peer connections).
    await victim.server.close();
    const fencesBefore = map.fenceCalls;
    for (const [i, c] of chunks.entries()) t.same(await backend.read(c * CHUNK, 5000), data[i], `chunk ${c} reads back from the survivor`);
    t.ok(map.fenceCalls > fencesBefore, 'the dead primary was reported');
    t.ok(chunks.every((c) => primaryOf(c) !== 1), 'no PG of these chunks is led by the dead SDS');
    await backend.write(chunks[0]! * CHUNK, Buffer.alloc(10, 3), { fua: false });
    await backend.flush();
    t.pass('a flush after the loss succeeds');
  });

  await t.test('with every replica of a PG gone, IO fails after the timeout', async (t) => {
    for (const s of sds) await s.stop();
    await t.rejects(backend.read(0, 4096), { code: 'PFLEX_ERR_UNAVAILABLE' }, 'EIO after ioTimeoutMs');
    t.ok(backend.stats.ops.read.errors > 0);
  });
});

t.test('a piece waiting on a primary that a newer map dropped from its PG is re-sent at once', async (t) => {
  // SDS 9 is silent: it accepts connections and never answers (a partitioned or stopped SDS).
  const silent = net.createServer((s) => { s.on('error', () => undefined); s.on('data', (d: Buffer) => { silentBytes += d.length; }); silentSockets.push(s); });
  let silentBytes = 0;
  const silentSockets: net.Socket[] = [];
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  t.teardown(() => { for (const s of silentSockets) s.destroy(); silent.close(); });
  const map = new StaticPgMap(Array.from({ length: PG_COUNT }, (_, pg) => ({ pg, members: [1, 2] })));
  for (const id of [1, 2]) await startSds(t, id, map);
  map.sds.set(9, { id: 9, address: '127.0.0.1', dataPort: (silent.address() as net.AddressInfo).port });
  const chunk = 3;
  const pg = pgOfChunk(TREE, chunk, PG_COUNT);
  map.setMembers(pg, [9, 1]);
  for (const [p, e] of [...map.pgs]) if (p !== pg) map.setMembers(p, e.members);
  const mdm = fakeMdm(map);
  // No liveness check and long timeouts: only the map change can free the piece in time.
  const clients = new DataClientPool({ requestTimeoutMs: 60_000, livenessSilenceMs: 0 });
  t.teardown(() => clients.closeAll());
  const poolMap = new PoolMap(1, mdm, log);
  const backend = new VolumeBackend(
    { id: TREE, name: 'v', treeId: TREE, layerId: 0, poolId: 1, sizeBytes: 64 * CHUNK, chunkBytes: CHUNK, readOnly: false },
    { map: poolMap, token: new VolumeToken(mdm, () => 1, TREE, log), clients, log, ioTimeoutMs: 60_000 },
  );
  const data = randomBytes(8192);
  let done = false;
  const write = backend.write(chunk * CHUNK + 512, data, { fua: false }).then(() => { done = true; });
  while (silentBytes < data.length) await sleep(20);
  t.pass('the write reached the silent primary');

  map.setMembers(pg, [9, 2]);
  await poolMap.refresh();
  await sleep(300);
  t.notOk(done, 'a new epoch with the same primary does not abandon the piece');
  const e = map.setMembers(pg, [1, 9]);
  await poolMap.refresh();
  await sleep(300);
  t.notOk(done, 'nor does a new primary while the old one is still a member');
  t.equal(backend.stats.piecesAbandoned, 0);

  // Someone else (a primary that missed a forward, or the MDM evicting a DOWN SDS) drops SDS 9.
  await map.fence(pg, 9, e.epoch);
  const started = Date.now();
  await poolMap.refresh();
  await write;
  t.comment(`write completed ${Date.now() - started} ms after the map change`);
  t.equal(backend.stats.piecesAbandoned, 1, 'the piece was abandoned once');
  t.equal(backend.stats.primariesReported, 0, 'nothing to report: the map had already moved');
  t.same(await backend.read(chunk * CHUNK + 512, data.length), data, 'the write is on the new primary');
});
