/**
 * `pflex up --demo`: one command starts MDM, three SDS and an SDC; the demo
 * volume is the SDC's default export; data written through it survives a
 * clean stop (Ctrl-C) and a second `pflex up` on the same data directory.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { missingClients } from '../helpers/nbd.js';
import { spawnPflex, tempDir, type PflexProcess } from '../helpers/proc.js';

const skip = missingClients('nbdinfo', 'qemu-io');

interface Run { code: number; out: string }

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
    });
  });
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(false); });
    s.once('error', () => resolve(true));
  });
}

/** Ctrl-C, then waits (pflex up stops each child, up to 10 s apiece, before it exits). */
async function interrupt(proc: PflexProcess): Promise<number | null> {
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
async function up(t: Test, dataDir: string): Promise<{ proc: PflexProcess; port: number; mgmtPort: number; text: string }> {
  const kills: Array<() => unknown> = [];
  const proc = spawnPflex({ teardown: (fn) => kills.push(fn) }, [
    'up', '--demo', '--demo-size', '64M', '--data-dir', dataDir, '--mdm-port', '0', '--sdc-port', '0',
    '--sdc-control-port', '0', '--sdc-mgmt-port', '0', '--sds-port-base', '0', '--sdc-host', '127.0.0.1',
  ]);
  t.teardown(async () => {
    await interrupt(proc);
    for (const k of kills) await k();
  });
  const line = await proc.waitForLog((l) => l.msg === 'pflex up', 120_000);
  return { proc, port: line.nbdPort as number, mgmtPort: line.sdcMgmtPort as number, text: proc.logs.map((l) => String(l.msg)).join('\n') };
}

t.test('pflex up --demo', { skip }, async (t) => {
  const dataDir = join(tempDir(t, 'pflex-up-'), 'data');

  const first = await up(t, dataDir);
  t.match(first.text, /new cluster/, 'first run initialises the cluster');
  t.match(first.text, /nbd-client 127\.0\.0\.1 \d+ \/dev\/nbd0/, 'prints how to attach with nbd-client');
  t.match(first.text, /nbdfuse/, 'and with nbdfuse + losetup');
  const password = readFileSync(join(dataDir, 'admin-password'), 'utf8').trim();
  t.match(first.text, password, 'prints the admin password');
  for (const d of ['mdm/mdm.db', 'sds1', 'sds2', 'sds3', 'logs/mdm.log']) t.ok(existsSync(join(dataDir, d)), `data/${d}`);

  const size = await run('nbdinfo', ['--size', `nbd://127.0.0.1:${first.port}/`]);
  t.equal(size.out.trim(), String(64 * 1024 * 1024), 'the default export is the demo volume');
  const w = await run('qemu-io', ['-f', 'raw', `nbd://127.0.0.1:${first.port}/demo`, '-c', 'write -P 0xa7 1000000 3000000', '-c', 'flush']);
  t.equal(w.code, 0, `write through the SDC ${w.out}`);

  t.equal(await interrupt(first.proc), 0, 'Ctrl-C stops pflex up cleanly');
  t.ok(await refused(first.port), 'the NBD port is closed');
  t.ok(await refused(first.mgmtPort), 'the SDC mgmt port is closed');
  for (const name of ['sds1', 'sds2', 'sds3']) {
    t.match(readFileSync(join(dataDir, 'logs', `${name}.log`), 'utf8'), /sds stopping/, `${name} was stopped by a signal`);
  }

  const second = await up(t, dataDir);
  t.match(second.text, /existing cluster/, 'the second run reuses the data');
  const r = await run('qemu-io', ['-f', 'raw', `nbd://127.0.0.1:${second.port}/demo`, '-c', 'read -P 0xa7 1000000 3000000', '-c', 'read -P 0 0 1000000']);
  t.equal(r.code, 0, 'the data written in the first run reads back');
  t.notMatch(r.out, /verification failed/i);
  t.equal(await interrupt(second.proc), 0, 'stops cleanly again');
});
