import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { missingClients, startPflexNbd } from '../helpers/nbd.js';
import { ROOT } from '../helpers/proc.js';

// python3-libnbd lives in Debian's python; the default python3 may be another build.
const PYTHON = '/usr/bin/python3';
const skip = missingClients('nbdsh') || missingClients(PYTHON);
const PY_DIR = join(ROOT, 'test/nbd/py');

function runPy(script: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(PYTHON, [join(PY_DIR, script), ...args], { cwd: PY_DIR, env: { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

t.test('libnbd edge cases: unknown export, range, zero length, unaligned, zero/trim, block status, OFFSET_HOLE', { skip }, async (t) => {
  const size = 128 * 1024 * 1024;
  const srv = await startPflexNbd(t, { memory: '128M' });
  const r = await runPy('edge_cases.py', [`nbd://127.0.0.1:${srv.port}`, String(size)]);
  t.equal(r.code, 0, r.out);
  t.match(r.out, /\nOK\n$/);
  t.equal(srv.proc.child.exitCode, null, 'server still running');
});

t.test('64 concurrent requests on one connection; flush visibility across connections', { skip }, async (t) => {
  const srv = await startPflexNbd(t, { memory: '64M' });
  const r = await runPy('concurrency.py', [srv.uri]);
  t.equal(r.code, 0, r.out);
  t.match(r.out, /64 in flight: ok/);
  t.match(r.out, /\nOK\n$/);
});

t.test('read-only export refuses writes with EPERM', { skip }, async (t) => {
  const srv = await startPflexNbd(t, { memory: '16M', extraArgs: ['--read-only'] });
  const r = await runPy('readonly.py', [srv.uri]);
  t.equal(r.code, 0, r.out);
  t.match(r.out, /OK/);
});

t.test('nbdsh itself (the shell) talks to the server', { skip }, async (t) => {
  const srv = await startPflexNbd(t, { memory: '16M' });
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('nbdsh', ['-u', srv.uri, '-c', "h.pwrite(b'nbdsh!', 4096); print(h.pread(6, 4096).decode(), h.get_size(), h.get_structured_replies_negotiated())"], {
      env: { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` },
    });
    let s = '';
    child.stdout.on('data', (d: Buffer) => (s += d.toString()));
    child.stderr.on('data', (d: Buffer) => (s += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(s) : reject(new Error(s))));
  });
  t.equal(out.trim(), `nbdsh! ${16 * 1024 * 1024} True`);
});
