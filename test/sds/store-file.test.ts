import t from 'tap';
import { openSync, readSync, writeSync, closeSync, statSync } from 'node:fs';
import { FileChunkStore } from '../../src/sds/store/file-store.js';
import type { ChecksumAlert } from '../../src/sds/store/chunk-store.js';
import { PflexError } from '../../src/shared/errors.js';
import { tempDir } from '../helpers/proc.js';
import { storeContract } from './store-contract.js';

storeContract(t, async (t) => {
  const s = await FileChunkStore.open({ root: tempDir(t), openChunksMax: 4 });
  t.teardown(() => s.close());
  return s;
});

const k = { treeId: 11, chunkIndex: 2, layerId: 0 };

function flipByte(path: string, at: number): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0x40;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

t.test('a flipped byte in a chunk file fails the read with an IO error and an alert', async (t) => {
  const alerts: ChecksumAlert[] = [];
  const s = await FileChunkStore.open({ root: tempDir(t), onChecksumError: (a) => alerts.push(a) });
  t.teardown(() => s.close());
  await s.write(1, k, 0, Buffer.alloc(3 * 4096, 0x11));
  await s.flush();
  flipByte(s.chunkPath(1, k), 4096 + 17);
  await t.rejects(s.read(1, k, 4096 + 10, 100), { code: 'PFLEX_ERR_IO' });
  t.same(alerts.map((a) => a.blockOffset), [4096]);
  t.same(await s.read(1, k, 0, 4096), Buffer.alloc(4096, 0x11), 'other blocks still readable');
  // A partial write into the damaged block must not bless it with a fresh checksum.
  await t.rejects(s.write(1, k, 4096 + 100, Buffer.from('x')), PflexError);
  // A full overwrite of the block repairs it.
  await s.write(1, k, 4096, Buffer.alloc(4096, 0x22));
  t.same(await s.read(1, k, 4096, 4096), Buffer.alloc(4096, 0x22));
});

t.test('data written into a never-written block is detected', async (t) => {
  const s = await FileChunkStore.open({ root: tempDir(t) });
  t.teardown(() => s.close());
  await s.write(1, k, 0, Buffer.alloc(100, 1));
  await s.flush();
  const fd = openSync(s.chunkPath(1, k), 'r+');
  writeSync(fd, Buffer.from('garbage'), 0, 7, 3 * 4096);
  closeSync(fd);
  await t.rejects(s.read(1, k, 3 * 4096, 4096), PflexError);
});

t.test('data survives reopening; the layout is a directory per PG with .dat and .crc', async (t) => {
  const root = tempDir(t);
  const s1 = await FileChunkStore.open({ root });
  await s1.write(3, k, 5000, Buffer.alloc(5000, 7));
  await s1.close();
  t.equal(statSync(`${root}/pg-3/11-2-0.dat`).size, 10000);
  t.equal(statSync(`${root}/pg-3/11-2-0.crc`).size, 3 * 4);
  const s2 = await FileChunkStore.open({ root });
  t.teardown(() => s2.close());
  t.same(await s2.read(3, k, 5000, 5000), Buffer.alloc(5000, 7));
  t.same(await s2.list(3), [{ ...k, sizeBytes: 10000 }]);
  t.equal((await s2.capacity()).usedBytes, 10000);
});

t.test('many chunks through a small open-file cache', async (t) => {
  const s = await FileChunkStore.open({ root: tempDir(t), openChunksMax: 3 });
  t.teardown(() => s.close());
  const writes = [];
  for (let i = 0; i < 40; i++) writes.push(s.write(i % 5, { ...k, chunkIndex: i }, i * 10, Buffer.alloc(300, i)));
  await Promise.all(writes);
  await s.flush();
  for (let i = 0; i < 40; i++) {
    const got = await s.read(i % 5, { ...k, chunkIndex: i }, i * 10, 300);
    if (!got?.equals(Buffer.alloc(300, i))) t.fail(`chunk ${i} differs`);
  }
  t.equal((await s.capacity()).chunks, 40);
});
