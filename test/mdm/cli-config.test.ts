import t from 'tap';
import { runPflex, type CliResult } from '../cli/helpers.js';
import { fetchJson } from '../helpers/http.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import https from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { componentProof, readClusterKey } from '../../src/shared/component-auth.js';
import { haveCommand, spawnPflex, tempDir } from '../helpers/proc.js';

const init = (args: string[]): Promise<CliResult> => runPflex(['mdm', 'init', ...args]);
const json = fetchJson;
const run = promisify(execFile);

t.test('pflex mdm start reads a config file; flags win over it; unknown settings are refused', async (t) => {
  const dir = join(tempDir(t), 'data');
  t.equal((await init(['--data-dir', dir, '--admin-password', 'first-password'])).code, 0);
  const cfg = join(dir, 'mdm.json');
  writeFileSync(cfg, JSON.stringify({ port: 0, heartbeatIntervalMs: 500, ioTokenTtlMs: 1000 }));
  const mdm = spawnPflex(t, ['mdm', 'start', '--data-dir', dir, '--config', cfg, '--heartbeat-interval-ms', '700']);
  const line = await mdm.waitForLog((l) => l.msg === 'mdm listening');
  const base = `http://127.0.0.1:${line.port as number}`;
  const key = readClusterKey(join(dir, 'cluster.key'));
  const tsMs = Date.now();
  const auth = await json(`${base}/auth/component`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'sdc', name: 'g1', tsMs, proof: componentProof(key, 'sdc', 'g1', tsMs) }),
  });
  t.equal(auth.status, 200);
  const headers = { authorization: `Bearer ${auth.body.token as string}`, 'content-type': 'application/json' };
  const sdc = await json(`${base}/sdcs`, { method: 'POST', headers, body: JSON.stringify({ guid: 'g1' }) });
  const beat = await json(`${base}/sdcs/${sdc.body.id as number}/heartbeat`, { method: 'POST', headers, body: '{}' });
  t.same(beat.body, { state: 'ACTIVE', heartbeatIntervalMs: 700 }, 'the flag wins over the file');
  await mdm.stop();

  writeFileSync(cfg, JSON.stringify({ port: 0, heartbeatIntervalMS: 500 }));
  const bad = spawnPflex(t, ['mdm', 'start', '--data-dir', dir, '--config', cfg]);
  const code = await new Promise<number | null>((resolve) => bad.child.on('exit', resolve));
  t.equal(code, 2);
  t.match(bad.stderr.join('\n'), /unknown setting "heartbeatIntervalMS"/);
});

const noOpenssl = haveCommand('openssl') ? false : 'openssl is not installed (it makes the test certificate)';
t.test('pflex mdm start serves HTTPS with --tls-cert/--tls-key', { skip: noOpenssl }, async (t) => {
  const dir = join(tempDir(t), 'data');
  t.equal((await init(['--data-dir', dir, '--admin-password', 'first-password'])).code, 0);
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  const mdm = spawnPflex(t, ['mdm', 'start', '--data-dir', dir, '--port', '0', '--tls-cert', cert, '--tls-key', key]);
  const line = await mdm.waitForLog((l) => l.msg === 'mdm listening');
  t.equal(line.tls, true);
  const get = (path: string): Promise<{ status: number; body: string }> => new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: line.port as number, path, ca: readFileSync(cert) }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
  const live = await get('/health/live');
  t.equal(live.status, 200);
  t.same(JSON.parse(live.body), { ok: true });
  t.equal((await get('/volumes')).status, 401, 'authentication still applies over TLS');
  await t.rejects(fetch(`http://127.0.0.1:${line.port as number}/health/live`), 'plain HTTP is not served');
  await mdm.stop();

  const half = spawnPflex(t, ['mdm', 'start', '--data-dir', dir, '--port', '0', '--tls-cert', cert]);
  const code = await new Promise<number | null>((resolve) => half.child.on('exit', resolve));
  t.equal(code, 2, 'a certificate without a key is refused');
});
