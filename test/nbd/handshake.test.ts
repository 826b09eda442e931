import t from 'tap';
import { startPflexNbd } from '../helpers/nbd.js';
import {
  CMD,
  ERRNO,
  OPT,
  REP,
  RawNbdClient,
  RawSocket,
  goData,
  greet,
  metaData,
  option,
  readOptionReply,
  request,
  startInProcess,
  type OptionReply,
} from './handshake-raw-client.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;

/** Reads replies to one option up to and including its final one (ACK or an error). */
async function replies(s: RawSocket): Promise<OptionReply[]> {
  const out: OptionReply[] = [];
  for (;;) {
    const r = await readOptionReply(s);
    out.push(r);
    if (r.type === REP.ACK || r.type >= 0x80000000) return out;
  }
}

t.test('greeting and EXPORT_NAME, with and without NO_ZEROES', async (t) => {
  const { port } = await startInProcess(t, { size: SIZE });
  const a = await RawSocket.connect(port);
  t.equal(await greet(a, 1), 3, 'server flags: FIXED_NEWSTYLE | NO_ZEROES');
  a.write(option(OPT.EXPORT_NAME, Buffer.from('disk')));
  const reply = await a.mustRead(134);
  t.equal(Number(reply.readBigUInt64BE(0)), SIZE);
  t.equal(reply.readUInt16BE(8) & 1, 1, 'HAS_FLAGS');
  t.equal(reply.readUInt16BE(8) & (1 << 7), 0, 'no DF without structured replies');
  t.same(reply.subarray(10), Buffer.alloc(124), '124 zero bytes without NO_ZEROES');
  a.write(request(CMD.READ, 0, 5n, 0, 16));
  const r = await a.mustRead(16 + 16);
  t.equal(r.readUInt32BE(0), 0x67446698, 'simple reply');
  t.equal(r.readBigUInt64BE(8), 5n, 'handle echoed');
  a.destroy();

  const b = await RawSocket.connect(port);
  await greet(b, 3);
  b.write(option(OPT.EXPORT_NAME, Buffer.alloc(0)));
  const short = await b.mustRead(10);
  t.equal(Number(short.readBigUInt64BE(0)), SIZE, 'the empty name is the default export');
  b.write(request(CMD.DISC, 0, 0n, 0, 0));
  t.ok(await b.waitClosed(), 'DISC closes');
  t.equal(b.socket.bytesRead, 18 + 10, 'no zero padding after NO_ZEROES, nothing after DISC');

  const c = await RawSocket.connect(port);
  await greet(c);
  c.write(option(OPT.EXPORT_NAME, Buffer.from('nope')));
  t.ok(await c.waitClosed(), 'EXPORT_NAME of an unknown export closes (it cannot carry an error)');
});

t.test('ABORT, LIST, INFO and GO', async (t) => {
  const { port } = await startInProcess(t, { size: SIZE, readOnlyExport: true });
  const s = await RawSocket.connect(port);
  await greet(s);

  s.write(option(OPT.LIST));
  const list = await replies(s);
  t.same(
    list.filter((r) => r.type === REP.SERVER).map((r) => r.data.subarray(4, 4 + r.data.readUInt32BE(0)).toString()),
    ['disk', 'ro'],
    'LIST names every export',
  );
  t.equal(list.at(-1)!.type, REP.ACK);

  s.write(option(OPT.INFO, goData('disk', [1, 2, 3])));
  const info = await replies(s);
  const byType = new Map(info.filter((r) => r.type === REP.INFO).map((r) => [r.data.readUInt16BE(0), r.data]));
  t.equal(Number(byType.get(0)!.readBigUInt64BE(2)), SIZE, 'INFO_EXPORT size');
  t.equal(byType.get(1)!.subarray(2).toString(), 'disk', 'INFO_NAME');
  t.equal(byType.get(2)!.subarray(2).toString(), 'test disk', 'INFO_DESCRIPTION');
  const bs = byType.get(3)!;
  t.same([bs.readUInt32BE(2), bs.readUInt32BE(6), bs.readUInt32BE(10)], [1, 4096, 32 * MiB], 'INFO_BLOCK_SIZE');

  s.write(option(OPT.INFO, goData('ro')));
  const ro = await replies(s);
  t.equal(ro[0]!.data.readUInt16BE(10) & 2, 2, 'read-only export flagged READ_ONLY');
  t.equal(ro.at(-1)!.type, REP.ACK, 'INFO leaves the handshake open');

  s.write(option(OPT.GO, goData('', [])));
  const go = await replies(s);
  t.equal(go.at(-1)!.type, REP.ACK, 'GO on the default export');
  s.write(request(CMD.READ, 0, 1n, 0, 512));
  t.equal((await s.mustRead(16)).readUInt32BE(4), 0, 'transmission started');
  s.destroy();

  const a = await RawSocket.connect(port);
  await greet(a);
  a.write(option(OPT.ABORT));
  const ack = await readOptionReply(a);
  t.equal(ack.type, REP.ACK, 'ABORT is acknowledged');
  t.ok(await a.waitClosed(), 'then the server closes');
});

t.test('meta contexts: LIST and SET for base:allocation', async (t) => {
  const { port } = await startInProcess(t, { size: SIZE, readOnlyExport: true });
  const s = await RawSocket.connect(port);
  await greet(s);
  s.write(option(OPT.STRUCTURED_REPLY));
  t.equal((await readOptionReply(s)).type, REP.ACK);

  const names = (rs: OptionReply[]): string[] => rs.filter((r) => r.type === REP.META_CONTEXT).map((r) => r.data.subarray(4).toString());
  s.write(option(OPT.LIST_META_CONTEXT, metaData('disk', [])));
  t.same(names(await replies(s)), ['base:allocation'], 'LIST without queries lists everything');
  s.write(option(OPT.LIST_META_CONTEXT, metaData('disk', ['base:'])));
  t.same(names(await replies(s)), ['base:allocation'], 'LIST of a namespace');
  s.write(option(OPT.LIST_META_CONTEXT, metaData('disk', ['x-other:thing'])));
  const none = await replies(s);
  t.same(none.map((r) => r.type), [REP.ACK], 'an unknown context matches nothing');
  s.write(option(OPT.LIST_META_CONTEXT, metaData('nope', [])));
  t.equal((await replies(s)).at(-1)!.type, REP.ERR_UNKNOWN, 'unknown export');

  s.write(option(OPT.SET_META_CONTEXT, metaData('disk', ['x-other:thing', 'base:allocation'])));
  const set = await replies(s);
  t.same(names(set), ['base:allocation']);
  t.equal(set[0]!.data.readUInt32BE(0), 1, 'context id 1');

  // The selection belongs to "disk": GO on "ro" must not inherit it.
  s.write(option(OPT.GO, goData('ro')));
  await replies(s);
  s.write(request(CMD.BLOCK_STATUS, 0, 9n, 0, 4096));
  const head = await s.mustRead(20);
  t.equal(head.readUInt16BE(6), 0x8001, 'BLOCK_STATUS on another export: error chunk');
  const payload = await s.mustRead(head.readUInt32BE(16));
  t.equal(payload.readUInt32BE(0), ERRNO.EINVAL);
  s.destroy();

  const c = await RawNbdClient.connect(port, { baseAllocation: true });
  t.ok(c.flags & (1 << 7), 'SEND_DF with structured replies');
  await c.write(MiB, Buffer.alloc(4096, 1));
  const bs = await c.send(CMD.BLOCK_STATUS, 0, 2 * MiB);
  t.same(bs.extents, [
    [MiB, 3],
    [65536, 0],
    [MiB - 65536, 3],
  ]);
  await c.disconnect();
});

t.test('pflex nbd serve: SIGTERM and SIGINT shut down cleanly with clients attached', async (t) => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const srv = await startPflexNbd(t, { memory: '16M' });
    const attached = await RawNbdClient.connect(srv.port);
    t.equal((await attached.write(0, Buffer.alloc(MiB, 2))).error, 0);
    const handshaking = await RawSocket.connect(srv.port);
    await handshaking.mustRead(18);
    const code = await srv.proc.stop(signal);
    t.equal(code, 0, `${signal}: exit code 0`);
    t.ok(await attached.s.waitClosed(), `${signal}: attached client disconnected`);
    t.ok(await handshaking.waitClosed(), `${signal}: handshaking client disconnected`);
    t.ok(srv.proc.logs.some((l) => l.msg === 'nbd server stopped'), `${signal}: logged the stop`);
  }
});

t.test('a lookup that throws refuses the option, not the connection', async (t) => {
  const { NbdServer, MemoryBackend } = await import('../../src/nbd/index.js');
  const { pino } = await import('pino');
  const disk = { name: 'disk', backend: new MemoryBackend(MiB) };
  let failing = true;
  const server = new NbdServer({
    lookup: (name) => {
      if (failing) throw new Error('metadata manager unreachable');
      return name === 'disk' ? disk : undefined;
    },
    list: () => {
      throw new Error('no list today');
    },
    logger: pino({ level: 'silent' }),
  });
  const { port } = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  const s = await RawSocket.connect(port);
  await greet(s);
  s.write(option(OPT.GO, goData('disk')));
  const r = await readOptionReply(s);
  t.equal(r.type, REP.ERR_UNKNOWN, 'GO refused');
  t.match(r.data.toString(), /unreachable/, 'with the reason');
  s.write(option(OPT.LIST));
  t.equal((await readOptionReply(s)).type, 0x80000002, 'LIST refused with ERR_POLICY');
  failing = false;
  s.write(option(OPT.GO, goData('disk')));
  t.equal((await replies(s)).at(-1)!.type, REP.ACK, 'the next GO succeeds');
  s.destroy();
});

t.test('a client that shuts its sending side after its requests still gets every reply', async (t) => {
  const { port } = await startInProcess(t, { size: SIZE });
  const c = await RawNbdClient.connect(port, { structured: false });
  await c.write(0, Buffer.alloc(4096, 4));
  const pending = [c.read(0, 4096), c.read(4096, 4096), c.send(CMD.FLUSH, 0, 0)];
  c.s.socket.end();
  const [a, b, f] = await Promise.all(pending);
  t.same(a!.data, Buffer.alloc(4096, 4));
  t.same(b!.data, Buffer.alloc(4096));
  t.equal(f!.error, 0);
  t.ok(await c.s.waitClosed(), 'then the server closes');
});

t.test('pflex nbd serve refuses bad arguments with a message', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { PFLEX_BIN, tempDir } = await import('../helpers/proc.js');
  const dir = tempDir(t);
  const run = (...args: string[]) => spawnSync(process.execPath, [PFLEX_BIN, 'nbd', 'serve', '--port', '0', '--host', '127.0.0.1', ...args], { encoding: 'utf8', timeout: 30000 });
  const sizeWithoutFile = run('--memory', '1G', '--size', '2G');
  t.not(sizeWithoutFile.status, 0);
  t.match(sizeWithoutFile.stderr, /--size goes with --file/);
  const missing = run('--file', `${dir}/missing.img`);
  t.not(missing.status, 0);
  t.match(missing.stderr, /ENOENT|no such file/i, 'a missing file without --size');
  const badSize = run('--memory', 'lots');
  t.not(badSize.status, 0);
  t.match(badSize.stderr, /not a size/);
});
