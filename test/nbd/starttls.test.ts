/**
 * NBD_OPT_STARTTLS: the server upgrades the connection in the handshake and
 * serves the export over TLS to real clients (nbdinfo with nbds://, qemu-io
 * with tls-creds-x509). A TLS-required server refuses every other option
 * before STARTTLS with NBD_REP_ERR_TLS_REQD (and closes on EXPORT_NAME), a
 * plain client is refused cleanly, and the server keeps serving others.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { ensureCa, gnutlsClientDir, issueCert } from '../../src/cli/certs.js';
import { MemoryBackend, NbdServer, singleExportOptions } from '../../src/nbd/index.js';
import { missingClients } from '../helpers/nbd.js';
import { tempDir } from '../helpers/proc.js';
import { greet, OPT, option, RawSocket, readOptionReply, REP } from './handshake-raw-client.js';

const skip = missingClients('nbdinfo', 'qemu-io', 'openssl');
const ERR_TLS_REQD = 0x80000005;
const log = pino({ level: 'silent' });

/** Async: the server under test runs in this process. */
function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out: stdout + stderr });
    });
  });
}

async function serve(t: Test, certs: string, required: boolean, verifyPeer = false, logger = log): Promise<number> {
  const options = {
    cert: readFileSync(join(certs, 'server.crt')), key: readFileSync(join(certs, 'server.key')), minVersion: 'TLSv1.3',
    ...(verifyPeer ? { ca: readFileSync(join(certs, 'ca.crt')) } : {}),
  } as const;
  const srv = new NbdServer({ ...singleExportOptions({ name: 'disk', backend: new MemoryBackend(16 * 1024 * 1024) }, logger), tls: { options, required, verifyPeer } });
  t.teardown(() => srv.close());
  return (await srv.listen(0, '127.0.0.1')).port;
}

t.test('NBD STARTTLS', { skip }, async (t) => {
  const certs = tempDir(t, 'pflex-nbd-tls-');
  ensureCa(certs);
  issueCert(certs, 'server', { ips: ['127.0.0.1'], dns: ['localhost'] });
  issueCert(certs, 'client', { dns: ['client'] });
  const clientDir = gnutlsClientDir(certs, 'client', join(certs, 'client'));
  // A CA the server's certificate is not from.
  const other = tempDir(t, 'pflex-nbd-other-ca-');
  ensureCa(other);
  issueCert(other, 'client', { dns: ['client'] });
  const otherDir = gnutlsClientDir(other, 'client', join(other, 'client'));

  await t.test('TLS required', async (t) => {
    const port = await serve(t, certs, true);
    const tlsUri = `nbds://127.0.0.1:${port}/disk?tls-certificates=${clientDir}`;
    const size = await run('nbdinfo', ['--size', tlsUri]);
    t.equal(size.out.trim(), String(16 * 1024 * 1024), `nbdinfo over TLS: ${size.out}`);

    const plain = await run('nbdinfo', ['--size', `nbd://127.0.0.1:${port}/disk`]);
    t.not(plain.code, 0, 'a plain client is refused');
    t.match(plain.out, /TLS/i, 'and told that TLS is required');
    const wrongCa = await run('nbdinfo', ['--size', `nbds://127.0.0.1:${port}/disk?tls-certificates=${otherDir}`]);
    t.not(wrongCa.code, 0, 'a client that does not trust the server certificate fails the handshake');

    const objs = ['--object', `tls-creds-x509,id=tls0,endpoint=client,dir=${clientDir}`];
    const img = `driver=nbd,host=127.0.0.1,port=${port},export=disk,tls-creds=tls0`;
    const w = await run('qemu-io', [...objs, '--image-opts', img, '-c', 'write -P 0x3d 65536 1M', '-c', 'flush']);
    t.equal(w.code, 0, `qemu-io writes over TLS: ${w.out}`);
    const r = await run('qemu-io', [...objs, '--image-opts', img, '-c', 'read -P 0x3d 65536 1M', '-c', 'read -P 0 0 65536']);
    t.equal(r.code, 0, 'and reads it back');
    t.notMatch(r.out, /verification failed/i);

    // Byte level: every option before STARTTLS gets ERR_TLS_REQD; EXPORT_NAME closes.
    const s = await RawSocket.connect(port);
    t.teardown(() => s.socket.destroy());
    await greet(s);
    for (const opt of [OPT.LIST, OPT.STRUCTURED_REPLY, OPT.INFO, OPT.GO]) {
      s.write(option(opt, opt === OPT.INFO || opt === OPT.GO ? Buffer.from('\0\0\0\x04disk\0\0', 'latin1') : undefined));
      const rep = await readOptionReply(s);
      t.equal(rep.type, ERR_TLS_REQD, `option ${opt} before STARTTLS: NBD_REP_ERR_TLS_REQD`);
    }
    s.write(option(OPT.EXPORT_NAME, Buffer.from('disk')));
    t.ok(await s.waitClosed(), 'EXPORT_NAME before STARTTLS closes the connection');

    t.equal((await run('nbdinfo', ['--size', tlsUri])).code, 0, 'the server still serves TLS clients');
  });

  await t.test('client certificate required (verifyPeer)', async (t) => {
    const lines: Array<{ msg?: string; reason?: string }> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as { msg?: string }); } });
    const port = await serve(t, certs, true, true, logger);
    const uri = (dir: string) => `nbds://127.0.0.1:${port}/disk?tls-certificates=${dir}`;
    t.equal((await run('nbdinfo', ['--size', uri(clientDir)])).code, 0, 'a client certificate of the CA is admitted (nbdinfo)');
    const objs = ['--object', `tls-creds-x509,id=tls0,endpoint=client,dir=${clientDir}`];
    const img = `driver=nbd,host=127.0.0.1,port=${port},export=disk,tls-creds=tls0`;
    const w = await run('qemu-io', [...objs, '--image-opts', img, '-c', 'write -P 0x7e 0 64k', '-c', 'read -P 0x7e 0 64k']);
    t.equal(w.code, 0, `qemu-io with tls-creds-x509 client-cert.pem writes and reads: ${w.out}`);
    // Trusts the server, but presents no certificate / one of another CA.
    const caOnly = tempDir(t, 'pflex-nbd-ca-only-');
    copyFileSync(join(certs, 'ca.crt'), join(caOnly, 'ca-cert.pem'));
    const foreignCert = tempDir(t, 'pflex-nbd-foreign-cert-');
    copyFileSync(join(certs, 'ca.crt'), join(foreignCert, 'ca-cert.pem'));
    copyFileSync(join(otherDir, 'client-cert.pem'), join(foreignCert, 'client-cert.pem'));
    copyFileSync(join(otherDir, 'client-key.pem'), join(foreignCert, 'client-key.pem'));
    t.not((await run('nbdinfo', ['--size', uri(caOnly)])).code, 0, 'a client without a certificate is refused');
    t.not((await run('nbdinfo', ['--size', uri(foreignCert)])).code, 0, 'a client certificate of another CA is refused');
    // (qemu checks its own certificate against its CA before connecting, so a foreign one never reaches the server.)
    const q = await run('qemu-io', ['--object', `tls-creds-x509,id=tls0,endpoint=client,dir=${caOnly}`, '--image-opts', img, '-c', 'read 0 4k']);
    t.not(q.code, 0, `qemu-io without a client certificate is refused (${q.out.trim().split('\n')[0] ?? ''})`);
    t.equal((await run('nbdinfo', ['--size', uri(clientDir)])).code, 0, 'the server still serves good clients');
    const refused = lines.filter((l) => l.msg === 'nbd client refused: TLS handshake failed');
    t.equal(refused.length, 3, `each refused client is logged: ${JSON.stringify(refused.map((l) => l.reason))}`);
    t.ok(refused.every((l) => typeof l.reason === 'string' && l.reason.startsWith('TLS handshake failed')), 'with the reason');
  });

  await t.test('TLS optional', async (t) => {
    const port = await serve(t, certs, false);
    t.equal((await run('nbdinfo', ['--size', `nbd://127.0.0.1:${port}/disk`])).code, 0, 'plain text is allowed');
    t.equal((await run('nbdinfo', ['--size', `nbds://127.0.0.1:${port}/disk?tls-certificates=${clientDir}`])).code, 0, 'and TLS');
    const s = await RawSocket.connect(port);
    t.teardown(() => s.socket.destroy());
    await greet(s);
    s.write(option(OPT.STARTTLS, Buffer.from('x')));
    t.equal((await readOptionReply(s)).type, REP.ERR_INVALID, 'STARTTLS with data: ERR_INVALID');
  });

  await t.test('no TLS configured', async (t) => {
    const srv = new NbdServer(singleExportOptions({ name: 'disk', backend: new MemoryBackend(1024 * 1024) }, log));
    t.teardown(() => srv.close());
    const port = (await srv.listen(0, '127.0.0.1')).port;
    const s = await RawSocket.connect(port);
    t.teardown(() => s.socket.destroy());
    await greet(s);
    s.write(option(OPT.STARTTLS));
    t.equal((await readOptionReply(s)).type, REP.ERR_UNSUP, 'STARTTLS: ERR_UNSUP');
  });
});
