import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { freePort, haveCommand, spawnPflex, type PflexProcess } from './proc.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface NbdTarget {
  host: string;
  port: number;
  name: string;
  /** nbd://127.0.0.1:PORT/NAME */
  uri: string;
}

export interface PflexNbdOptions {
  /** memory size (e.g. '1G'); default 1G when no file is given */
  memory?: string;
  file?: string;
  size?: string;
  name?: string;
  extraArgs?: string[];
}

/**
 * Starts `pflex nbd serve` on a free port. The server logs
 * {msg: 'nbd server listening', port} once it accepts connections.
 */
export async function startPflexNbd(t: Teardown, opts: PflexNbdOptions = {}): Promise<NbdTarget & { proc: PflexProcess }> {
  const name = opts.name ?? 'disk';
  const args = ['nbd', 'serve', '--port', '0', '--host', '127.0.0.1', '--name', name];
  if (opts.file) {
    args.push('--file', opts.file);
    if (opts.size) args.push('--size', opts.size);
  } else {
    args.push('--memory', opts.memory ?? '1G');
  }
  args.push(...(opts.extraArgs ?? []));
  const proc = spawnPflex(t, args);
  const line = await proc.waitForLog((l) => l.msg === 'nbd server listening');
  const port = Number(line.port);
  return { proc, host: '127.0.0.1', port, name, uri: `nbd://127.0.0.1:${port}/${name}` };
}

/** Starts the reference server `nbdkit memory SIZE` (or another plugin) on a free port. */
export async function startNbdkit(t: Teardown, pluginArgs: string[] = ['memory', '1G'], name = 'disk'): Promise<NbdTarget> {
  const port = await freePort();
  const child = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), '-e', name, ...pluginArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
  const deadline = Date.now() + 10000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nbdkit exited: ${stderr}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = spawn('nbdinfo', ['--size', `nbd://127.0.0.1:${port}/${name}`], { stdio: 'ignore' });
      c.on('exit', (code) => resolve(code === 0));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`nbdkit did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { host: '127.0.0.1', port, name, uri: `nbd://127.0.0.1:${port}/${name}` };
}

/** Skip message when a real client is missing (CI installs them all). */
export function missingClients(...commands: string[]): string | false {
  const missing = commands.filter((c) => !haveCommand(c));
  return missing.length ? `missing ${missing.join(', ')} (run scripts/install-test-deps.sh as root)` : false;
}
