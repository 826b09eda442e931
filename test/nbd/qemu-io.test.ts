// qemu's NBD client (qemu-io, qemu-img) against the server: pattern
// writes/reads, discard, write-zeroes, FUA, flush, unaligned IO, parallel
// AIO, and an image comparison. Each check runs against our server and, as
// a control, nbdkit (so a wrong-pattern read is known to fail for real).
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { startServerUnderTest, type ServerKind } from '../helpers/blockdev.js';

const skip = missingClients('qemu-io', 'qemu-img', 'nbdkit', 'nbdcopy');
const MiB = 1024 * 1024;

interface Run {
  code: number;
  out: string;
}

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 120000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

/** qemu-io exits 1 when any of its commands failed (pattern mismatch included). */
function qemuIo(uri: string, ...cmds: string[]): Promise<Run> {
  return run('qemu-io', ['-f', 'raw', uri, ...cmds.flatMap((c) => ['-c', c])]);
}

function succeeded(t: Test, r: Run, what: string): void {
  t.equal(r.code, 0, what);
  t.notMatch(r.out, /verification failed/, `${what}: every pattern verified`);
  if (r.code !== 0) t.comment(r.out);
}

for (const kind of ['pflex', 'nbdkit'] as ServerKind[]) {
  t.test(`qemu-io against ${kind}`, { skip }, async (t) => {
    const target = await startServerUnderTest(t, { memory: '64M', kind });

    t.test('pattern write then matching read', async (t) => {
      const r = await qemuIo(target.uri, 'write -P 0xab 0 1M', 'read -P 0xab 0 1M', 'write -P 0x5c 8M 3M', 'read -P 0x5c 8M 3M');
      succeeded(t, r, 'pattern reads after pattern writes');
      t.match(r.out, /read 3145728\/3145728 bytes at offset 8388608/);
    });

    t.test('a wrong pattern fails verification', async (t) => {
      const r = await qemuIo(target.uri, 'read -P 0xcd 0 1M');
      t.equal(r.code, 1, 'qemu-io reports the failed read');
      t.match(r.out, /Pattern verification failed at offset 0/);
      const partial = await qemuIo(target.uri, 'read -P 0xab 0 1M', 'read -P 0xab 1M 4k');
      t.match(partial.out, /Pattern verification failed at offset 1048576/, 'the byte after the write is not part of it');
    });

    t.test('unaligned write with FUA, surrounding bytes intact', async (t) => {
      const base = 16 * MiB;
      const off = base + 4097;
      const r = await qemuIo(target.uri,
        `write -P 0x11 ${base} 64k`,
        `write -f -P 0x22 ${off} 1000`,
        `read -P 0x11 ${base} 4097`,
        `read -P 0x22 ${off} 1000`,
        `read -P 0x11 ${off + 1000} ${64 * 1024 - 4097 - 1000}`,
        'flush');
      succeeded(t, r, 'FUA write inside a written range, read back around it');
    });

    t.test('write-zeroes reads back as zeros', async (t) => {
      const r = await qemuIo(target.uri,
        'write -P 0x33 20M 2M',
        'write -z 20M 512k', // NBD_CMD_WRITE_ZEROES with NO_HOLE
        'write -z -u 21M 512k', // may punch a hole
        'read -P 0 20M 512k',
        `read -P 0x33 ${20 * MiB + 512 * 1024} 512k`,
        'read -P 0 21M 512k',
        `read -P 0x33 ${21 * MiB + 512 * 1024} 512k`);
      succeeded(t, r, 'zeroed ranges read as zeros, the rest is intact');
    });

    t.test('discard succeeds and leaves neighbours alone', async (t) => {
      // Discarded bytes are unspecified by the NBD spec; only the range
      // around them is checked.
      const r = await qemuIo(target.uri,
        'write -P 0x44 24M 3M',
        'discard 25M 1M',
        'read -P 0x44 24M 1M',
        'read -P 0x44 26M 1M',
        'flush');
      succeeded(t, r, 'discard, then neighbours read back');
      t.match(r.out, /discard 1048576\/1048576 bytes at offset 26214400/);
    });

    t.test('parallel AIO writes and reads', async (t) => {
      const cmds: string[] = [];
      for (let i = 0; i < 16; i++) cmds.push(`aio_write -P ${0x60 + i} ${32 * MiB + i * 256 * 1024} 256k`);
      cmds.push('aio_flush');
      for (let i = 0; i < 16; i++) cmds.push(`aio_read -P ${0x60 + i} ${32 * MiB + i * 256 * 1024} 256k`);
      cmds.push('aio_flush');
      const r = await qemuIo(target.uri, ...cmds);
      succeeded(t, r, '16 parallel writes, flush, 16 parallel reads');
      t.equal((r.out.match(/^read 262144\/262144/gm) ?? []).length, 16, 'all 16 reads completed');
    });

    t.test('qemu-img map: block status shows written data and unwritten zeros', async (t) => {
      const img = await startServerUnderTest(t, { memory: '32M', kind });
      const w = await qemuIo(img.uri, 'write -P 0x11 4M 1M', 'write -P 0x22 16M 128k');
      succeeded(t, w, 'writes');
      const r = await run('qemu-img', ['map', '-f', 'raw', '--output=json', img.uri]);
      t.equal(r.code, 0, 'qemu-img map');
      const extents = JSON.parse(r.out) as Array<{ start: number; length: number; zero: boolean; data: boolean }>;
      let covered = 0;
      for (const e of extents) {
        t.equal(e.start, covered, `extent at ${e.start} follows the previous one`);
        covered += e.length;
      }
      t.equal(covered, 32 * MiB, 'extents cover the whole export');
      const at = (off: number) => extents.find((e) => e.start <= off && off < e.start + e.length)!;
      for (const off of [4 * MiB, 5 * MiB - 1, 16 * MiB, 16 * MiB + 128 * 1024 - 1]) {
        t.equal(at(off).data, true, `written byte ${off} is reported as data`);
        t.equal(at(off).zero, false, `written byte ${off} is not reported as zero`);
      }
      for (const off of [0, 4 * MiB - 1, 10 * MiB, 32 * MiB - 1]) t.equal(at(off).zero, true, `never-written byte ${off} is reported as zero`);
    });

    t.test('qemu-img compare with a local file of the same content', async (t) => {
      const dir = tempDir(t);
      const img = await startServerUnderTest(t, { memory: '16M', kind });
      const local = join(dir, 'local.img');
      const content = randomBytes(16 * MiB);
      writeFileSync(local, content);
      const copy = await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', local, img.uri]);
      t.equal(copy.code, 0, `qemu-img convert to the export ${copy.out}`);
      const same = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', '-s', local, img.uri]);
      t.equal(same.code, 0, `identical: ${same.out}`);
      t.match(same.out, /Images are identical/);
      // The complement of the byte there: a fixed pattern is already that byte in 1 run of 256.
      const poke = await qemuIo(img.uri, `write -P 0x${(content[12345678]! ^ 0xff).toString(16)} 12345678 1`);
      t.equal(poke.code, 0, 'one byte changed on the export');
      const differ = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', '-s', local, img.uri]);
      t.equal(differ.code, 1, 'a one-byte change is found');
      // qemu-img reports the first differing 512-byte sector.
      t.match(differ.out, `Content mismatch at offset ${Math.floor(12345678 / 512) * 512}`);
    });
  });
}
