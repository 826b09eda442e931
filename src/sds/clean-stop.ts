/**
 * Whether this SDS's previous run ended without losing acknowledged writes.
 *
 * Writes are acknowledged once in the page cache (durable only after a FLUSH
 * or with FUA); the other replicas hold them too. A process crash (SIGKILL,
 * OOM kill, a bug) keeps the page cache, so nothing acknowledged is lost. A
 * power loss or kernel crash loses whatever was not fdatasynced: the SDS then
 * holds copies without writes it had acknowledged, and must not serve them.
 *
 * The run-state file `<dataDir>/run-state.json` tells the two apart:
 * `running` with the kernel's boot id is written at start, `stopped` after the
 * final flush of a graceful stop. At the next start:
 *
 *   - `stopped`                         -> clean
 *   - `running`, same boot id           -> the process died, the kernel did not: clean
 *   - `running`, another (or no) boot id -> the machine went down under us: NOT clean
 *   - no file, store empty              -> first start: clean
 *   - no file, store holds chunks       -> unknown history: NOT clean (safe side)
 *
 * A start that is not clean is reported to the MDM at registration
 * (`cleanStop: false`), which fences the SDS out of its PGs so that their
 * copies are rebuilt. Until the MDM has taken that report the file keeps
 * `unclean: true`, so a crash or stop in between does not forget it.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface RunState {
  state: 'running' | 'stopped';
  /** Kernel boot id when written (undefined where the OS has none). */
  bootId?: string;
  /** A previous unclean stop not yet reported to the MDM. */
  unclean?: boolean;
  atMs: number;
}

export interface PreviousStop {
  clean: boolean;
  reason: 'graceful stop' | 'process crash' | 'first start' | 'machine restart' | 'unknown history' | 'unreported unclean stop';
}

export const RUN_STATE_FILE = 'run-state.json';

/** The pure rule (the simulation uses it too). */
export function previousStop(prev: RunState | undefined, bootId: string | undefined, storeHasData: boolean): PreviousStop {
  if (!prev) return storeHasData ? { clean: false, reason: 'unknown history' } : { clean: true, reason: 'first start' };
  if (prev.unclean) return { clean: false, reason: 'unreported unclean stop' };
  if (prev.state === 'stopped') return { clean: true, reason: 'graceful stop' };
  if (bootId !== undefined && prev.bootId === bootId) return { clean: true, reason: 'process crash' };
  return { clean: false, reason: 'machine restart' };
}

/** The kernel's id of the current boot (Linux), undefined elsewhere. */
export function currentBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export async function readRunState(dataDir: string): Promise<RunState | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(join(dataDir, RUN_STATE_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const v = JSON.parse(text) as Partial<RunState>;
    if (v.state === 'running' || v.state === 'stopped') return { state: v.state, atMs: Number(v.atMs ?? 0), ...(typeof v.bootId === 'string' ? { bootId: v.bootId } : {}), ...(v.unclean ? { unclean: true } : {}) };
  } catch { /* a torn or foreign file: treated as a run that did not stop cleanly */ }
  return { state: 'running', atMs: 0 };
}

/** Replaces the run-state file durably (temp file, fsync, rename, fsync of the directory). */
export async function writeRunState(dataDir: string, s: RunState): Promise<void> {
  const path = join(dataDir, RUN_STATE_FILE);
  const tmp = `${path}.tmp`;
  const fh = await fsp.open(tmp, 'w');
  try {
    await fh.writeFile(JSON.stringify(s));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, path);
  const dir = await fsp.open(dataDir, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
