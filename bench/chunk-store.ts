// The SDS chunk store (src/sds/store/file-store.ts) on this machine's file
// system, through its public interface only, so the same file runs against
// any build of the store: ms per durable write (a FUA write, fdatasync
// before it returns) into new chunks and into existing ones, ms per write
// plus FLUSH, MiB/s of 1 MiB overwrites each followed by a FLUSH with eight
// in flight (the SDS side of a durable sequential write at QD8), and the
// time to open a store of many chunks. Where the kernel shows the file
// system's block device (/sys/dev/block), the 4 KiB FUA overwrite row also
// counts the device's write requests and KiB written per write: a figure
// that does not depend on how busy the machine is.
//
//   npm run build && node dist/bench/chunk-store.js [--count 300] [--rounds 3]
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FileChunkStore } from '../src/sds/store/file-store.js';

const { values } = parseArgs({ options: { count: { type: 'string', default: '300' }, rounds: { type: 'string', default: '3' } } });
const count = Number(values.count);
const rounds = Number(values.rounds);
const KiB = 1024;
const small = Buffer.alloc(4 * KiB, 7);
const large = Buffer.alloc(1024 * KiB, 9);
const key = (i: number) => ({ treeId: 1, chunkIndex: i, layerId: 0 });

async function msPer(n: number, op: (i: number) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await op(i);
  return (performance.now() - t0) / n;
}

/** MiB/s of op over `chunks` chunks in turn, eight in flight, for 5 s. */
async function mibPerS(chunks: number, op: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  let done = 0;
  const t0 = performance.now();
  const end = t0 + 5000;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      await op(next++ % chunks);
      done++;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return done / ((performance.now() - t0) / 1000);
}

/** Write requests and sectors written so far on the block device holding dir, if the kernel shows it. */
function deviceWrites(dir: string): { requests: number; sectors: number } | undefined {
  const dev = statSync(dir).dev;
  const path = `/sys/dev/block/${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((Math.floor(dev / 4096)) & 0xfff00)}/stat`;
  if (!existsSync(path)) return undefined;
  const f = readFileSync(path, 'utf8').trim().split(/\s+/).map(Number);
  return { requests: f[4]!, sectors: f[6]! };
}

async function round(): Promise<Record<string, number>> {
  const root = mkdtempSync(join(tmpdir(), 'pflex-chunkstore-'));
  try {
    const s = await FileChunkStore.open({ root });
    const out: Record<string, number> = {};
    out['4K FUA, new chunk'] = await msPer(count, (i) => s.write(0, key(i), 0, small, true));
    const before = deviceWrites(root);
    out['4K FUA, overwrite'] = await msPer(count, (i) => s.write(0, key(i), 4 * KiB * (i % 8), small, true));
    const after = deviceWrites(root);
    if (before && after) {
      out['(disk writes each)'] = (after.requests - before.requests) / count;
      out['(disk KiB each)'] = (after.sectors - before.sectors) / 2 / count;
    }
    out['4K + FLUSH, overwrite'] = await msPer(count, async (i) => {
      await s.write(0, key(i), 4 * KiB * (i % 8), small);
      await s.flush();
    });
    out['1M FUA, new chunk'] = await msPer(Math.ceil(count / 4), (i) => s.write(1, key(i), 0, large, true));
    out['1M + FLUSH, 8 at once (MiB/s)'] = await mibPerS(Math.ceil(count / 4), (i) => s.write(1, key(i), 0, large).then(() => s.flush()));
    await s.close();
    const t0 = performance.now();
    const reopened = await FileChunkStore.open({ root });
    out[`open, ${count + Math.ceil(count / 4)} chunks`] = performance.now() - t0;
    await reopened.close();
    return out;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

console.log(`machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${count} writes per row, ms each unless marked`);
for (let r = 1; r <= rounds; r++) {
  const row = await round();
  console.log(`round ${r}: ${Object.entries(row).map(([k, v]) => `${k} ${v.toFixed(3)}`).join('; ')}`);
}
