import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { missingClients, startPflexNbd } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';

const skip = missingClients('nbdinfo', 'nbdsh');
const PY_ENV = { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` };

function nbdinfo(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('nbdinfo', args, { encoding: 'utf8', timeout: 30000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a python snippet in nbdsh against uri (h is the connected handle). */
function nbdsh(uri: string, code: string): string {
  const r = spawnSync('nbdsh', ['-u', uri, '-c', code], { encoding: 'utf8', env: PY_ENV, timeout: 30000 });
  if (r.status !== 0) throw new Error(`nbdsh failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

const CAN_FLAGS = ['connect', 'read', 'write', 'structured-reply', 'cache', 'df', 'fast-zero', 'flush', 'fua', 'multi-conn', 'trim', 'zero'];

t.test('nbdinfo against the memory backend', { skip }, async (t) => {
  const srv = await startPflexNbd(t, { memory: '256M' });

  const json = JSON.parse(nbdinfo('--json', srv.uri).stdout) as {
    protocol: string;
    structured: boolean;
    exports: Array<Record<string, unknown>>;
  };
  t.equal(json.protocol, 'newstyle-fixed');
  t.equal(json.structured, true);
  const e = json.exports[0]!;
  t.equal(e['export-name'], 'disk');
  t.equal(e['export-size'], 256 * 1024 * 1024);
  t.same(e.contexts, ['base:allocation']);
  t.equal(e.is_read_only, false);
  t.equal(e.block_size_minimum, 1);
  t.equal(e.block_size_preferred, 4096);
  t.equal(e.block_size_maximum, 32 * 1024 * 1024);
  for (const k of ['can_cache', 'can_df', 'can_fast_zero', 'can_flush', 'can_fua', 'can_multi_conn', 'can_trim', 'can_zero']) t.equal(e[k], true, k);

  for (const flag of CAN_FLAGS) t.equal(nbdinfo('--can', flag, srv.uri).code, 0, `--can ${flag}`);
  t.equal(nbdinfo('--is', 'read-only', srv.uri).code, 2, 'not read-only');
  t.equal(nbdinfo('--is', 'rotational', srv.uri).code, 2, 'not rotational');
  t.equal(nbdinfo('--size', srv.uri).stdout.trim(), String(256 * 1024 * 1024), '--size');

  const def = JSON.parse(nbdinfo('--json', `nbd://127.0.0.1:${srv.port}`).stdout) as { exports: Array<Record<string, unknown>> };
  t.equal(def.exports[0]!['export-size'], 256 * 1024 * 1024, 'the empty name serves the default export');

  const list = JSON.parse(nbdinfo('--list', '--json', srv.uri).stdout) as { exports: Array<Record<string, unknown>> };
  t.same(list.exports.map((x) => x['export-name']), ['disk'], '--list');
  t.match(nbdinfo('--list', srv.uri).stdout, /export="disk"/);

  // --map: everything is a hole until written; written pages become data.
  const fresh = nbdinfo('--map', '--json', srv.uri);
  t.same(JSON.parse(fresh.stdout), [{ offset: 0, length: 256 * 1024 * 1024, type: 3, description: 'hole,zero' }], 'fresh disk is one hole');
  nbdsh(srv.uri, "h.pwrite(b'\\x01' * 65536, 1048576); h.pwrite(b'\\x02' * 4096, 4 * 1048576)");
  const map = JSON.parse(nbdinfo('--map', '--json', srv.uri).stdout) as Array<{ offset: number; length: number; type: number }>;
  t.same(
    map.map((m) => [m.offset, m.length, m.type]),
    [
      [0, 1048576, 3],
      [1048576, 65536, 0],
      [1048576 + 65536, 4 * 1048576 - 1048576 - 65536, 3],
      [4 * 1048576, 65536, 0],
      [4 * 1048576 + 65536, 256 * 1048576 - 4 * 1048576 - 65536, 3],
    ],
    'written 64 KiB pages are data, the rest holes',
  );
  t.match(nbdinfo('--map', '--totals', srv.uri).stdout, /data/);

  const unknown = nbdinfo('--json', `nbd://127.0.0.1:${srv.port}/nope`);
  t.not(unknown.code, 0, 'unknown export fails');
  t.match(unknown.stderr, /nope|unknown|export/i);
  t.equal(nbdinfo('--can', 'connect', srv.uri).code, 0, 'the server still serves after that');
});

t.test('nbdinfo against a read-only file export', { skip }, async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'disk.img');
  const rw = await startPflexNbd(t, { file, size: '16M' });
  nbdsh(rw.uri, "h.pwrite(b'pflex' * 1000, 0); h.flush()");
  t.equal(await rw.proc.stop('SIGTERM'), 0, 'clean exit on SIGTERM');

  const ro = await startPflexNbd(t, { file, extraArgs: ['--read-only'] });
  const e = (JSON.parse(nbdinfo('--json', ro.uri).stdout) as { exports: Array<Record<string, unknown>> }).exports[0]!;
  t.equal(e['export-size'], 16 * 1024 * 1024, 'size taken from the file');
  t.equal(e.is_read_only, true);
  t.equal(nbdinfo('--is', 'read-only', ro.uri).code, 0, '--is read-only');
  for (const flag of ['connect', 'read', 'structured-reply', 'df', 'flush', 'multi-conn', 'cache']) t.equal(nbdinfo('--can', flag, ro.uri).code, 0, `--can ${flag}`);
  for (const flag of ['write', 'trim', 'zero', 'fast-zero', 'fua']) t.equal(nbdinfo('--can', flag, ro.uri).code, 2, `--can ${flag} is false`);
  // The file backend cannot see holes from node: it reports all data, honestly.
  const map = JSON.parse(nbdinfo('--map', '--json', ro.uri).stdout) as Array<{ type: number; length: number }>;
  t.same(map.map((m) => [m.length, m.type]), [[16 * 1024 * 1024, 0]], 'file map: all data');
  t.equal(nbdsh(ro.uri, 'print(h.pread(5000, 0).decode())').trim(), 'pflex'.repeat(1000), 'data survived the restart');
  const refused = spawnSync('nbdsh', ['-u', ro.uri, '-c', "h.set_strict_mode(0); h.pwrite(b'x', 0)"], { encoding: 'utf8', env: PY_ENV });
  t.not(refused.status, 0, 'a write to the read-only export fails');
  t.match(refused.stderr, /Operation not permitted|EPERM/);
});

t.test('nbdinfo against the writable file export: trim not advertised', { skip }, async (t) => {
  const dir = tempDir(t);
  const srv = await startPflexNbd(t, { file: join(dir, 'd.img'), size: '8M' });
  for (const flag of ['write', 'zero', 'fast-zero', 'fua', 'flush', 'multi-conn', 'cache']) t.equal(nbdinfo('--can', flag, srv.uri).code, 0, `--can ${flag}`);
  t.equal(nbdinfo('--can', 'trim', srv.uri).code, 2, '--can trim is false (node cannot punch holes)');
});
