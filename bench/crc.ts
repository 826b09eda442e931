// The data path's CRC32 against node's zlib.crc32, on the shapes the data
// path checksums: 4 KiB blocks (the store's per-block checks and the frame
// CRC folded from them, shared/crc32.ts blockCrcs) and whole 1 MiB payloads.
// Both compute the same IEEE CRC32; this prints the throughput of each.
//
//   npm run build && node dist/bench/crc.js [--seconds 2]
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';
import { blockCrcs, crc32, CRC_BLOCK_BYTES } from '../src/shared/crc32.js';

const MiB = 1 << 20;

/** MiB/s of fn over one 1 MiB buffer, run for about `seconds` (after a warm-up). */
function rate(fn: (buf: Buffer) => void, buf: Buffer, seconds: number): number {
  for (let i = 0; i < 50; i++) fn(buf);
  let rounds = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < seconds) {
    for (let i = 0; i < 20; i++) fn(buf);
    rounds += 20;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  return (rounds * buf.length) / MiB / elapsed;
}

function perBlock(crc: (b: Buffer) => number): (buf: Buffer) => void {
  return (buf) => {
    for (let o = 0; o < buf.length; o += CRC_BLOCK_BYTES) crc(buf.subarray(o, o + CRC_BLOCK_BYTES));
  };
}

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' } } });
const seconds = Number(values.seconds);
const buf = randomBytes(MiB);
const out = new Uint32Array(MiB / CRC_BLOCK_BYTES);
const rows: Array<[string, number]> = [
  ['zlib.crc32, 4 KiB blocks', rate(perBlock((b) => zlib.crc32(b)), buf, seconds)],
  ['crc32 (SIMD), 4 KiB blocks', rate(perBlock((b) => crc32(b)), buf, seconds)],
  ['blockCrcs (blocks + whole)', rate((b) => blockCrcs(b, out), buf, seconds)],
  ['zlib.crc32, 1 MiB', rate((b) => zlib.crc32(b), buf, seconds)],
  ['crc32 (SIMD), 1 MiB', rate((b) => crc32(b), buf, seconds)],
];
for (const [name, mibs] of rows) console.log(`${name.padEnd(28)} ${mibs.toFixed(0).padStart(6)} MiB/s  ${(1e6 / mibs).toFixed(0).padStart(5)} us per MiB`);
console.log(`machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), node ${process.version}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
