import t, { type Test } from 'tap';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ByteQueue } from '../../src/nbd/byte-queue.js';
import { FileBackend, MemoryBackend, MEMORY_PAGE_BYTES, NbdError, NBD_ERRNO, type BlockBackend } from '../../src/nbd/index.js';
import { tempDir } from '../helpers/proc.js';

/** Same xorshift for every run: failures replay. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

t.test('ByteQueue returns the same bytes as concatenation, whatever the chunking', async (t) => {
  const rand = rng(7);
  for (let round = 0; round < 50; round++) {
    const q = new ByteQueue();
    const all: Buffer[] = [];
    for (let i = rand(20); i >= 0; i--) {
      const b = Buffer.from(Array.from({ length: rand(300) }, () => rand(256)));
      all.push(b);
      q.push(b);
    }
    const expected = Buffer.concat(all);
    let at = 0;
    while (at < expected.length) {
      const n = Math.min(rand(400) + 1, expected.length - at);
      const mode = rand(3);
      if (mode === 0) t.ok(q.take(n).equals(expected.subarray(at, at + n)));
      else if (mode === 1) t.ok(Buffer.concat(q.takeChunks(n)).equals(expected.subarray(at, at + n)));
      else t.equal(q.skip(n), n);
      at += n;
      t.equal(q.length, expected.length - at);
    }
  }
  const q = new ByteQueue();
  q.push(Buffer.from('abcdef'));
  const view = q.take(3);
  t.equal(view.toString(), 'abc', 'a frame inside one chunk');
  t.throws(() => q.take(4), RangeError, 'taking more than buffered is a bug');
  t.equal(q.skip(10), 3, 'skip stops at what is buffered');
});

/** Applies the same random operations to a backend and a flat model; reads must agree. */
async function modelCheck(t: Test, backend: BlockBackend, seed: number, ops: number, canTrim: boolean): Promise<void> {
  const rand = rng(seed);
  const size = backend.size;
  const model = Buffer.alloc(size);
  for (let i = 0; i < ops; i++) {
    const len = rand(3) === 0 ? rand(3 * MEMORY_PAGE_BYTES) + 1 : rand(5000) + 1;
    const off = rand(size - len + 1);
    switch (rand(6)) {
      case 0:
      case 1: {
        const data = Buffer.alloc(len, (i % 255) + 1);
        if (backend.writev && rand(2)) {
          const cut = rand(len);
          await backend.writev(off, [data.subarray(0, cut), data.subarray(cut)], { fua: false });
        } else {
          await backend.write(off, data, { fua: rand(4) === 0 });
        }
        data.copy(model, off);
        break;
      }
      case 2:
        await backend.zero(off, len, { fua: false, mayTrim: rand(2) === 0, fast: false });
        model.fill(0, off, off + len);
        break;
      case 3:
        if (canTrim) {
          await backend.trim(off, len, { fua: false });
          model.fill(0, off, off + len); // our backends make trimmed ranges read as zero
        }
        break;
      default: {
        const got = backend.readv && rand(2) ? Buffer.concat(await backend.readv(off, len)) : await backend.read(off, len);
        if (!got.equals(model.subarray(off, off + len))) {
          t.fail(`op ${i}: read ${off}+${len} differs from the model`);
          return;
        }
      }
    }
  }
  t.ok((await backend.read(0, size)).equals(model), `after ${ops} random ops the whole disk matches the model`);
  // Extents cover the range exactly; holes read as zero.
  let at = 0;
  for (const e of await backend.blockStatus(0, size)) {
    t.ok(e.length > 0);
    if (e.zero && !model.subarray(at, at + e.length).equals(Buffer.alloc(e.length))) t.fail(`extent at ${at} claims zero`);
    at += e.length;
  }
  t.equal(at, size, 'extents cover the whole disk');
}

t.test('memory backend: random operations agree with a model', async (t) => {
  const b = new MemoryBackend(2 * 1024 * 1024);
  await modelCheck(t, b, 1234, 1500, true);
});

t.test('memory backend: sparse allocation, holes, NO_HOLE, trim frees pages', async (t) => {
  const P = MEMORY_PAGE_BYTES;
  const b = new MemoryBackend(16 * P);
  t.equal(b.allocatedBytes, 0, 'nothing allocated at start');
  t.same(await b.blockStatus(0, 16 * P), [{ length: 16 * P, hole: true, zero: true }]);
  await b.write(P + 10, Buffer.from('x'), { fua: false });
  t.equal(b.allocatedBytes, P, 'one page allocated by a one-byte write');
  t.same(await b.blockStatus(0, 3 * P), [
    { length: P, hole: true, zero: true },
    { length: P, hole: false, zero: false },
    { length: P, hole: true, zero: true },
  ]);
  await b.zero(4 * P, 2 * P, { fua: false, mayTrim: false, fast: false });
  t.equal(b.allocatedBytes, 3 * P, 'NO_HOLE zeroing allocates');
  await b.trim(4 * P, 2 * P, { fua: false });
  t.equal(b.allocatedBytes, P, 'trim frees whole pages');
  await b.trim(P, 100, { fua: false });
  t.equal(b.allocatedBytes, P, 'a partial trim keeps the page');
  t.same(await b.read(P, 20), Buffer.alloc(20), 'and zeroes the range');
  const parts = await b.readv(0, 2 * P + 5);
  t.equal(parts.length, 3, 'readv gives one view per page');
  t.equal(Buffer.concat(parts).length, 2 * P + 5);
  await b.close();
  t.equal(b.allocatedBytes, 0, 'close frees everything');
});

t.test('file backend: random operations agree with a model; data survives reopening', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'disk.img');
  const b = await FileBackend.open({ path, size: 2 * 1024 * 1024 });
  t.equal(statSync(path).size, 2 * 1024 * 1024, 'created at the requested size');
  t.ok(statSync(path).blocks * 512 < 2 * 1024 * 1024, 'and sparse');
  t.equal(b.capabilities.trim, false, 'no trim (node cannot punch holes)');
  t.equal(b.capabilities.extents, false, 'no real extents (no SEEK_DATA in node)');
  await modelCheck(t, b, 99, 400, false);
  await b.write(12345, Buffer.from('persist'), { fua: true });
  await b.flush();
  await b.close();

  const again = await FileBackend.open({ path });
  t.equal(again.size, 2 * 1024 * 1024, 'size from the file');
  t.equal((await again.read(12345, 7)).toString(), 'persist');
  await t.rejects(again.zero(0, 4096, { fua: false, mayTrim: true, fast: true }), NbdError, 'fast zero is refused');
  try {
    await again.zero(0, 4096, { fua: false, mayTrim: true, fast: true });
  } catch (err) {
    t.equal((err as NbdError).errno, NBD_ERRNO.ENOTSUP);
  }
  await again.close();

  const ro = await FileBackend.open({ path, readOnly: true });
  t.equal(ro.capabilities.readOnly, true);
  t.equal((await ro.read(12345, 7)).toString(), 'persist');
  await ro.close();
});

t.test('file backend: open errors and growth', async (t) => {
  const dir = tempDir(t);
  await t.rejects(FileBackend.open({ path: join(dir, 'missing.img') }), { code: 'ENOENT' }, 'a missing file needs --size');
  const small = join(dir, 'small.img');
  writeFileSync(small, Buffer.alloc(4096, 1));
  const grown = await FileBackend.open({ path: small, size: 65536 });
  t.equal(statSync(small).size, 65536, 'an existing file grows to --size');
  t.same(await grown.read(4090, 12), Buffer.concat([Buffer.alloc(6, 1), Buffer.alloc(6)]), 'old data kept, new space zero');
  await grown.close();
  await t.rejects(FileBackend.open({ path: small, size: 1 << 20, readOnly: true }), /smaller/, 'read-only cannot grow');
});
