import t from 'tap';
import zlib from 'node:zlib';
import { blockAligned, blockCrcs, combineBlock, crc32, CRC_BLOCK_BYTES } from '../../src/shared/crc32.js';
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

t.test('the SIMD crc32 computes zlib.crc32, so chunk checksum files and frames of earlier versions still verify', async (t) => {
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926, 'the IEEE check value');
  t.equal(crc32(Buffer.alloc(0)), 0);
  const rng = new Rng(12);
  let same = 0;
  const cases = 300;
  for (let i = 0; i < cases; i++) {
    const data = rng.bytes(i < 200 ? i * 37 : CRC_BLOCK_BYTES * (i - 199));
    const start = i % 3 === 0 ? 0 : zlib.crc32(rng.bytes(16));
    if (crc32(data, start) === zlib.crc32(data, start)) same++;
    else t.fail(`length ${data.length} from ${start}: ${crc32(data, start)} != ${zlib.crc32(data, start)}`);
  }
  t.equal(same, cases, 'equal for every length and continued CRC');
});

t.test('alignment', async (t) => {
  t.ok(blockAligned(0, 4096));
  t.ok(blockAligned(8192, 1 << 20));
  t.notOk(blockAligned(100, 4096));
  t.notOk(blockAligned(0, 100));
  t.notOk(blockAligned(0, 0));
});
