import { execFile } from 'node:child_process';
import { PFLEX_BIN } from '../helpers/proc.js';


export { ADMIN_PASSWORD } from '../helpers/mdm.js';


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

export { startMdm } from '../helpers/mdm.js';
