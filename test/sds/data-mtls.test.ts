/**
 * Mutual TLS on the SDS data plane: a real MDM and two SDS processes run
 * with certificates of one cluster CA. A client with a certificate of that
 * CA writes (the primary forwards to the secondary over mTLS) and reads;
 * a plain-text client, a TLS client without a certificate and one with a
 * certificate of another CA are refused at the handshake with a log line,
 * and the good client goes on unharmed.
 */
import t from 'tap';
import tls from 'node:tls';
import { DataClient } from '../../src/dataplane/client.js';
import { Status } from '../../src/dataplane/proto.js';
import { issueIoToken } from '../../src/shared/iotoken.js';
import { deriveKey } from '../../src/shared/keys.js';
import { makeCerts } from '../helpers/certs.js';
import { listenerJson } from '../helpers/listener.js';
import { missingClients } from '../helpers/nbd.js';
import { startMdm, startSdsProc, waitForMapEpoch } from './cluster.js';

const CHUNK = 1024 * 1024;
const REFUSED = 'data connection refused: TLS handshake failed (mutual TLS needs a client certificate of the cluster CA)';

/** What a bare TLS client trusting the CA but presenting no certificate meets: the first read fails. */
function noCertClient(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, minVersion: 'TLSv1.3' });
    s.on('error', (err) => resolve(`error: ${err.message}`));
    s.on('close', () => resolve('closed'));
    s.on('data', () => resolve('data'));
    s.write(Buffer.alloc(64));
  });
}

t.test('SDS data plane with mutual TLS', { skip: missingClients('openssl') }, async (t) => {
  const certs = makeCerts(t, ['mdm', 'sds1', 'sds2', 'sdc1']);
  const foreign = makeCerts(t, ['sdc1'], 'pflex-certs-foreign-');
  const mdm = await startMdm(t, { tls: certs });
  const pd = await mdm.admin.createPd('pd1');
  const pool = await mdm.admin.createPool({ protectionDomainId: pd.id, name: 'pool1', replicationFactor: 2, pgCount: 1 });
  const sds = await Promise.all(['sds1', 'sds2'].map((n) => startSdsProc(t, mdm, n)));
  const map = await waitForMapEpoch(mdm, pool.id, sds);
  const vol = await mdm.admin.createVolume({ name: 'v', storagePoolId: pool.id, sizeBytes: 8 * CHUNK });
  const entry = map.pgs[0]!;
  const primary = sds.find((s) => s.id === entry.members[0])!;
  const secondary = sds.find((s) => s.id === entry.members[1])!;
  const token = issueIoToken(deriveKey(mdm.clusterKey, 'io-token'), { sdcId: 1, volumeId: vol.id, rights: 'rw', expiresAtMs: Date.now() + 3_600_000 });
  const addr = { pgId: 0, epoch: entry.epoch, volumeId: vol.id, treeId: vol.volumeTreeId, chunkIndex: 0, layerId: 0 };
  const stats = (port: number) => listenerJson<{ forwarded: number; tlsRefused: number; ops: Record<string, { ops: number }> }>(mdm, port, '/stats');

  const client = (material: ConstructorParameters<typeof DataClient>[0]['tls']) => {
    const c = new DataClient({ host: '127.0.0.1', port: primary.port, requestTimeoutMs: 20_000, connectTimeoutMs: 10_000, ...(material ? { tls: material } : {}) });
    t.teardown(() => c.close());
    return c;
  };
  const good = client(certs.material('sdc1'));
  const data = Buffer.alloc(CHUNK, 0x3c);
  t.equal((await good.write(addr, 0, data, token)).status, Status.OK, 'a client of the cluster CA writes');
  t.ok((await stats(primary.mgmtPort)).forwarded > 0, 'the primary forwarded the write to the secondary (over mTLS)');
  t.ok(((await stats(secondary.mgmtPort)).ops.write?.ops ?? 0) > 0, 'the secondary stored the forwarded write');

  const refusals = () => primary.proc.logs.filter((l) => l.msg === REFUSED).length;
  const plain = client(undefined);
  await t.rejects(plain.write(addr, 0, data, token), { code: 'PFLEX_ERR_UNAVAILABLE' }, 'a plain-text client is refused');
  await primary.proc.waitForLog((l) => l.msg === REFUSED);
  t.equal(refusals(), 1, 'the refusal is logged');

  const other = client({ ...foreign.material('sdc1'), ca: certs.material('sdc1').ca });
  await t.rejects(other.write(addr, 0, data, token), { code: 'PFLEX_ERR_UNAVAILABLE' }, 'a client certificate of another CA is refused');
  t.not(await noCertClient(primary.port, certs.material('sdc1').ca), 'data', 'a TLS client without a certificate gets nothing');
  const untrusting = client(foreign.material('sdc1'));
  await t.rejects(untrusting.ping(), { code: 'PFLEX_ERR_UNAVAILABLE' }, 'a client that does not trust the cluster CA does not talk to the SDS');
  for (let i = 0; i < 100 && refusals() < 4; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(refusals(), 4, 'each refused handshake is logged');
  t.equal((await stats(primary.mgmtPort)).tlsRefused, 4, 'and counted');

  const back = await good.read(addr, 0, CHUNK, token);
  t.equal(back.status, Status.OK, 'the good connection was not disturbed');
  t.ok(back.payload.equals(data), 'it reads what it wrote');
  t.ok(primary.proc.logs.some((l) => l.msg === REFUSED && typeof l.remote === 'string' && typeof l.err === 'string'), 'the log line names the peer and the TLS error');
});
