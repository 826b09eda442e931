import t from 'tap';
import { hash32x2, pgOfChunk } from '../../src/shared/pg.js';

const PINNED = [3523, 3527, 2175, 174];

t.test('pgOfChunk is stable: pinned values (changing them would move every chunk)', async (t) => {
  const pinned = [pgOfChunk(1, 0, 4096), pgOfChunk(1, 1, 4096), pgOfChunk(7, 123456, 4096), pgOfChunk(2 ** 31, 2 ** 40 + 5, 1000)];
  t.same(pinned, PINNED, 'same PGs as when the data was written');
  // Cross-checked against a reference MurmurHash3_x86_32 of the 12 bytes LE (7, 123456, 0), seed 0.
  t.equal(pgOfChunk(7, 123456, 2 ** 32), 2771155071, 'it is MurmurHash3_x86_32');
});

t.test('pgOfChunk stays in range and spreads chunks evenly', async (t) => {
  for (const pgCount of [1, 7, 64, 4096]) {
    const counts = new Array<number>(pgCount).fill(0);
    const chunks = pgCount * 64;
    for (let i = 0; i < chunks; i++) {
      const pg = pgOfChunk(3, i, pgCount);
      if (!(pg >= 0 && pg < pgCount && Number.isInteger(pg))) t.fail(`out of range: ${pg}`);
      counts[pg]! += 1;
    }
    const max = Math.max(...counts);
    const min = Math.min(...counts);
    t.ok(max <= 64 * 2 && min >= 64 / 3, `pgCount ${pgCount}: between ${min} and ${max} chunks per PG (mean 64)`);
  }
});

t.test('different volume trees and high chunk bits map differently', async (t) => {
  let same = 0;
  for (let i = 0; i < 1000; i++) if (pgOfChunk(1, i, 4096) === pgOfChunk(2, i, 4096)) same++;
  t.ok(same < 10, `trees 1 and 2 agree on ${same} of 1000 chunks`);
  let sameHigh = 0;
  for (let i = 0; i < 1000; i++) if (pgOfChunk(1, i, 4096) === pgOfChunk(1, i + 2 ** 32, 4096)) sameHigh++;
  t.ok(sameHigh < 10, `chunk i and i + 2^32 agree on ${sameHigh} of 1000`);
  t.not(hash32x2(1, 2), hash32x2(2, 1), 'hash32x2 is order sensitive');
});
