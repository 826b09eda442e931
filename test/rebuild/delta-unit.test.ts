/**
 * The delta copy in one process, on real file stores and the real control
 * listener on loopback (no MDM): a joining member holding old chunks of the
 * PG ends with exactly the primary's chunks; identical ones are not sent,
 * differing, larger, missing and unreadable ones are, ones the primary no
 * longer has are removed. The whole copy still works (delta off, or a
 * joining member without join-keep). And what a former member keeps of a
 * PG it left (keepStale, dropIfNotMember). And the first write of a chunk
 * into a new layer (after a snapshot) that reaches the joining member
 * before the ancestor chunk its copy-on-write needs.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { controlAuthorization } from '../../src/shared/control-auth.js';
import { generateClusterKey } from '../../src/shared/component-auth.js';
import { createLogger } from '../../src/shared/logger.js';
import { buildControlServer } from '../../src/sds/control-server.js';
import type { DataServer } from '../../src/sds/data-server.js';
import { PgTable, type PgEntry } from '../../src/sds/pg-table.js';
import type { SdsRebuildStatus } from '../../src/dataplane/rebuild-proto.js';
import { rebuildStaleKeepMs, rebuildStartLockedTimeoutMs } from '../../src/sds/rebuild-limits.js';
import { dropIfNotMember, keepStale, rebuildRoutes } from '../../src/sds/rebuild-routes.js';
import { chunkLockKey, pgLockKey, RebuildRunner } from '../../src/sds/rebuild.js';
import { LayeredChunks } from '../../src/sds/layered.js';
import { StaticPgMap } from '../../src/sds/static-pgmap.js';
import { FileChunkStore } from '../../src/sds/store/file-store.js';
import { dataPosition } from '../../src/sds/store/chunk-file-layout.js';
import { KeyedRwLock } from '../../src/sds/store/rw-lock.js';
import { SdsMetrics } from '../../src/sds/metrics.js';
import { chunkName, type ChunkKey } from '../../src/sds/store/chunk-store.js';
import { tempDir } from '../helpers/proc.js';

const KiB = 1024;
const PG = 3;
const log = createLogger('test', { level: 'silent' });
const key = (i: number): ChunkKey => ({ treeId: 7, chunkIndex: i, layerId: 0 });
const fakeServer = (): DataServer => ({ locks: new KeyedRwLock(), inflightBytes: 0, metrics: new SdsMetrics() }) as unknown as DataServer;

interface Pair {
  primary: FileChunkStore;
  joiner: FileChunkStore;
  runner: RebuildRunner;
  controlPort: number;
  joined: PgEntry[];
  clusterKey: Buffer;
  server: DataServer;
}

/** SDS 1 is the primary of PG 3, SDS 2 joins it; the joining member's control listener is real. */
async function pair(t: Test, opts: { delta?: boolean; withoutKeep?: boolean; silentLockedStart?: boolean } = {}): Promise<Pair> {
  const dir = tempDir(t, 'pflex-delta-');
  const primary = await FileChunkStore.open({ root: join(dir, 'p') });
  const joiner = await FileChunkStore.open({ root: join(dir, 'j') });
  t.teardown(() => Promise.all([primary.close(), joiner.close()]));
  const map = new StaticPgMap([{ pg: PG, members: [1] }], []);
  map.epoch++;
  map.pgs.set(PG, { pg: PG, members: [1], joining: [2], epoch: map.epoch });
  const pPgs = new PgTable(map);
  const jPgs = new PgTable(map);
  await Promise.all([pPgs.refresh(), jPgs.refresh()]);
  const clusterKey = generateClusterKey();
  const jServer = fakeServer();
  const control = buildControlServer({ store: joiner, clusterKey, caller: 'sds:j', log });
  if (opts.withoutKeep) {
    control.addHook('onRequest', async (req, reply) => {
      if (req.url.endsWith('/join-keep')) await reply.status(404).send({ error: 'no such route' });
    });
  }
  if (opts.silentLockedStart) {
    // Answers the first start (outside the primary's PG lock), then goes silent for the second (under it).
    let starts = 0;
    control.addHook('onRequest', async (req) => {
      if (req.url.endsWith('/join-keep') && ++starts === 2) await new Promise((r) => setTimeout(r, rebuildStartLockedTimeoutMs + 2000));
    });
  }
  const joinerRunner = new RebuildRunner({ selfId: () => 2, store: joiner, pgs: jPgs, server: jServer, clusterKey, caller: 'sds:j', log, join: () => Promise.reject(new Error('unused')) });
  await control.register(rebuildRoutes({ selfId: () => 2, store: joiner, pgs: jPgs, server: jServer, runner: joinerRunner, log }));
  await control.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => control.close());
  const controlPort = (control.server.address() as { port: number }).port;
  const joined: PgEntry[] = [];
  const pServer = fakeServer();
  const runner = new RebuildRunner({
    selfId: () => 1, store: primary, pgs: pPgs, server: pServer, clusterKey, caller: 'sds:p', log, ...(opts.delta === false ? { delta: false } : {}),
    join: async (_pool, pg, sdsId, epoch) => {
      const e = { pg, members: [1, sdsId], joining: [], epoch: epoch + 1 };
      joined.push(e);
      return e;
    },
  });
  return { primary, joiner, runner, controlPort, joined, clusterKey, server: pServer };
}

async function copy(p: Pair): Promise<SdsRebuildStatus> {
  const epoch = 2;
  p.runner.start({ jobId: 1, poolId: 1, pg: PG, epoch, target: { sdsId: 2, address: '127.0.0.1', controlPort: p.controlPort }, bandwidthBytesPerS: 1024 ** 3 });
  for (;;) {
    const s = p.runner.list()[0]!;
    if (s.state !== 'running') return s;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Every chunk of the PG on both stores, with its bytes. */
async function contents(s: FileChunkStore): Promise<Map<number, Buffer>> {
  const out = new Map<number, Buffer>();
  for (const c of await s.list(PG)) out.set(c.chunkIndex, c.sizeBytes === 0 ? Buffer.alloc(0) : (await s.read(PG, c, 0, c.sizeBytes))!);
  return out;
}

/** The primary's chunks 0..7 and a joining member that has: 0-3 identical, 4 older, 5 larger, 6 corrupt, 7 none, 8 only it. */
async function diverged(p: Pair): Promise<void> {
  for (let i = 0; i < 8; i++) await p.primary.write(PG, key(i), 0, randomBytes(i === 3 ? 12 * KiB + 5 : 64 * KiB));
  for (let i = 0; i < 7; i++) {
    const c = await p.primary.stat(PG, key(i));
    const data = (await p.primary.read(PG, key(i), 0, c!.sizeBytes))!;
    if (i === 4) data.fill(1, 100, 200);
    await p.joiner.write(PG, key(i), 0, data);
    if (i === 5) await p.joiner.write(PG, key(i), data.length, Buffer.alloc(4 * KiB)); // zeros beyond: same reads, other size
  }
  await p.joiner.write(PG, key(8), 0, randomBytes(8 * KiB));
  await p.joiner.flush();
  // A bit flip under the checksum of chunk 6 on the joining member.
  const f = p.joiner.chunkPath(PG, key(6));
  const b = readFileSync(f);
  if (b.length <= dataPosition(10)) throw new Error(`chunk file ${f} holds no data byte 10 (${b.length} bytes)`);
  b[dataPosition(10)]! ^= 0xff;
  writeFileSync(f, b);
}

t.test('delta: identical chunks stay, the rest is pushed or removed, the result is the primary byte for byte', async (t) => {
  const p = await pair(t);
  await diverged(p);
  const s = await copy(p);
  t.equal(s.state, 'done', `copy done ${s.error ?? ''}`);
  t.equal(s.mode, 'delta');
  t.equal(s.chunksTotal, 8);
  t.equal(s.chunksDone, 8);
  t.equal(s.chunksSkipped, 4, 'chunks 0-3 were identical: not sent');
  t.equal(s.chunksPushed, 4, 'older, larger, unreadable and missing ones were sent');
  t.equal(s.chunksRemoved, 1, 'chunk 8, which the primary does not have, was removed');
  t.equal(s.bytesSkipped, 3 * 64 * KiB + 12 * KiB + 5);
  t.equal(s.bytesPushed, 4 * 64 * KiB);
  t.equal(s.bytesDone, s.bytesTotal);
  t.same([...(await contents(p.joiner)).entries()].sort(), [...(await contents(p.primary)).entries()].sort(), 'the joining member holds exactly the primary\'s chunks');
  t.equal((await p.joiner.stat(PG, key(5)))!.sizeBytes, 64 * KiB, 'the larger old copy was replaced, not overwritten');
  t.equal(await p.joiner.stat(PG, key(8)), null, 'a chunk the primary no longer has was removed at the start');
  t.equal(p.joined.length, 1, 'joined once');
});

t.test('delta off: every chunk pushed whole after join-reset', async (t) => {
  const p = await pair(t, { delta: false });
  await diverged(p);
  const s = await copy(p);
  t.equal(s.state, 'done', `copy done ${s.error ?? ''}`);
  t.equal(s.mode, 'full');
  t.equal(s.chunksPushed, 8);
  t.equal(s.chunksSkipped, 0);
  t.same([...(await contents(p.joiner)).entries()].sort(), [...(await contents(p.primary)).entries()].sort());
});

t.test('a joining member without join-keep gets a whole copy', async (t) => {
  const p = await pair(t, { withoutKeep: true });
  await diverged(p);
  const s = await copy(p);
  t.equal(s.state, 'done', `copy done ${s.error ?? ''}`);
  t.equal(s.mode, 'full');
  t.equal(s.chunksPushed, 8);
  t.same([...(await contents(p.joiner)).entries()].sort(), [...(await contents(p.primary)).entries()].sort());
});

t.test('a joining member silent at the start under the PG lock fails the copy; the lock is released', async (t) => {
  const p = await pair(t, { silentLockedStart: true });
  await diverged(p);
  const s = await copy(p);
  t.equal(s.state, 'failed', 'the copy failed');
  t.match(s.error ?? '', /unreachable|abort|timeout/i, `after the locked start's timeout (${s.error ?? ''})`);
  t.equal(p.server.locks.acquire('p3', true), undefined, 'the PG lock is free: client writes to the PG go on');
  p.server.locks.release('p3', true);
  t.equal(p.joined.length, 0, 'never joined');
});

t.test('the joining member refuses delta calls for a PG it is not joining', async (t) => {
  const p = await pair(t);
  const authorization = controlAuthorization(p.clusterKey, 'sds:p');
  let res = await fetch(`http://127.0.0.1:${p.controlPort}/pgs/9/digests/7/0/0`, { headers: { authorization } });
  t.equal(res.status, 409, `digest of a PG it is not joining: refused (${await res.text()})`);
  res = await fetch(`http://127.0.0.1:${p.controlPort}/pgs/9/join-keep`, {
    method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ epoch: 2, keys: [] }),
  });
  t.equal(res.status, 409, 'join-keep of a PG it is not joining: refused');
  res = await fetch(`http://127.0.0.1:${p.controlPort}/pgs/${PG}/join-keep`, {
    method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ epoch: 2, keys: [1, 2] }),
  });
  t.equal(res.status, 400, 'a key list that is not triples: bad request');
  for (const epoch of [1, 5]) {
    res = await fetch(`http://127.0.0.1:${p.controlPort}/pgs/${PG}/digests/7/0/0?epoch=${epoch}`, { headers: { authorization } });
    t.equal(res.status, 409, `digest for a copy at another epoch (${epoch}, the PG is at 2): refused`);
    res = await fetch(`http://127.0.0.1:${p.controlPort}/pgs/${PG}/images/7/0/0?epoch=${epoch}`, {
      method: 'PUT', headers: { authorization, 'content-type': 'application/octet-stream' }, body: Buffer.alloc(4096, 1),
    });
    t.equal(res.status, 409, `image of a copy at another epoch (${epoch}): refused`);
  }
  t.equal(await p.joiner.stat(PG, key(0)), null, 'nothing written by the refused image');
  res = await fetch(`http://127.0.0.1:${p.controlPort}/pgs/${PG}/digests/7/0/0?epoch=2`, { headers: { authorization } });
  t.same(await res.json(), { sizeBytes: null, sha256: null }, 'digest at the copy\'s epoch: answered (no copy here)');
  res = await fetch(`http://127.0.0.1:${p.controlPort}/pgs/${PG}/digests/7/0/0`, { headers: { authorization: 'PflexComponent x:1:00' } });
  t.equal(res.status, 401, 'unauthenticated: refused');
});

t.test('keepStale: only a degraded PG nobody else joins, and only for a while', async (t) => {
  const e = (members: number[], joining: number[] = []): PgEntry => ({ pg: 0, members, joining, epoch: 5 });
  const map = [e([1, 2]), e([3, 4]), e([2])];
  t.ok(keepStale(e([2]), map, 0, 1000), 'degraded, nobody joining: kept');
  t.notOk(keepStale(e([2, 3]), map, 0, 1000), 'whole without us: dropped');
  t.notOk(keepStale(e([2], [4]), map, 0, 1000), 'copied elsewhere: dropped');
  t.notOk(keepStale(e([2]), map, 0, rebuildStaleKeepMs), 'kept long enough: dropped');
  t.ok(keepStale(e([2]), [e([2]), e([3])], 0, 1000), 'every PG down to one member (RF is at least 2): degraded, kept');
  t.ok(keepStale(e([2, 3]), [e([2, 3]), e([1, 2, 3])], 0, 1000), 'RF 3 seen from another PG: two members is degraded');
});

t.test('dropIfNotMember keeps a degraded PG it left, drops a whole one, and drops at once when told', async (t) => {
  const store = await FileChunkStore.open({ root: tempDir(t, 'pflex-stale-') });
  t.teardown(() => store.close());
  const map = new StaticPgMap([{ pg: 0, members: [2] }, { pg: 1, members: [2, 3] }, { pg: 2, members: [3, 4] }], []);
  const pgs = new PgTable(map);
  await pgs.refresh();
  for (const pg of [0, 1]) await store.write(pg, key(1), 0, randomBytes(4096));
  const o = { selfId: () => 1, store, pgs, server: fakeServer(), log };
  t.equal(await dropIfNotMember(o, 0, false), false, 'degraded PG 0: kept');
  t.equal(await dropIfNotMember(o, 1, false), true, 'PG 1 is whole without us: dropped');
  t.same(await store.pgs(), [0]);
  t.equal(await dropIfNotMember(o, 0, true, true), true, 'released: dropped at once');
  t.same(await store.pgs(), []);
});

/** Every chunk of the PG, every layer, by chunk name. */
async function layers(s: FileChunkStore): Promise<Array<[string, Buffer]>> {
  const out: Array<[string, Buffer]> = [];
  for (const c of await s.list(PG)) out.push([chunkName(c), c.sizeBytes === 0 ? Buffer.alloc(0) : (await s.read(PG, c, 0, c.sizeBytes))!]);
  return out.sort((a, b) => a[0].localeCompare(b[0]));
}

t.test('a first write into a new layer reaching the joining member before the ancestor chunk it copies up: the copy ends with the primary\'s chunks', async (t) => {
  const p = await pair(t);
  // Layer 0 holds chunks 0-3 and is a snapshot now; the volume writes layer 1 above it.
  for (let i = 0; i < 4; i++) await p.primary.write(PG, key(i), 0, randomBytes(64 * KiB));
  const top = (i: number): ChunkKey => ({ treeId: 7, chunkIndex: i, layerId: 1 });
  const below = [0];
  const onPrimary = new LayeredChunks(p.primary);
  const onJoiner = new LayeredChunks(p.joiner);
  // The copy is held before layer-0 chunks 2 and 3 (their locks are taken), after its listing.
  const held = [chunkLockKey(PG, key(2)), chunkLockKey(PG, key(3))];
  for (const k of held) t.equal(p.server.locks.acquire(k, true), undefined);
  const copied = copy(p);
  while (p.runner.list()[0]!.chunksTotal === 0) await new Promise((r) => setTimeout(r, 5));
  t.equal(await p.joiner.stat(PG, key(2)), null, 'the joining member does not have layer-0 chunk 2 yet');
  // Client requests into layer 1, as the data server runs them: PG then chunk lock shared, applied on the primary and forwarded.
  const data = randomBytes(4 * KiB);
  const request = async (i: number, apply: (l: LayeredChunks) => Promise<void>): Promise<void> => {
    await p.server.locks.acquire(pgLockKey(PG), false);
    await p.server.locks.acquire(chunkLockKey(PG, top(i)), false);
    try {
      await Promise.all([apply(onPrimary), apply(onJoiner)]);
    } finally {
      p.server.locks.release(chunkLockKey(PG, top(i)), false);
      p.server.locks.release(pgLockKey(PG), false);
    }
  };
  await request(2, (l) => l.write(PG, top(2), below, 8 * KiB, data, false));
  await request(3, (l) => l.zero(PG, top(3), below, 0, 16 * KiB, false));
  for (const k of held) p.server.locks.release(k, true);
  const s = await copied;
  t.equal(s.state, 'done', `copy done ${s.error ?? ''}`);
  t.same(await layers(p.joiner), await layers(p.primary), 'the joining member holds exactly the primary\'s chunks, every layer');
  for (const i of [2, 3]) {
    const want = await onPrimary.read(PG, top(i), below, 0, 64 * KiB);
    t.ok(want && (await onJoiner.read(PG, top(i), below, 0, 64 * KiB))?.equals(want), `chunk ${i} of layer 1 reads the same on both (ancestor bytes around the write)`);
  }
  t.ok(s.chunksPushed >= 6, `the layer-1 chunks created during the copy were pushed after it (${s.chunksPushed} pushed)`);
});
