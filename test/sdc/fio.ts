/** fio with its nbd engine (libnbd), JSON report written to a file (the engine chats on stdout). */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface FioJob {
  error: number;
  read: { io_bytes: number; iops: number; bw_bytes: number; clat_ns?: { percentile?: Record<string, number> } };
  write: { io_bytes: number; iops: number; bw_bytes: number; clat_ns?: { percentile?: Record<string, number> } };
}

export interface FioRun {
  code: number;
  jobs: FioJob[];
  stderr: string;
}

export function fio(dir: string, uri: string, args: string[], timeoutMs = 300_000): Promise<FioRun> {
  const out = join(dir, `fio-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  return new Promise((resolve) => {
    execFile('fio', ['--ioengine=nbd', `--uri=${uri}`, '--output-format=json', `--output=${out}`, ...args], { cwd: dir, encoding: 'utf8', timeout: timeoutMs }, (err, _stdout, stderr) => {
      let jobs: FioJob[] = [];
      try {
        jobs = (JSON.parse(readFileSync(out, 'utf8').replace(/^[^{]*/, '')) as { jobs: FioJob[] }).jobs;
      } catch {
        // fio died before writing its report: the caller sees no jobs
      }
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, jobs, stderr });
    });
  });
}
