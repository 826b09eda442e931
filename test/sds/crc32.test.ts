import t from 'tap';
import zlib from 'node:zlib';
import { blockAligned, blockCrcs, combineBlock, CRC_BLOCK_BYTES } from '../../src/shared/crc32.js';
import { Rng } from './rng.js';

t.test('the CRC folded from block CRCs equals zlib.crc32 of the whole buffer', async (t) => {
  const rng = new Rng(11);
  for (const blocks of [1, 2, 7, 256]) {
    const data = rng.bytes(blocks * CRC_BLOCK_BYTES);
    const out = new Uint32Array(blocks);
    t.equal(blockCrcs(data, out), zlib.crc32(data), `${blocks} blocks`);
    t.equal(out[blocks - 1], zlib.crc32(data.subarray((blocks - 1) * CRC_BLOCK_BYTES)));
  }
  const a = rng.bytes(100);
  const b = rng.bytes(CRC_BLOCK_BYTES);
  t.equal(combineBlock(zlib.crc32(a), zlib.crc32(b)), zlib.crc32(Buffer.concat([a, b])), 'any prefix length');
});

t.test('alignment', async (t) => {
  t.ok(blockAligned(0, 4096));
  t.ok(blockAligned(8192, 1 << 20));
  t.notOk(blockAligned(100, 4096));
  t.notOk(blockAligned(0, 100));
  t.notOk(blockAligned(0, 0));
});
