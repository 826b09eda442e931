// What the chunk store's two files per chunk (data + checksums, see
// src/sds/store/file-store.ts) cost a durable write against one file with
// the checksum table after the data: open, pwrite the data, pwrite the
// checksums, fdatasync, close; for new chunks and for overwrites, with plain
// files in a temp dir on this machine's file system. Prints ms per write.
//
//   npm run build && node dist/bench/chunk-files.js [--count 300] [--size 4096]
import { mkdtempSync, rmSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { count: { type: 'string', default: '300' }, size: { type: 'string', default: '4096' } } });
const count = Number(values.count);
const size = Number(values.size);
const CHUNK = 1 << 20;
const data = Buffer.alloc(size, 7);
const crcs = Buffer.alloc(Math.max(4, (size / 4096) * 4), 3);

async function twoFiles(dir: string, i: number, fresh: boolean): Promise<void> {
  const flags = fresh ? 'w+' : 'r+';
  const d = await fsp.open(join(dir, `${i}.dat`), flags);
  const c = await fsp.open(join(dir, `${i}.crc`), flags);
  await d.write(data, 0, size, 0);
  await c.write(crcs, 0, crcs.length, 0);
  await Promise.all([d.datasync(), c.datasync()]);
  await Promise.all([d.close(), c.close()]);
}

async function oneFile(dir: string, i: number, fresh: boolean): Promise<void> {
  const d = await fsp.open(join(dir, `${i}.chunk`), fresh ? 'w+' : 'r+');
  await d.write(data, 0, size, 0);
  await d.write(crcs, 0, crcs.length, CHUNK);
  await d.datasync();
  await d.close();
}

async function msPer(layout: typeof twoFiles, dir: string, fresh: boolean): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < count; i++) await layout(dir, i, fresh);
  return (performance.now() - t0) / count;
}

console.log(`machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${count} writes of ${size} bytes`);
for (let round = 1; round <= 2; round++) {
  const row: string[] = [];
  for (const [name, layout] of [['two files', twoFiles], ['one file', oneFile]] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'pflex-chunkfiles-'));
    try {
      row.push(`${name}: new ${(await msPer(layout, dir, true)).toFixed(3)} ms, overwrite ${(await msPer(layout, dir, false)).toFixed(3)} ms`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`round ${round}: ${row.join('; ')}`);
}
