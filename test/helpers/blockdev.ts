// Helpers for tests that drive an NBD export through real block-device
// clients on the host (nbdfuse + loop devices) and for picking the server.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNbdkit, startPflexNbd, type NbdTarget } from './nbd.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export type ServerKind = 'pflex' | 'nbdkit';

/**
 * The server a real-client test drives: our `pflex nbd serve` (memory
 * backend). PFLEX_TEST_NBD_SERVER=nbdkit runs the same test against the
 * reference server, to tell a client quirk from a server bug.
 */
export async function startServerUnderTest(
  t: Teardown,
  opts: { memory: string; kind?: ServerKind },
): Promise<NbdTarget & { kind: ServerKind }> {
  const kind = opts.kind ?? (process.env.PFLEX_TEST_NBD_SERVER === 'nbdkit' ? 'nbdkit' : 'pflex');
  if (kind === 'nbdkit') return { ...(await startNbdkit(t, ['memory', opts.memory])), kind };
  return { ...(await startPflexNbd(t, { memory: opts.memory })), kind };
}

/**
 * Undo steps run last-in first-out at teardown (umount before losetup -d
 * before fusermount3 -u before kill), each attempted even when an earlier
 * one failed, so a failing test leaves no mount, loop device or FUSE mount.
 */
export class UndoStack {
  private readonly steps: Array<{ what: string; fn: () => unknown }> = [];

  constructor(t: Teardown) {
    t.teardown(() => this.unwind());
  }

  push(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn });
  }

  /** Runs one named step now (e.g. an umount the test itself asserts on). */
  async pop(what: string): Promise<void> {
    const i = this.steps.map((s) => s.what).lastIndexOf(what);
    if (i < 0) throw new Error(`no undo step ${what}`);
    const [step] = this.steps.splice(i, 1);
    await step!.fn();
  }

  async unwind(): Promise<string[]> {
    const errors: string[] = [];
    while (this.steps.length) {
      const step = this.steps.pop()!;
      try {
        await step.fn();
      } catch (err) {
        errors.push(`${step.what}: ${(err as Error).message}`);
      }
    }
    if (errors.length) console.error(`teardown problems:\n${errors.join('\n')}`);
    return errors;
  }
}

const SBIN_PATH = `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin`;

/** Runs a command to completion; rejects with its stderr on a non-zero exit. */
export function cmd(program: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(program, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 120000, env: { ...process.env, PATH: SBIN_PATH }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${program} ${args.join(' ')} failed (${err.code ?? err.signal}): ${stderr || stdout}`));
      else resolve(stdout);
    });
  });
}

/**
 * Exposes the export as a regular file with nbdfuse (MOUNTDIR/disk). The
 * FUSE mount is removed with fusermount3 -u and nbdfuse killed at undo.
 */
export async function nbdfuseAttach(undo: UndoStack, uri: string, mountDir: string): Promise<string> {
  mkdirSync(mountDir, { recursive: true });
  const file = join(mountDir, 'disk');
  const child = spawn('nbdfuse', [file, uri], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, 'exit');
  undo.push(`kill nbdfuse ${child.pid}`, async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
  });
  undo.push(`fusermount3 -u ${mountDir}`, async () => {
    // A loop device detached a moment ago may still hold the file open (the
    // kernel lets go when its last opener closes), so busy is retried.
    await untilSettled(async () => {
      if (isMountPoint(mountDir)) await cmd('fusermount3', ['-u', mountDir]);
    }, (err) => /busy/i.test(err.message));
  });
  const deadline = Date.now() + 15000;
  while (!isMountPoint(mountDir) || !existsSync(file)) {
    if (child.exitCode !== null) throw new Error(`nbdfuse exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`nbdfuse did not mount ${file}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return file;
}

/** True when dir is a mount point now (per /proc/self/mountinfo). */
export function isMountPoint(dir: string): boolean {
  const info = readFileSync('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((line) => line.split(' ')[4] === dir);
}

/** losetup -f --show FILE; detached (losetup -d) at undo. */
export async function loopAttach(undo: UndoStack, file: string): Promise<string> {
  const dev = (await cmd('losetup', ['-f', '--show', file])).trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) throw new Error(`losetup printed ${dev}`);
  undo.push(`losetup -d ${dev}`, async () => {
    // Only detach the loop device if it is still ours (backed by our file).
    const info = await cmd('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE', dev]).catch(() => '');
    if (info.trim() !== file) return;
    await cmd('losetup', ['-d', dev]);
    // losetup -d only marks a device still open elsewhere (udev's probe,
    // a lazy umount) for autoclear; wait until it has let go of the file.
    const backing = `/sys/block/${dev.slice('/dev/'.length)}/loop/backing_file`;
    await untilSettled(async () => {
      if (existsSync(backing)) throw new Error(`${dev} still holds ${file}`);
    }, () => true);
  });
  return dev;
}

/** Retries fn while it fails with an error `transient` accepts, up to 15 s. */
async function untilSettled(fn: () => Promise<void>, transient: (err: Error) => boolean): Promise<void> {
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!transient(err as Error) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** mount DEV DIR; unmounted at undo (the test may unmount earlier with undo.pop). */
export async function mountDev(undo: UndoStack, dev: string, dir: string, options: string[] = []): Promise<string> {
  mkdirSync(dir, { recursive: true });
  await cmd('mount', [...options, dev, dir]);
  const what = `umount ${dir}`;
  undo.push(what, async () => {
    if (isMountPoint(dir)) await cmd('umount', [dir]);
  });
  return what;
}
