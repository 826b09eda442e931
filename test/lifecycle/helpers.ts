/** Shared by the lifecycle tests: qemu-io against an NBD export, and polling until a condition holds. */
import { execFile } from 'node:child_process';
import type { Test } from 'tap';

export function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
    });
  });
}

/** qemu-io commands on an NBD URI; each -P read verifies its pattern. */
export async function io(t: Test, uri: string, what: string, ...cmds: string[]): Promise<void> {
  const r = await run('qemu-io', ['-f', 'raw', uri, ...cmds.flatMap((c) => ['-c', c])]);
  t.equal(r.code, 0, what);
  t.notMatch(r.out, /verification failed|error/i, `${what}: patterns verified`);
  if (r.code !== 0) t.comment(r.out);
}

/** Polls fn every 200 ms until it answers something. */
export async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
