import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { PFLEX_BIN, spawnPflex, tempDir, type PflexProcess } from '../helpers/proc.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export const ADMIN_PASSWORD = 'correct-horse-battery';

export interface RunningMdm {
  url: string;
  dataDir: string;
  proc: PflexProcess;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `pflex <args>` to completion. */
export function runPflex(args: string[], env: NodeJS.ProcessEnv = {}, stdin?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [PFLEX_BIN, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (stdin !== undefined) child.stdin!.end(stdin);
    else child.stdin!.end();
  });
}

/** `pflex mdm init` then `pflex mdm start --port 0` in a temp dir; stopped at teardown. */
export async function startMdm(t: Teardown): Promise<RunningMdm> {
  const dataDir = join(tempDir(t, 'pflex-cli-mdm-'), 'mdm');
  const init = await runPflex(['mdm', 'init', '--data-dir', dataDir, '--admin-password', ADMIN_PASSWORD]);
  if (init.code !== 0) throw new Error(`pflex mdm init failed (${init.code}): ${init.stderr}`);
  const proc = spawnPflex(t, ['mdm', 'start', '--data-dir', dataDir, '--port', '0']);
  const line = await proc.waitForLog((l) => l.msg === 'mdm listening', 30_000);
  return { url: `http://127.0.0.1:${String(line.port)}`, dataDir, proc };
}
