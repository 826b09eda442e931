import t, { type Test } from 'tap';
import { DataClient } from '../../src/dataplane/client.js';
import { encodeFrame, requestHeader, Flag, MsgType, Status, statusName, type Frame } from '../../src/dataplane/proto.js';
import { StaticPgMap } from '../../src/sds/static-pgmap.js';
import { startSds, token, type TestSds } from './harness.js';
import net from 'node:net';
import { once } from 'node:events';

const TREE = 5;
const addr = (pgId: number, epoch: number, chunkIndex = 0) => ({ pgId, epoch, volumeId: TREE, treeId: TREE, chunkIndex, layerId: 0 });

function client(t: Test, sds: TestSds): DataClient {
  const c = new DataClient({ host: '127.0.0.1', port: sds.port, requestTimeoutMs: 5000 });
  t.teardown(() => c.close());
  return c;
}

function st(f: Frame): string {
  return statusName(f.status);
}

t.test('single replica: write, read, no chunk, zero, flush, pipelining', async (t) => {
  const map = new StaticPgMap([{ pg: 0, members: [1] }]);
  const sds = await startSds(t, 1, map);
  const c = client(t, sds);
  const tok = token(TREE);
  t.equal(st(await c.read(addr(0, 1), 0, 4096, tok)), 'NO_CHUNK');
  const data = Buffer.alloc(8192, 0x5a);
  t.equal(st(await c.write(addr(0, 1), 4096, data, tok)), 'OK');
  const r = await c.read(addr(0, 1), 4096, 8192, tok);
  t.equal(st(r), 'OK');
  t.same(r.payload, data);
  t.equal(st(await c.zero(addr(0, 1), 4096, 100, tok)), 'OK');
  t.same((await c.read(addr(0, 1), 4096, 200, tok)).payload, Buffer.concat([Buffer.alloc(100), Buffer.alloc(100, 0x5a)]));
  t.equal(st(await c.trim(addr(0, 1), 8192, 4096, tok)), 'OK');
  t.equal(st(await c.flush(addr(0, 1), tok)), 'OK');
  t.equal(st(await c.write(addr(0, 1), 0, Buffer.alloc(10, 1), tok, Flag.FUA)), 'OK');
  // Many requests in flight on one connection, replies matched by id.
  const writes = [];
  for (let i = 0; i < 300; i++) writes.push(c.write(addr(0, 1, i + 1), 0, Buffer.alloc(4096, i & 0xff), tok));
  t.same(new Set((await Promise.all(writes)).map(st)), new Set(['OK']));
  const reads = [];
  for (let i = 0; i < 300; i++) reads.push(c.read(addr(0, 1, i + 1), 0, 4096, tok));
  const got = await Promise.all(reads);
  t.ok(got.every((f, i) => f.payload.equals(Buffer.alloc(4096, i & 0xff))), 'every pipelined read got its own data');
  t.equal(st(await c.ping()), 'OK');
});

t.test('tokens, epochs and roles each get their own status', async (t) => {
  const map = new StaticPgMap([{ pg: 0, members: [1, 2] }, { pg: 1, members: [2, 1] }]);
  const s1 = await startSds(t, 1, map);
  const s2 = await startSds(t, 2, map);
  await s1.server.opts.pgs.refresh();
  const c = client(t, s1);
  const d = Buffer.alloc(512, 1);
  const forged = Buffer.from(token(TREE));
  forged[forged.length - 1]! ^= 1;
  t.equal(st(await c.write(addr(0, 1), 0, d, forged)), 'BAD_TOKEN');
  t.equal(st(await c.write(addr(0, 1), 0, d, Buffer.from('short'))), 'BAD_TOKEN');
  t.equal(st(await c.write(addr(0, 1), 0, d, token(TREE, 'rw', Date.now() - 1))), 'TOKEN_EXPIRED');
  t.equal(st(await c.write(addr(0, 1), 0, d, token(TREE + 1))), 'TOKEN_SCOPE', 'token of another volume');
  t.equal(st(await c.write(addr(0, 1), 0, d, token(TREE, 'ro'))), 'TOKEN_SCOPE', 'read-only token');
  t.equal(st(await c.write({ ...addr(0, 1), treeId: TREE + 1 }, 0, d, token(TREE))), 'TOKEN_SCOPE', 'a tree that is not the volume\'s');
  t.equal(st(await c.read(addr(0, 1), 0, 512, token(TREE, 'ro'))), 'NO_CHUNK', 'read-only token may read');
  t.equal(st(await c.write(addr(1, 1), 0, d, token(TREE))), 'NOT_PRIMARY');
  t.equal(st(await c.read(addr(1, 1), 0, 512, token(TREE))), 'NOT_PRIMARY');
  t.equal(st(await c.write(addr(7, 1), 0, d, token(TREE))), 'UNKNOWN_PG');
  t.equal(st(await c.write(addr(0, 9), 0, d, token(TREE))), 'EPOCH_AHEAD');
  // The map moves on: the old epoch is refused and the reply names the new one.
  map.setMembers(0, [1, 2]);
  const ahead = await c.write(addr(0, map.epoch), 0, d, token(TREE));
  t.equal(st(ahead), 'OK', 'a newer epoch makes the SDS refresh its map at once');
  const stale = await c.write(addr(0, 1), 0, d, token(TREE));
  t.equal(st(stale), 'STALE_EPOCH');
  t.equal(stale.epoch, map.epoch);
  // A forwarded request to a non-member is refused.
  const c2 = client(t, s2);
  map.setMembers(1, [2]);
  t.equal(st(await c2.request(MsgType.WRITE, { ...addr(1, map.epoch), offset: 0, length: 512, flags: Flag.FORWARDED }, token(TREE), d)), 'NOT_MEMBER');
});

t.test('a damaged payload gets CHECKSUM_MISMATCH and the connection keeps working', async (t) => {
  const map = new StaticPgMap([{ pg: 0, members: [1] }]);
  const sds = await startSds(t, 1, map);
  const sock = net.connect(sds.port, '127.0.0.1');
  t.teardown(() => sock.destroy());
  await once(sock, 'connect');
  const frame = encodeFrame(requestHeader(MsgType.WRITE, { ...addr(0, 1), requestId: 1, offset: 0, length: 4, flags: 0 }), token(TREE), undefined, Buffer.from('abcd'));
  frame[frame.length - 1]! ^= 0xff;
  const ping = encodeFrame(requestHeader(MsgType.PING, { ...addr(0, 0), requestId: 2, offset: 0, length: 0, flags: 0 }));
  sock.write(Buffer.concat([frame, ping]));
  const replies: Buffer[] = [];
  let total = 0;
  while (total < 112) {
    const [chunk] = (await once(sock, 'data')) as [Buffer];
    replies.push(chunk);
    total += chunk.length;
  }
  const buf = Buffer.concat(replies);
  t.equal(buf.readUInt16LE(38), Status.CHECKSUM_MISMATCH);
  t.equal(buf.readUInt32LE(56 + 12), 2, 'the ping after it is answered');
  t.equal(buf.readUInt16LE(56 + 38), Status.OK);
});
