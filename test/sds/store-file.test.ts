import t from 'tap';
import { openSync, readSync, writeSync, closeSync, statSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { FileChunkStore } from '../../src/sds/store/file-store.js';
import { CHUNK_FILE_SUFFIX, chunkFileData, chunkFileWords, dataPosition, fileSizeFor, logicalSize, wordPosition } from '../../src/sds/store/chunk-file-layout.js';
import { BLOCK_BYTES, ZERO_BLOCK_CRC, blockCrc } from '../../src/sds/store/block-crc.js';
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
  flipByte(s.chunkPath(1, k), dataPosition(4096 + 17));
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
  writeSync(fd, Buffer.from('garbage'), 0, 7, dataPosition(3 * 4096));
  closeSync(fd);
  await t.rejects(s.read(1, k, 3 * 4096, 4096), PflexError);
});

t.test('data survives reopening; the layout is a directory per PG with one .chk file per chunk', async (t) => {
  const root = tempDir(t);
  const s1 = await FileChunkStore.open({ root });
  await s1.write(3, k, 5000, Buffer.alloc(5000, 7));
  await s1.close();
  t.equal(CHUNK_FILE_SUFFIX, '.chk');
  t.equal(statSync(`${root}/pg-3/11-2-0.chk`).size, dataPosition(10000), 'the checksum table, then the data');
  t.same(oldFiles(`${root}/pg-3`), [], 'no files of the two-file layout');
  const s2 = await FileChunkStore.open({ root });
  t.teardown(() => s2.close());
  t.same(await s2.read(3, k, 5000, 5000), Buffer.alloc(5000, 7));
  t.same(await s2.list(3), [{ ...k, sizeBytes: 10000 }]);
  t.equal((await s2.capacity()).usedBytes, 10000, 'the checksum table is not counted as data');
});

/** Files of the two-file layout (<chunk>.dat and <chunk>.crc) in a PG directory. */
function oldFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.dat') || n.endsWith('.crc')).sort();
}

/**
 * A chunk as the two-file layout stored it: `data` in <name>.dat and one
 * CRC word per 4 KiB block in <name>.crc, 0 for the blocks in `unwritten`
 * (the layout's "never written", which such a block must read as zeros).
 */
function writeOldChunk(dir: string, name: string, data: Buffer, unwritten: number[] = []): Buffer {
  mkdirSync(dir, { recursive: true });
  const blocks = Math.ceil(data.length / BLOCK_BYTES);
  const words = Buffer.alloc(blocks * 4);
  for (let b = 0; b < blocks; b++) {
    const block = Buffer.alloc(BLOCK_BYTES);
    data.copy(block, 0, b * BLOCK_BYTES, Math.min(data.length, (b + 1) * BLOCK_BYTES));
    words.writeUInt32LE(unwritten.includes(b) ? 0 : blockCrc(block), b * 4);
  }
  writeFileSync(join(dir, `${name}.dat`), data);
  writeFileSync(join(dir, `${name}.crc`), words);
  return words;
}

/** Checksum words with "never written" (0) and the CRC of a zero block taken as the same. */
function normalisedWords(words: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 4 <= words.length; i += 4) {
    const w = words.readUInt32LE(i);
    out.push(w === ZERO_BLOCK_CRC ? 0 : w);
  }
  return out;
}

t.test('a store in the old two-file layout is converted at open', async (t) => {
  const root = tempDir(t);
  // What the old store left after a write of 5000 bytes of 7 at offset 5000: block 0 never written.
  const a = Buffer.concat([Buffer.alloc(5000), Buffer.alloc(5000, 7)]);
  const aWords = writeOldChunk(join(root, 'pg-3'), '11-2-0', a, [0]);
  const kb = { treeId: 12, chunkIndex: 0, layerId: 1 };
  const b = randomBytes(3 * BLOCK_BYTES + 123);
  const bWords = writeOldChunk(join(root, 'pg-5'), '12-0-1', b);
  // A crash in the middle of converting chunk a left its half-written new file.
  writeFileSync(join(root, 'pg-3', `11-2-0${CHUNK_FILE_SUFFIX}.tmp`), randomBytes(1000));

  const s = await FileChunkStore.open({ root });
  t.teardown(() => s.close());
  t.same(await s.read(3, k, 0, a.length), a, 'chunk a reads its old bytes');
  t.same(await s.read(5, kb, 0, b.length), b, 'chunk b reads its old bytes');
  t.same(await s.list(3), [{ ...k, sizeBytes: a.length }], 'sizes are those of the old data files');
  t.same(await s.list(5), [{ ...kb, sizeBytes: b.length }]);
  t.equal((await s.capacity()).usedBytes, a.length + b.length);

  t.same(oldFiles(join(root, 'pg-3')), [], 'the old files of pg 3 are gone');
  t.same(oldFiles(join(root, 'pg-5')), []);
  t.same(readdirSync(join(root, 'pg-3')).filter((n) => n.endsWith('.tmp')), [], 'the leftover temporary file is removed');
  t.equal(s.chunkPath(3, k), join(root, 'pg-3', `11-2-0${CHUNK_FILE_SUFFIX}`));
  t.ok(existsSync(s.chunkPath(3, k)) && existsSync(s.chunkPath(5, kb)), 'both chunks have their .chk file');
  t.equal(statSync(s.chunkPath(3, k)).size, fileSizeFor(a.length));
  t.equal(statSync(s.chunkPath(5, kb)).size, fileSizeFor(b.length));
  // The stored words themselves, not only their effect on reads: a converter
  // that recomputed them from the data would bless a block damaged before.
  const table = (path: string, n: number): number[] => normalisedWords(chunkFileWords(readFileSync(path)).subarray(0, n * 4));
  t.same(table(s.chunkPath(3, k), 3), normalisedWords(aWords), 'chunk a\'s checksum words came along');
  t.same(table(s.chunkPath(5, kb), 4), normalisedWords(bWords), 'chunk b\'s checksum words came along');

  await s.close();
  flipByte(s.chunkPath(5, kb), dataPosition(2 * BLOCK_BYTES + 9));
  const s2 = await FileChunkStore.open({ root });
  t.teardown(() => s2.close());
  await t.rejects(s2.read(5, kb, 2 * BLOCK_BYTES, BLOCK_BYTES), PflexError, 'a flipped byte in a converted chunk is detected');
  t.same(await s2.read(5, kb, 0, 2 * BLOCK_BYTES), b.subarray(0, 2 * BLOCK_BYTES), 'its other blocks still read');
});

t.test('a block damaged before the conversion is still detected after it', async (t) => {
  const root = tempDir(t);
  const data = randomBytes(2 * BLOCK_BYTES);
  writeOldChunk(join(root, 'pg-0'), '11-2-0', data);
  flipByte(join(root, 'pg-0', '11-2-0.dat'), BLOCK_BYTES + 100);
  const s = await FileChunkStore.open({ root });
  t.teardown(() => s.close());
  await t.rejects(s.read(0, k, BLOCK_BYTES, BLOCK_BYTES), PflexError, 'the old checksum catches it');
  t.same(await s.read(0, k, 0, BLOCK_BYTES), data.subarray(0, BLOCK_BYTES));
});

t.test('a crash after the conversion\'s rename: the .chk file wins over stale .dat and .crc files', async (t) => {
  const root = tempDir(t);
  const s1 = await FileChunkStore.open({ root });
  await s1.write(3, k, 0, Buffer.alloc(6000, 0x5a));
  await s1.close();
  // The old files of the same chunk, whole and with good checksums, but other bytes and another size.
  writeOldChunk(join(root, 'pg-3'), '11-2-0', Buffer.alloc(9000, 0x11));
  const s2 = await FileChunkStore.open({ root });
  t.teardown(() => s2.close());
  t.same(await s2.read(3, k, 0, 6000), Buffer.alloc(6000, 0x5a), 'the .chk content');
  t.same(await s2.list(3), [{ ...k, sizeBytes: 6000 }]);
  t.same(oldFiles(join(root, 'pg-3')), [], 'the stale old files are removed');
  t.equal(statSync(s2.chunkPath(3, k)).size, fileSizeFor(6000));
});

t.test('the chunk file layout: the checksum table, then the data', async (t) => {
  const MiB = 1024 * 1024;
  t.equal(wordPosition(0), 0);
  t.equal(wordPosition(65535), 4 * 65535, 'the last word of a 256 MiB chunk');
  t.ok(wordPosition(65535) + 4 <= dataPosition(0), 'ends before the data');
  t.equal(fileSizeFor(0), 0);
  for (const size of [1, 4095, 4096, 10000, 4 * MiB + 1, 9 * MiB + 17]) {
    t.equal(logicalSize(fileSizeFor(size)), size, `size ${size} survives the file size`);
  }
  t.equal(logicalSize(dataPosition(0)), 0, 'a file holding only table words (a crash before the data landed) is empty');

  // A chunk with a hole in the middle, through the store and back from the file alone.
  const s = await FileChunkStore.open({ root: tempDir(t) });
  t.teardown(() => s.close());
  const big = { treeId: 5, chunkIndex: 0, layerId: 0 };
  const head = randomBytes(4 * MiB + 8192);
  const tail = randomBytes(5000); // unaligned, past a hole
  await s.write(2, big, 0, head);
  await s.write(2, big, 8 * MiB + 300, tail);
  await s.flush();
  const want = Buffer.alloc(8 * MiB + 300 + tail.length);
  head.copy(want, 0);
  tail.copy(want, 8 * MiB + 300);
  t.same((await s.stat(2, big))?.sizeBytes, want.length);
  t.ok((await s.read(2, big, 0, want.length))!.equals(want), 'reads across the hole');
  const file = readFileSync(s.chunkPath(2, big));
  t.equal(file.length, fileSizeFor(want.length));
  t.ok(chunkFileData(file).equals(want), 'the file holds the data where the layout says');
  const words = chunkFileWords(file);
  const lastBlock = Math.floor((8 * MiB + 300) / BLOCK_BYTES);
  const block = Buffer.alloc(BLOCK_BYTES);
  want.copy(block, 0, lastBlock * BLOCK_BYTES, (lastBlock + 1) * BLOCK_BYTES);
  t.equal(words.readUInt32LE(lastBlock * 4), blockCrc(block), 'the word of a block past the hole');
  t.equal(words.readUInt32LE(1030 * 4), 0, 'a block in the hole: never written');
  flipByte(s.chunkPath(2, big), dataPosition(4 * MiB + 100));
  await t.rejects(s.read(2, big, 4 * MiB, 4096), PflexError, 'damage deep in the chunk is caught');
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
