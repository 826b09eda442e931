// fio's nbd ioengine (libnbd) against the server: random writes at QD32 with
// crc32c verification, several connections at once, and a control run
// showing that the verification really catches a corrupted block.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { startServerUnderTest, type ServerKind } from '../helpers/blockdev.js';

const skip = missingClients('fio', 'qemu-io', 'nbdkit');

interface FioJob {
  jobname: string;
  error: number;
  read: { io_bytes: number; iops: number };
  write: { io_bytes: number; iops: number };
}

interface FioRun {
  code: number;
  stderr: string;
  jobs: FioJob[];
}

/** Runs fio in dir (its verify state files land there) with JSON written to a file (fio's nbd engine chats on stdout). */
function fio(dir: string, uri: string, args: string[]): Promise<FioRun> {
  const out = join(dir, `fio-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  return new Promise((resolve) => {
    execFile('fio', ['--ioengine=nbd', `--uri=${uri}`, '--output-format=json', `--output=${out}`, ...args], { cwd: dir, encoding: 'utf8', timeout: 120000 }, (err, _stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      let jobs: FioJob[] = [];
      try {
        const text = readFileSync(out, 'utf8');
        jobs = (JSON.parse(text.slice(text.indexOf('{'))) as { jobs: FioJob[] }).jobs;
      } catch {
        // fio died before writing its report: the caller sees no jobs
      }
      resolve({ code, stderr, jobs });
    });
  });
}

const MiB = 1024 * 1024;

for (const kind of ['pflex', 'nbdkit'] as ServerKind[]) {
  t.test(`fio nbd engine against ${kind}`, { skip }, async (t) => {
    const dir = tempDir(t);
    const target = await startServerUnderTest(t, { memory: '256M', kind });

    t.test('4 KiB random writes at QD32, verify=crc32c', async (t) => {
      const size = 128 * MiB;
      const r = await fio(dir, target.uri, ['--name=randwrite-verify', '--rw=randwrite', '--bs=4k', '--iodepth=32', `--size=${size}`, '--verify=crc32c', '--verify_fatal=1']);
      t.equal(r.code, 0, 'fio exits 0');
      if (r.code !== 0) t.comment(r.stderr);
      t.equal(r.jobs.length, 1);
      t.equal(r.jobs[0]?.error, 0, 'zero verify errors');
      t.equal(r.jobs[0]?.write.io_bytes, size, 'every block written');
      t.equal(r.jobs[0]?.read.io_bytes, size, 'every block read back and verified');
    });

    t.test('mixed sizes on 4 connections, verify while writing', async (t) => {
      const r = await fio(dir, target.uri, [
        '--name=multi', '--numjobs=4', '--offset_increment=48M', '--size=32M', '--rw=randwrite', '--bsrange=4k-128k',
        '--iodepth=16', '--verify=crc32c', '--verify_backlog=64', '--verify_fatal=1',
      ]);
      t.equal(r.code, 0, 'fio exits 0');
      if (r.code !== 0) t.comment(r.stderr);
      t.equal(r.jobs.length, 4, 'four jobs ran');
      for (const j of r.jobs) {
        t.equal(j.error, 0, `job ${j.jobname} had no errors`);
        t.ok(j.read.io_bytes > 0, `job ${j.jobname} verified data`);
      }
    });

    t.test('a corrupted block is caught (control)', async (t) => {
      const common = ['--name=control', '--rw=randwrite', '--bs=4k', '--iodepth=32', '--size=8M', '--offset=200M', '--verify=crc32c'];
      const write = await fio(dir, target.uri, [...common, '--do_verify=0']);
      t.equal(write.code, 0, 'write pass');
      const poke = await new Promise<number>((resolve) =>
        execFile('qemu-io', ['-f', 'raw', target.uri, '-c', `write -P 0x55 ${200 * MiB + 8192} 100`], (err) => resolve(err ? 1 : 0)),
      );
      t.equal(poke, 0, 'corrupted 100 bytes of one block');
      const verify = await fio(dir, target.uri, [...common, '--verify_only=1']);
      t.not(verify.code, 0, 'fio fails');
      t.not(verify.jobs[0]?.error ?? -1, 0, 'the job reports a verify error');
      t.match(verify.stderr, /verify: bad magic header/);
    });
  });
}
