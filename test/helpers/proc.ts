import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import readline from 'node:readline';
import { atProcessExit } from './exit-hook.js';

/** Repository root (tests run from dist/test/..., so climb to package.json). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const PFLEX_BIN = join(ROOT, 'bin/pflex.js');

export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh temp dir removed at teardown. */
export function tempDir(t: Teardown, prefix = 'pflex-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

export interface PflexProcess {
  child: ChildProcess;
  /** Every stdout line parsed as JSON (pino), in order. */
  logs: Array<Record<string, unknown>>;
  stderr: string[];
  /** Resolves with the first log line satisfying pred (rejects if the process exits first or on timeout). */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGTERM (or the given signal) and wait for exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns `pflex <args>` (of this checkout, or of `bin`) with pino JSON logs on stdout; killed at teardown. */
export function spawnPflex(t: Teardown, args: string[], env: NodeJS.ProcessEnv = {}, bin = PFLEX_BIN): PflexProcess {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...process.env, PFLEX_LOG_LEVEL: process.env.PFLEX_LOG_LEVEL ?? 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let exited = false;
  const exitWaiters: Array<(err: Error) => void> = [];
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      parsed = { msg: line };
    }
    logs.push(parsed);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.pred(parsed)) {
        waiters[i]!.resolve(parsed);
        waiters.splice(i, 1);
      }
    }
  });
  readline.createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  // SIGKILL, not SIGTERM: the test process is going away and cannot wait for a graceful stop.
  const unhook = atProcessExit(() => child.kill('SIGKILL'));
  child.on('exit', (code, signal) => {
    exited = true;
    unhook();
    for (const w of exitWaiters) w(new Error(`pflex ${args.join(' ')} exited (${code ?? signal}): ${stderr.slice(-20).join('\n')}`));
  });
  const proc: PflexProcess = {
    child,
    logs,
    stderr,
    waitForLog(pred, timeoutMs = 15000) {
      const found = logs.find(pred);
      if (found) return Promise.resolve(found);
      if (exited) return Promise.reject(new Error(`pflex ${args.join(' ')} already exited: ${stderr.join('\n')}`));
      return new Promise((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`timed out waiting for a log line from pflex ${args.join(' ')}`)), timeoutMs);
        waiters.push({ pred, resolve: (l) => { clearTimeout(timer); res(l); } });
        exitWaiters.push((err) => { clearTimeout(timer); rej(err); });
      });
    },
    async stop(signal = 'SIGTERM') {
      if (exited || child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const done = once(child, 'exit');
      child.kill(signal);
      const killer = setTimeout(() => child.kill('SIGKILL'), 10000);
      const [code] = (await done) as [number | null];
      clearTimeout(killer);
      return code;
    },
  };
  t.teardown(() => proc.stop('SIGKILL'));
  return proc;
}

/** True when the command is on PATH (tests skip with a message otherwise). */
export function haveCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
    return true;
  } catch {
    return false;
  }
}
