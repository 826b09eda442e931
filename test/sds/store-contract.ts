/**
 * The one behaviour contract of a ChunkStore; store-file.test.ts and
 * store-memory.test.ts run it against each implementation.
 */
import type { Test } from 'tap';
import type { ChunkKey, ChunkStore } from '../../src/sds/store/chunk-store.js';
import zlib from 'node:zlib';
import { Rng } from './rng.js';
import { blockCrcs } from '../../src/shared/crc32.js';

export type StoreFactory = (t: Test) => Promise<ChunkStore>;

const K: ChunkKey = { treeId: 7, chunkIndex: 3, layerId: 0 };
const CHUNK = 1024 * 1024;

export function storeContract(t: Test, make: StoreFactory): void {
  t.test('a chunk that was never written does not exist', async (t) => {
    const s = await make(t);
    t.equal(await s.read(1, K, 0, 4096), null);
    t.equal(await s.stat(1, K), null);
    t.same(await s.list(1), []);
  });

  t.test('written bytes read back; unwritten ranges read as zeros', async (t) => {
    const s = await make(t);
    const data = Buffer.alloc(10000, 0xab);
    await s.write(1, K, 8192, data);
    t.same(await s.read(1, K, 8192, 10000), data);
    t.same(await s.read(1, K, 0, 8192), Buffer.alloc(8192), 'hole before the data');
    t.same(await s.read(1, K, 100000, 5000), Buffer.alloc(5000), 'beyond the end');
    const mixed = await s.read(1, K, 8000, 400);
    t.same(mixed, Buffer.concat([Buffer.alloc(192), Buffer.alloc(208, 0xab)]));
    t.match(await s.stat(1, K), { ...K, sizeBytes: 18192 });
  });

  t.test('random unaligned writes match a reference model', async (t) => {
    const seed = Number(process.env.PFLEX_SEED ?? Date.now() % 1e9);
    t.comment(`seed ${seed}`);
    const rng = new Rng(seed);
    const s = await make(t);
    const model = Buffer.alloc(256 * 1024);
    for (let i = 0; i < 150; i++) {
      const off = rng.int(model.length - 1);
      const len = 1 + rng.int(Math.min(model.length - off, rng.int(2) ? 300 : 20000));
      const data = rng.bytes(len);
      data.copy(model, off);
      await s.write(2, K, off, data);
      if (i % 10 === 0) {
        const roff = rng.int(model.length - 1);
        const rlen = 1 + rng.int(model.length - roff);
        const got = await s.read(2, K, roff, rlen);
        if (!got || !got.equals(model.subarray(roff, roff + rlen))) t.fail(`read ${roff}+${rlen} after write ${i} differs`);
      }
    }
    t.same(await s.read(2, K, 0, model.length), model);
  });

  t.test('concurrent writes to one chunk apply in issue order', async (t) => {
    const s = await make(t);
    const model = Buffer.alloc(64 * 1024);
    const rng = new Rng(42);
    const pending: Array<Promise<unknown>> = [];
    for (let i = 0; i < 64; i++) {
      const off = rng.int(60000);
      const data = Buffer.alloc(1 + rng.int(4000), i + 1);
      data.copy(model, off);
      pending.push(s.write(3, K, off, data));
      if (i % 8 === 0) pending.push(s.read(3, K, 0, 1000));
    }
    await Promise.all(pending);
    t.same(await s.read(3, K, 0, model.length), model.subarray(0, model.length));
  });

  t.test('zero makes a range read as zeros; zero of a missing chunk keeps it missing', async (t) => {
    const s = await make(t);
    await s.write(1, K, 0, Buffer.alloc(20000, 5));
    await s.zero(1, K, 1000, 9000);
    const got = await s.read(1, K, 0, 20000);
    t.same(got, Buffer.concat([Buffer.alloc(1000, 5), Buffer.alloc(9000), Buffer.alloc(10000, 5)]));
    await s.zero(1, { ...K, chunkIndex: 99 }, 0, CHUNK);
    t.equal(await s.read(1, { ...K, chunkIndex: 99 }, 0, 10), null);
  });

  t.test('a zero covering every written byte frees the chunk; a partial one keeps it', async (t) => {
    const s = await make(t);
    const other = { ...K, chunkIndex: 7 };
    await s.write(2, K, 0, Buffer.alloc(20000, 5));
    await s.write(2, other, 4096, Buffer.alloc(4096, 6));
    const before = await s.capacity();
    await s.zero(2, other, 0, 4096);
    t.same(await s.read(2, other, 4096, 10), Buffer.alloc(10, 6), 'a zero short of the end keeps the data beyond it');
    await s.zero(2, K, 0, CHUNK, true);
    t.equal(await s.stat(2, K), null, 'the whole-chunk zero removed the chunk');
    t.equal(await s.read(2, K, 0, 10), null, 'a removed chunk reads as absent');
    t.same((await s.list(2)).map((c) => c.chunkIndex), [7]);
    const after = await s.capacity();
    t.equal(after.chunks, before.chunks - 1);
    t.equal(after.usedBytes, before.usedBytes - 20000);
    await s.write(2, K, 100, Buffer.alloc(10, 9));
    t.same(await s.read(2, K, 0, 110), Buffer.concat([Buffer.alloc(100), Buffer.alloc(10, 9)]), 'a removed chunk can be written again');
  });

  t.test('PGs, chunks and layers are kept apart; list, pgs, capacity and drop', async (t) => {
    const s = await make(t);
    const layer1 = { ...K, layerId: 1 };
    await s.write(4, K, 0, Buffer.alloc(4096, 1));
    await s.write(4, layer1, 0, Buffer.alloc(100, 2));
    await s.write(5, K, 0, Buffer.alloc(8192, 3));
    t.same(await s.read(4, K, 0, 1), Buffer.from([1]));
    t.same(await s.read(4, layer1, 0, 1), Buffer.from([2]));
    t.same(await s.read(5, K, 0, 1), Buffer.from([3]));
    const listed = (await s.list(4)).sort((a, b) => a.layerId - b.layerId);
    t.same(listed, [{ ...K, sizeBytes: 4096 }, { ...layer1, sizeBytes: 100 }]);
    t.same(await s.pgs(), [4, 5]);
    const cap = await s.capacity();
    t.equal(cap.usedBytes, 4096 + 100 + 8192);
    t.equal(cap.chunks, 3);
    t.ok(cap.freeBytes <= cap.totalBytes - cap.usedBytes);
    await s.dropPg(4);
    t.equal(await s.read(4, K, 0, 1), null);
    t.same(await s.list(4), []);
    t.same(await s.pgs(), [5]);
    t.equal((await s.capacity()).usedBytes, 8192);
    t.same(await s.read(5, K, 0, 1), Buffer.from([3]), 'other PGs untouched');
  });

  t.test('an aligned write with precomputed block CRCs reads back (and verifies)', async (t) => {
    const s = await make(t);
    const data = new Rng(3).bytes(5 * 4096);
    const crcs = new Uint32Array(5);
    blockCrcs(data, crcs);
    await s.write(7, K, 8192, data, false, crcs);
    const out: { crc?: number } = {};
    t.same(await s.read(7, K, 8192, data.length, out), data);
    if (out.crc !== undefined) t.equal(out.crc, zlib.crc32(data), 'a CRC the store offers is the CRC of the bytes');
    const holes: { crc?: number } = {};
    const withHole = await s.read(7, K, 0, 8192 + 4096, holes);
    if (holes.crc !== undefined) t.equal(holes.crc, zlib.crc32(withHole!), 'also over never-written blocks');
    t.same(await s.read(7, K, 8192 + 100, 5000), data.subarray(100, 5100));
    // A partial overwrite then has to merge with those blocks correctly.
    await s.write(7, K, 8192 + 4000, Buffer.alloc(200, 1));
    data.fill(1, 4000, 4200);
    t.same(await s.read(7, K, 8192, data.length), data);
  });

  t.test('flush and durable writes complete', async (t) => {
    const s = await make(t);
    await s.write(6, K, 0, Buffer.alloc(4096, 9));
    await s.write(6, { ...K, chunkIndex: 4 }, 0, Buffer.alloc(4096, 8), true);
    await s.flush();
    await s.flush();
    t.same(await s.read(6, K, 0, 4096), Buffer.alloc(4096, 9));
  });
}
