/**
 * `pflex up --tls`: certificates are made under DATA/certs on the first run,
 * every HTTP listener (MDM, SDS control and mgmt, SDC control and mgmt)
 * serves TLS 1.3 only with a certificate of the cluster CA, the CLI reaches
 * the MDM with --ca, SDSs copy chunks between them over HTTPS, MGMT serves
 * HTTPS with Secure cookies, and IO flows over the mutual-TLS data plane,
 * which refuses plain-text clients and certificates of another CA. The SDC
 * runs with PFLEX_SDC_NBD_TLS_VERIFY_PEER=1: NBD clients need the
 * nbd-client certificate.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { copyFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { DataClient } from '../../src/dataplane/client.js';
import { Status } from '../../src/dataplane/proto.js';
import { MdmClient, type Sds } from '../../src/shared/mdm-client.js';
import { readPem, tlsFetch } from '../../src/shared/tls.js';
import { makeCerts } from '../helpers/certs.js';
import { missingClients } from '../helpers/nbd.js';
import { PFLEX_BIN, tempDir } from '../helpers/proc.js';
import { interrupt, run, up } from '../helpers/up.js';

const skip = missingClients('nbdinfo', 'nbdcopy', 'qemu-io', 'openssl');

/** The TLS version a client allowing only `version` gets from the server, or the error it meets. */
function handshake(port: number, ca: Buffer, version: tls.SecureVersion): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, minVersion: version, maxVersion: version });
    s.once('secureConnect', () => { resolve(s.getProtocol() ?? '?'); s.destroy(); });
    s.once('error', (err) => resolve(`error: ${err.message}`));
  });
}

function pflex(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [PFLEX_BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
    });
  });
}

t.test('pflex up --tls', { skip }, async (t) => {
  const dataDir = join(tempDir(t, 'pflex-up-tls-'), 'data');
  // pflex up passes its environment on: the SDC asks NBD clients for a certificate of the cluster CA.
  const cluster = await up(t, dataDir, ['--tls'], { PFLEX_SDC_NBD_TLS_VERIFY_PEER: '1' });
  const certs = join(dataDir, 'certs');
  const caPath = join(certs, 'ca.crt');
  const ca = readPem(caPath);
  t.equal(cluster.line.tls, true);
  for (const name of ['ca', 'mdm', 'sds1', 'sds2', 'sds3', 'sdc1', 'mgmt']) {
    t.equal(statSync(join(certs, `${name}.key`)).mode & 0o777, 0o600, `${name}.key is 0600`);
    const v = await run('openssl', ['verify', '-CAfile', caPath, join(certs, `${name}.crt`)]);
    t.equal(v.code, 0, `${name}.crt is signed by the cluster CA`);
  }

  const mdmUrl = cluster.line.mdmUrl as string;
  t.match(mdmUrl, /^https:\/\//, 'the MDM serves HTTPS');
  const password = readFileSync(join(dataDir, 'admin-password'), 'utf8').trim();
  const env = { PFLEX_CONFIG_DIR: tempDir(t, 'pflex-up-tls-cli-'), PFLEX_CA: '' };
  const noCa = await pflex(['login', '--mdm', mdmUrl, '--user', 'admin', `--password=${password}`], env);
  t.not(noCa.code, 0, 'the CLI refuses the MDM without the cluster CA');
  const login = await pflex(['login', '--mdm', mdmUrl, '--ca', caPath, '--user', 'admin', `--password=${password}`], env);
  t.equal(login.code, 0, `login with --ca ${login.out}`);
  const list = await pflex(['sds', 'list'], env);
  t.equal(list.code, 0, 'later commands use the CA saved at login');
  t.match(list.out, /sds1/);

  // The dashboard serves HTTPS with its certificate and reaches the MDM over HTTPS trusting the cluster CA.
  const mgmtUrl = String(cluster.line.mgmtUrl);
  t.match(mgmtUrl, /^https:\/\//, 'MGMT serves HTTPS');
  const dash = await tlsFetch(ca)(`${mgmtUrl}login`, {
    method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: 'admin', password }).toString(),
  });
  t.equal(dash.status, 303, 'a dashboard login goes through the MDM over TLS');
  t.match(dash.headers.get('set-cookie') ?? '', /; Secure/, 'the session cookie is Secure');

  const admin = new MdmClient({ url: mdmUrl, ca });
  await admin.login('admin', password);
  const sds: Sds[] = await admin.listSds();
  const sdcPort = cluster.mgmtPort;
  const ports = [
    ['MDM', Number(new URL(mdmUrl).port)],
    ['SDC mgmt', sdcPort],
    ['MGMT', Number(new URL(mgmtUrl).port)],
    ...sds.flatMap((s) => [[`${s.name} control`, s.controlPort!], [`${s.name} mgmt`, s.mgmtPort!]]),
  ] as Array<[string, number]>;
  for (const [name, port] of ports) {
    t.equal(await handshake(port, ca, 'TLSv1.3'), 'TLSv1.3', `${name}: TLS 1.3`);
    t.match(await handshake(port, ca, 'TLSv1.2'), /^error/, `${name}: TLS 1.2 refused`);
  }
  const untrusted = await fetch(`https://127.0.0.1:${sdcPort}/health`).then(() => 'connected', (err: Error) => String((err.cause as Error | undefined)?.message ?? err.message));
  t.match(untrusted, /certificate/i, 'a client that does not trust the cluster CA is refused');

  // IO through the SDC, then an SDS copies a chunk from a peer over HTTPS (what rebuild does).
  const nbdClient = cluster.line.nbdClientDir as string;
  const objs = ['--object', `tls-creds-x509,id=tls0,endpoint=client,dir=${nbdClient}`];
  const img = `driver=nbd,host=127.0.0.1,port=${cluster.port},export=demo,tls-creds=tls0`;
  const w = await run('qemu-io', [...objs, '--image-opts', img, '-c', 'write -P 0x5c 0 4M', '-c', 'flush']);
  t.equal(w.code, 0, `write through the SDC over NBD STARTTLS ${w.out}`);
  const copyFile = join(tempDir(t, 'pflex-up-tls-copy-'), 'demo.img');
  const r = await run('nbdcopy', [`nbds://127.0.0.1:${cluster.port}/demo?tls-certificates=${nbdClient}`, copyFile]);
  t.equal(r.code, 0, `nbdcopy reads the volume over TLS ${r.out}`);
  const copied = readFileSync(copyFile);
  t.ok(copied.subarray(0, 4 * 1024 * 1024).equals(Buffer.alloc(4 * 1024 * 1024, 0x5c)), 'what qemu-io wrote over TLS');
  const size = await run('nbdinfo', ['--size', `nbds://127.0.0.1:${cluster.port}/?tls-certificates=${nbdClient}`]);
  t.equal(size.out.trim(), String(64 * 1024 * 1024), 'nbdinfo over TLS sees the demo volume');
  const plain = await run('nbdinfo', ['--size', `nbd://127.0.0.1:${cluster.port}/`]);
  t.not(plain.code, 0, 'a plain NBD client is refused by the TLS SDC');
  const caOnly = tempDir(t, 'pflex-up-tls-ca-only-');
  copyFileSync(caPath, join(caOnly, 'ca-cert.pem'));
  const noCert = await run('nbdinfo', ['--size', `nbds://127.0.0.1:${cluster.port}/?tls-certificates=${caOnly}`]);
  t.not(noCert.code, 0, 'an NBD client without a certificate is refused (--nbd-tls-verify-peer)');
  // The SDC got there over the mutual-TLS data plane; other data clients are refused by the SDS.
  const dataClient = (material?: ConstructorParameters<typeof DataClient>[0]['tls']): DataClient => {
    const c = new DataClient({ host: '127.0.0.1', port: sds[0]!.dataPort, requestTimeoutMs: 20_000, connectTimeoutMs: 10_000, ...(material ? { tls: material } : {}) });
    t.teardown(() => c.close());
    return c;
  };
  await t.rejects(dataClient().ping(), { code: 'PFLEX_ERR_UNAVAILABLE' }, 'a plain-text data client is refused by the SDS');
  const foreign = makeCerts(t, ['intruder'], 'pflex-up-tls-foreign-').material('intruder');
  await t.rejects(dataClient({ ...foreign, ca }).ping(), { code: 'PFLEX_ERR_UNAVAILABLE' }, 'a data client with a certificate of another CA is refused');
  const own = (name: string) => ({ cert: readPem(join(certs, `${name}.crt`)), key: readPem(join(certs, `${name}.key`)), ca });
  t.equal((await dataClient(own('sdc1')).ping()).status, Status.OK, 'a data client with a cluster certificate is served');
  const sdsLog = join(dataDir, 'logs', `${sds[0]!.name}.log`);
  for (let i = 0; i < 100 && (readFileSync(sdsLog, 'utf8').match(/data connection refused: TLS handshake failed/g) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal((readFileSync(sdsLog, 'utf8').match(/data connection refused: TLS handshake failed/g) ?? []).length, 2, 'the SDS logged both refusals');

  const https = tlsFetch(ca);
  const auth = { authorization: `Bearer ${admin.bearerToken!}` };
  const [a, b] = [sds[0]!, sds[1]!];
  const held = (await (await https(`https://127.0.0.1:${a.controlPort!}/pgs`, { headers: auth })).json()) as Array<{ pg: number; chunks: number }>;
  const pg = held.find((p) => p.chunks > 0)!;
  t.ok(pg, `${a.name} holds chunks`);
  const chunk = ((await (await https(`https://127.0.0.1:${a.controlPort!}/pgs/${pg.pg}/chunks`, { headers: auth })).json()) as Array<{ treeId: number; chunkIndex: number; layerId: number; sizeBytes: number }>)[0]!;
  const copy = await https(`https://127.0.0.1:${b.controlPort!}/pgs/${pg.pg}/copy-chunk`, {
    method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ from: { address: '127.0.0.1', controlPort: a.controlPort }, treeId: chunk.treeId, chunkIndex: chunk.chunkIndex, layerId: chunk.layerId }),
  });
  t.equal(copy.status, 200, `${b.name} copied a chunk from ${a.name} over HTTPS`);
  t.same(await copy.json(), { sizeBytes: chunk.sizeBytes });

  t.equal(await interrupt(cluster.proc), 0, 'Ctrl-C stops the TLS cluster cleanly');
});
