import t from 'tap';
import { once } from 'node:events';
import { join } from 'node:path';
import { FileBackend, MemoryBackend, NbdError, type BlockBackend } from '../../src/nbd/index.js';
import { tempDir } from '../helpers/proc.js';
import {
  CMD,
  CMD_FLAG,
  ERRNO,
  RawNbdClient,
  RawSocket,
  greet,
  option,
  goData,
  readOptionReply,
  request,
  startInProcess,
  OPT,
  REP,
} from './handshake-raw-client.js';

const MiB = 1024 * 1024;

t.test('out-of-range requests get EINVAL (read/trim/cache) or ENOSPC (write/zero); the connection goes on', async (t) => {
  const { port } = await startInProcess(t, { size: 8 * MiB });
  const c = await RawNbdClient.connect(port, { baseAllocation: true });
  t.equal((await c.read(8 * MiB - 512, 1024)).error, ERRNO.EINVAL, 'read past the end');
  t.equal((await c.read(2 ** 62, 512)).error, ERRNO.EINVAL, 'read at an absurd offset');
  t.equal((await c.write(8 * MiB - 1, Buffer.alloc(2))).error, ERRNO.ENOSPC, 'write past the end');
  t.equal((await c.send(CMD.WRITE_ZEROES, 8 * MiB, 4096)).error, ERRNO.ENOSPC, 'zero past the end');
  t.equal((await c.send(CMD.TRIM, 8 * MiB, 1)).error, ERRNO.EINVAL, 'trim past the end');
  t.equal((await c.send(CMD.CACHE, 9 * MiB, 1)).error, ERRNO.EINVAL, 'cache past the end');
  t.equal((await c.send(CMD.BLOCK_STATUS, 8 * MiB - 1, 2)).error, ERRNO.EINVAL, 'block status past the end');
  const tail = await c.read(8 * MiB - 512, 512);
  t.equal(tail.error, 0, 'the last sector still reads');
  t.same(tail.data, Buffer.alloc(512));
  await c.disconnect();
});

t.test('unknown commands and flags get EINVAL', async (t) => {
  const { port } = await startInProcess(t);
  const c = await RawNbdClient.connect(port);
  t.equal((await c.send(42, 0, 512)).error, ERRNO.EINVAL, 'unknown command');
  t.equal((await c.read(0, 512, 0x100)).error, ERRNO.EINVAL, 'unknown flag bit');
  t.equal((await c.write(0, Buffer.alloc(512), CMD_FLAG.NO_HOLE)).error, ERRNO.EINVAL, 'NO_HOLE on WRITE');
  t.equal((await c.read(0, 512, CMD_FLAG.REQ_ONE)).error, ERRNO.EINVAL, 'REQ_ONE on READ');
  t.equal((await c.send(CMD.FLUSH, 4096, 0)).error, ERRNO.EINVAL, 'FLUSH with an offset');
  t.equal((await c.send(CMD.BLOCK_STATUS, 0, 4096)).error, ERRNO.EINVAL, 'BLOCK_STATUS without a meta context');
  const ok = await c.write(0, Buffer.alloc(512, 7), CMD_FLAG.FUA);
  t.equal(ok.error, 0, 'FUA write accepted');
  t.same((await c.read(0, 512)).data, Buffer.alloc(512, 7), 'and the connection still serves data');
  await c.disconnect();
});

t.test('simple replies (no structured reply negotiated): errors carry no payload, DF is refused', async (t) => {
  const { port } = await startInProcess(t, { size: MiB });
  const c = await RawNbdClient.connect(port, { structured: false });
  t.equal(c.flags & (1 << 7), 0, 'SEND_DF not advertised without structured replies');
  t.equal((await c.read(0, 512, CMD_FLAG.DF)).error, ERRNO.EINVAL, 'DF refused');
  t.equal((await c.read(MiB, 512)).error, ERRNO.EINVAL, 'out of range read');
  await c.write(0, Buffer.from('hello'));
  const r = await c.read(0, 5);
  t.equal(r.error, 0);
  t.equal(r.data?.toString(), 'hello', 'the stream stayed in sync after the errors');
  await c.disconnect();
});

t.test('read-only export refuses writes, trims and zeroes with EPERM', async (t) => {
  const { port } = await startInProcess(t, { readOnlyExport: true });
  const rw = await RawNbdClient.connect(port);
  await rw.write(4096, Buffer.alloc(4096, 1));
  const ro = await RawNbdClient.connect(port, { name: 'ro' });
  t.ok(ro.flags & 2, 'READ_ONLY advertised');
  t.equal(ro.flags & (1 << 5), 0, 'TRIM not advertised');
  t.equal(ro.flags & (1 << 6), 0, 'WRITE_ZEROES not advertised');
  t.equal((await ro.write(0, Buffer.alloc(512))).error, ERRNO.EPERM, 'write');
  t.equal((await ro.send(CMD.TRIM, 0, 512)).error, ERRNO.EPERM, 'trim');
  t.equal((await ro.send(CMD.WRITE_ZEROES, 4096, 512)).error, ERRNO.EPERM, 'zero');
  t.same((await ro.read(4096, 4096)).data, Buffer.alloc(4096, 1), 'reads see the data');
  await ro.disconnect();
  await rw.disconnect();
});

t.test('oversized requests: EOVERFLOW for a 33 MiB read or write, the connection survives', async (t) => {
  const { port } = await startInProcess(t, { size: 64 * MiB });
  const c = await RawNbdClient.connect(port);
  t.equal((await c.read(0, 33 * MiB)).error, ERRNO.EOVERFLOW, 'read');
  const big = Buffer.alloc(33 * MiB, 0xab);
  t.equal((await c.write(0, big)).error, ERRNO.EOVERFLOW, 'write refused, payload skipped');
  const after = await c.read(0, 4096);
  t.equal(after.error, 0);
  t.same(after.data, Buffer.alloc(4096), 'nothing of the refused write landed');
  t.equal((await c.write(0, Buffer.alloc(32 * MiB, 1))).error, 0, 'exactly 32 MiB is accepted');
  await c.disconnect();
});

t.test('protocol violations close that connection only', async (t) => {
  const { port } = await startInProcess(t);
  const good = await RawNbdClient.connect(port);
  await good.write(0, Buffer.alloc(4096, 9));

  const badMagic = await RawNbdClient.connect(port);
  const frame = request(CMD.READ, 0, 1n, 0, 512);
  frame.writeUInt32BE(0xdeadbeef, 0);
  badMagic.s.write(frame);
  t.ok(await badMagic.s.waitClosed(), 'bad request magic closes');

  const absurd = await RawNbdClient.connect(port);
  absurd.s.write(request(CMD.WRITE, 0, 1n, 0, 0xffffff00));
  absurd.s.write(Buffer.alloc(1024));
  t.ok(await absurd.s.waitClosed(), 'a 4 GiB write payload closes');

  const badOpt = await RawSocket.connect(port);
  await greet(badOpt);
  const o = option(OPT.GO, goData('disk'));
  o.write('XX', 0);
  badOpt.write(o);
  t.ok(await badOpt.waitClosed(), 'bad option magic closes');

  const badFlags = await RawSocket.connect(port);
  await greet(badFlags, 0x80);
  t.ok(await badFlags.waitClosed(), 'unknown client flags close');

  const hugeOpt = await RawSocket.connect(port);
  await greet(hugeOpt);
  const h = option(OPT.LIST);
  h.writeUInt32BE(0x7fffffff, 12);
  hugeOpt.write(h);
  t.ok(await hugeOpt.waitClosed(), 'absurd option length closes');

  const truncated = await RawNbdClient.connect(port);
  truncated.s.write(request(CMD.READ, 0, 1n, 0, 512).subarray(0, 13));
  truncated.s.socket.end();
  t.ok(await truncated.s.waitClosed(), 'a truncated frame then EOF closes');

  const r = await good.read(0, 4096);
  t.same(r.data, Buffer.alloc(4096, 9), 'the well-behaved client still reads its data');
  await good.disconnect();
});

t.test('handshake timeout closes an idle connection, not an attached one', async (t) => {
  const { port } = await startInProcess(t, { limits: { handshakeTimeoutMs: 300 } });
  const idle = await RawSocket.connect(port);
  await idle.mustRead(18);
  const attached = await RawNbdClient.connect(port);
  const started = Date.now();
  t.ok(await idle.waitClosed(8000), 'idle connection closed');
  t.ok(Date.now() - started < 8000, 'by the 300 ms timeout (plus slack for a loaded machine), not the 10 s default');
  await new Promise((r) => setTimeout(r, 500));
  t.equal((await attached.read(0, 512)).error, 0, 'the attached connection is still served');
  await attached.disconnect();
});

t.test('connections beyond connectionsMax are closed at accept', async (t) => {
  const { port, server } = await startInProcess(t, { limits: { connectionsMax: 2 } });
  const a = await RawNbdClient.connect(port);
  const b = await RawNbdClient.connect(port);
  const c = await RawSocket.connect(port);
  t.ok(await c.waitClosed(), 'third connection closed');
  t.equal(server.connectionCount, 2);
  await a.disconnect();
  while (server.connectionCount > 1) await new Promise((r) => setTimeout(r, 10));
  const d = await RawNbdClient.connect(port);
  t.equal((await d.read(0, 512)).error, 0, 'a slot freed up');
  await b.disconnect();
  await d.disconnect();
});

t.test('FAST_ZERO on the file backend fails fast with ENOTSUP; plain zero works', async (t) => {
  const dir = tempDir(t);
  const backend = await FileBackend.open({ path: join(dir, 'disk.img'), size: 4 * MiB });
  t.teardown(() => backend.close());
  const { port } = await startInProcess(t, { backend });
  const c = await RawNbdClient.connect(port);
  await c.write(0, Buffer.alloc(8192, 3));
  t.equal((await c.send(CMD.WRITE_ZEROES, 0, 4096, { flags: CMD_FLAG.FAST_ZERO })).error, ERRNO.ENOTSUP, 'fast zero refused');
  t.same((await c.read(0, 4096)).data, Buffer.alloc(4096, 3), 'and did not touch the data');
  t.equal((await c.send(CMD.WRITE_ZEROES, 0, 4096, { flags: CMD_FLAG.NO_HOLE })).error, 0, 'slow zero done');
  t.same((await c.read(0, 8192)).data, Buffer.concat([Buffer.alloc(4096), Buffer.alloc(4096, 3)]));
  t.equal((await c.send(CMD.TRIM, 0, 4096)).error, ERRNO.EINVAL, 'TRIM is not advertised by the file backend');
  await c.disconnect();
});

/** Polls until cond holds (a loaded CI machine may be slow), failing after 10 s. */
async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 10000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached in 10 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Wraps a (memory) backend so its writes and reads at offset 0 wait for a gate, counting how many run at once. */
function gated(inner: BlockBackend) {
  let running = 0;
  let peak = 0;
  let open = false;
  const waiters: Array<() => void> = [];
  const gate = async (): Promise<void> => {
    running++;
    peak = Math.max(peak, running);
    if (!open) await new Promise<void>((r) => waiters.push(r));
  };
  const backend: BlockBackend = Object.assign(Object.create(inner) as BlockBackend, {
    async write(offset: number, data: Buffer, o: { fua: boolean }) {
      await gate();
      await inner.write(offset, data, o);
      running--;
    },
    async writev(offset: number, data: readonly Buffer[], o: { fua: boolean }) {
      await gate();
      await inner.writev!(offset, data, o);
      running--;
    },
    async read(offset: number, length: number) {
      if (offset === 0) await gate();
      const r = await inner.read(offset, length);
      if (offset === 0) running--;
      return r;
    },
    async readv(offset: number, length: number) {
      if (offset === 0) await gate();
      const r = await inner.readv!(offset, length);
      if (offset === 0) running--;
      return r;
    },
  });
  return {
    backend,
    get peak() {
      return peak;
    },
    get waiting() {
      return waiters.length;
    },
    release() {
      open = true;
      for (const w of waiters.splice(0)) w();
    },
  };
}

t.test('in-flight requests per connection are bounded (count and bytes)', async (t) => {
  const g = gated(new MemoryBackend(64 * MiB));
  const { port } = await startInProcess(t, { backend: g.backend, limits: { inflightRequestsMax: 8, inflightBytesMax: MiB } });
  const c = await RawNbdClient.connect(port);
  const replies = [];
  for (let i = 0; i < 40; i++) replies.push(c.write(i * 65536, Buffer.alloc(65536, i)));
  await until(() => g.waiting >= 8);
  await new Promise((r) => setTimeout(r, 200)); // give any excess request time to show up
  t.equal(g.waiting, 8, 'exactly inflightRequestsMax writes reached the backend');
  g.release();
  for (const r of await Promise.all(replies)) t.equal(r.error, 0);
  t.equal(g.peak, 8, 'never more than 8 at once');
  const big = gated(new MemoryBackend(64 * MiB));
  const s2 = await startInProcess(t, { backend: big.backend, limits: { inflightRequestsMax: 100, inflightBytesMax: MiB } });
  const c2 = await RawNbdClient.connect(s2.port);
  const r2 = [];
  for (let i = 0; i < 12; i++) r2.push(c2.write(i * 262144, Buffer.alloc(262144, i)));
  await until(() => big.waiting >= 4);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(big.waiting, 4, '1 MiB of 256 KiB writes in flight');
  big.release();
  await Promise.all(r2);
  const check = await c2.read(11 * 262144, 262144);
  t.same(check.data, Buffer.alloc(262144, 11), 'all writes landed');
  await c.disconnect();
  await c2.disconnect();
});

t.test('replies come out of order: a slow read does not hold back later requests', async (t) => {
  const g = gated(new MemoryBackend(8 * MiB));
  const { port } = await startInProcess(t, { backend: g.backend });
  const c = await RawNbdClient.connect(port, { structured: false });
  const order: string[] = [];
  const slow = c.read(0, 4096).then((r) => (order.push('slow'), r));
  await new Promise((r) => setTimeout(r, 50));
  const fast = c.read(65536, 4096).then((r) => (order.push('fast'), r));
  await fast;
  g.release();
  await slow;
  t.same(order, ['fast', 'slow']);
  await c.disconnect();
});

t.test('option errors during the handshake do not end it', async (t) => {
  const { port } = await startInProcess(t);
  const s = await RawSocket.connect(port);
  await greet(s);
  s.write(option(99, Buffer.from('junk')));
  t.equal((await readOptionReply(s)).type, REP.ERR_UNSUP, 'unknown option: ERR_UNSUP');
  s.write(option(OPT.STARTTLS));
  t.equal((await readOptionReply(s)).type, REP.ERR_UNSUP, 'STARTTLS: not supported (no TLS)');
  s.write(option(OPT.LIST, Buffer.from('x')));
  t.equal((await readOptionReply(s)).type, REP.ERR_INVALID, 'LIST with data: ERR_INVALID');
  const truncatedGo = goData('disk').subarray(0, 6);
  s.write(option(OPT.GO, truncatedGo));
  t.equal((await readOptionReply(s)).type, REP.ERR_INVALID, 'malformed GO: ERR_INVALID');
  s.write(option(OPT.GO, goData('nope')));
  t.equal((await readOptionReply(s)).type, REP.ERR_UNKNOWN, 'unknown export: ERR_UNKNOWN');
  s.write(option(OPT.SET_META_CONTEXT, Buffer.alloc(8)));
  t.equal((await readOptionReply(s)).type, REP.ERR_INVALID, 'SET_META_CONTEXT before STRUCTURED_REPLY: ERR_INVALID');
  s.write(option(OPT.GO, goData('disk')));
  let r = await readOptionReply(s);
  while (r.type === REP.INFO) r = await readOptionReply(s);
  t.equal(r.type, REP.ACK, 'GO still succeeds afterwards');
  s.destroy();
});

t.test('a client that does not read its replies is pushed back, not buffered for', async (t) => {
  const inner = new MemoryBackend(64 * MiB);
  let reads = 0;
  const counting: BlockBackend = Object.assign(Object.create(inner) as BlockBackend, {
    async readv(offset: number, length: number) {
      reads++;
      return inner.readv(offset, length);
    },
  });
  const { port } = await startInProcess(t, { backend: counting, limits: { writeBufferBytesMax: 4 * MiB } });
  const s = await RawSocket.connect(port);
  await greet(s);
  s.write(option(OPT.EXPORT_NAME, Buffer.from('disk')));
  await s.mustRead(10);
  s.socket.pause(); // stop reading replies
  const N = 600;
  for (let i = 0; i < N; i++) s.write(request(CMD.READ, 0, BigInt(i + 1), (i % 64) * MiB, MiB));
  await new Promise((r) => setTimeout(r, 1000));
  const executed = reads;
  // Bounded by inflightBytesMax (64 MiB) plus the reply queue limit, whatever N is.
  t.ok(executed <= 64 + 8, `only ${executed} of ${N} 1 MiB reads executed while the client reads nothing`);
  s.socket.resume();
  let got = 0;
  let errors = 0;
  while (got < N) {
    const h = await s.mustRead(16);
    if (h.readUInt32BE(4) !== 0) errors++;
    await s.mustRead(MiB);
    got++;
  }
  t.equal(errors, 0, 'no reply carried an error');
  t.equal(reads, N, 'every request is served once the client reads again');
  s.destroy();
});

t.test('a flood of invalid requests from a client that reads nothing stays bounded', async (t) => {
  const { port } = await startInProcess(t, { limits: { writeBufferBytesMax: MiB } });
  const s = await RawSocket.connect(port);
  await greet(s);
  s.write(option(OPT.EXPORT_NAME, Buffer.from('disk')));
  await s.mustRead(10);
  s.socket.pause();
  const junk = Buffer.concat(Array.from({ length: 4096 }, (_, i) => request(42, 0, BigInt(i), 0, 0)));
  // Keep writing whenever the socket drains, for 2 s: a server that keeps
  // reading (and queuing replies) would take hundreds of MiB.
  let sent = 0;
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline && sent < 256 * MiB) {
    sent += junk.length;
    if (!s.socket.write(junk)) {
      const drained = await Promise.race([once(s.socket, 'drain').then(() => true), new Promise((r) => setTimeout(() => r(false), deadline - Date.now()))]);
      if (!drained) break;
    }
  }
  t.comment(`flooding client got ${(sent / MiB).toFixed(1)} MiB of invalid requests out before being blocked`);
  t.ok(sent < 48 * MiB, 'the flooding client was pushed back');
  const good = await RawNbdClient.connect(port);
  t.equal((await good.read(0, 4096)).error, 0, 'other clients are still served meanwhile');
  await good.disconnect();
  t.notOk(s.closed, 'the flooding connection is still open (it did nothing illegal)');
  s.destroy();
});

t.test('backend failures become errnos; reads and writes report ERROR_OFFSET', async (t) => {
  const inner = new MemoryBackend(8 * MiB);
  const failing: BlockBackend = Object.assign(Object.create(inner) as BlockBackend, {
    async readv(offset: number, length: number) {
      if (offset >= 4 * MiB) throw new Error('disk on fire');
      return inner.readv(offset, length);
    },
    async write(offset: number, data: Buffer, o: { fua: boolean }) {
      if (offset >= 6 * MiB) throw Object.assign(new Error('quota'), { code: 'EDQUOT' });
      return inner.write(offset, data, o);
    },
    async flush() {
      throw new NbdError('EIO', 'flush lost');
    },
  });
  const { port } = await startInProcess(t, { backend: failing });
  const c = await RawNbdClient.connect(port);
  await c.write(4 * MiB, Buffer.alloc(65536, 1));
  const r = await c.read(4 * MiB, 4096);
  t.equal(r.error, ERRNO.EIO, 'an unexpected exception is EIO');
  t.same(r.chunkTypes, [0x8002], 'sent as ERROR_OFFSET');
  const w = await c.write(6 * MiB, Buffer.alloc(512));
  t.equal(w.error, ERRNO.ENOSPC, 'EDQUOT maps to ENOSPC');
  t.equal((await c.send(CMD.FLUSH, 0, 0)).error, ERRNO.EIO, 'an NbdError keeps its errno');
  // A sparse read whose data part fails: the error names the failing part's offset.
  const sparse = await c.read(4 * MiB - 65536, 131072);
  t.same(sparse.chunkTypes, [0x8002]);
  t.equal((await c.read(0, 4096)).error, 0, 'the connection goes on');
  const simple = await RawNbdClient.connect(port, { structured: false });
  t.equal((await simple.read(4 * MiB + 512, 512)).error, ERRNO.EIO, 'simple replies carry the errno too');
  t.equal((await simple.read(0, 512)).error, 0, 'and stay in sync');
  await c.disconnect();
  await simple.disconnect();
});
