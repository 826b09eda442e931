/** `pflex up` under test: start it, Ctrl-C it, run client commands. */
import type { Test } from 'tap';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { spawnPflex, type PflexProcess } from './proc.js';

export interface Run { code: number; out: string }

export function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
    });
  });
}

export function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(false); });
    s.once('error', () => resolve(true));
  });
}

/** Ctrl-C, then waits (pflex up stops each child, up to 10 s apiece, before it exits). */
export async function interrupt(proc: PflexProcess): Promise<number | null> {
  const child = proc.child;
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const done = once(child, 'exit');
  child.kill('SIGINT');
  const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const [code] = (await done) as [number | null];
  clearTimeout(killer);
  return code;
}

/** Starts pflex up; at teardown it gets Ctrl-C first (its children are in their own process group). */
export async function up(t: Test, dataDir: string, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ proc: PflexProcess; port: number; mgmtPort: number; text: string; line: Record<string, unknown> }> {
  const kills: Array<() => unknown> = [];
  const proc = spawnPflex({ teardown: (fn) => kills.push(fn) }, [
    'up', '--demo', '--demo-size', '64M', '--data-dir', dataDir, '--mdm-port', '0', '--sdc-port', '0',
    '--sdc-control-port', '0', '--sdc-mgmt-port', '0', '--sds-port-base', '0', '--sdc-host', '127.0.0.1', '--mgmt-port', '0', ...extraArgs,
  ], env);
  t.teardown(async () => {
    await interrupt(proc);
    for (const k of kills) await k();
  });
  const line = await proc.waitForLog((l) => l.msg === 'pflex up', 120_000);
  return { proc, line, port: line.nbdPort as number, mgmtPort: line.sdcMgmtPort as number, text: proc.logs.map((l) => String(l.msg)).join('\n') };
}
