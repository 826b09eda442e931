/**
 * Random and mutated frames thrown at a running SDS: it must never crash,
 * must close only the offending connections, and a well-behaved client
 * working alongside must keep getting correct answers. Seeded; the seed is
 * printed (PFLEX_SEED=<n> replays it).
 */
import t from 'tap';
import net from 'node:net';
import { DataClient } from '../../src/dataplane/client.js';
import { encodeFrame, requestHeader, MsgType, Flag, HEADER_BYTES, type MsgTypeValue } from '../../src/dataplane/proto.js';
import { StaticPgMap } from '../../src/sds/static-pgmap.js';
import { Rng } from './rng.js';
import { startSds, token } from './harness.js';

const GOOD_TREE = 1;
const FUZZ_TREE = 2;

function validFrame(rng: Rng): Buffer {
  const types: MsgTypeValue[] = [MsgType.WRITE, MsgType.READ, MsgType.FLUSH, MsgType.ZERO, MsgType.TRIM, MsgType.PING];
  const type = types[rng.int(types.length)]!;
  const len = 1 + rng.int(9000);
  const payload = type === MsgType.WRITE ? rng.bytes(len) : Buffer.alloc(0);
  const length = type === MsgType.FLUSH || type === MsgType.PING ? 0 : len;
  const h = requestHeader(type, {
    requestId: rng.int(2 ** 32), pgId: rng.int(3), epoch: 1 + rng.int(2), volumeId: FUZZ_TREE, treeId: FUZZ_TREE, chunkIndex: rng.int(4), layerId: 0,
    offset: rng.int(1 << 20), length, flags: rng.int(4) === 0 ? Flag.FUA : 0,
  });
  return encodeFrame(h, token(FUZZ_TREE), undefined, payload);
}

function mutate(rng: Rng, frame: Buffer): Buffer {
  const b = Buffer.from(frame);
  switch (rng.int(6)) {
    case 0: // random bytes anywhere
      for (let i = 0, n = 1 + rng.int(8); i < n; i++) b[rng.int(b.length)] = rng.int(256);
      return b;
    case 1: // a header byte
      b[rng.int(HEADER_BYTES)] = rng.int(256);
      return b;
    case 2: // truncated
      return b.subarray(0, rng.int(b.length));
    case 3: // a lying length prefix
      b.writeUInt32LE(rng.int(2) ? rng.int(2 ** 32) : rng.int(HEADER_BYTES), 4);
      return b;
    case 4: // token / trace lengths
      b.writeUInt16LE(rng.int(65536), 52);
      b[54] = rng.int(256);
      return b;
    default: // pure noise
      return rng.bytes(1 + rng.int(200));
  }
}

t.test('the SDS survives random and mutated frames and keeps serving a good client', async (t) => {
  const seed = Number(process.env.PFLEX_SEED ?? Date.now() % 1e9);
  t.comment(`seed ${seed}`);
  const rng = new Rng(seed);
  const map = new StaticPgMap([{ pg: 0, members: [1] }, { pg: 1, members: [1] }, { pg: 2, members: [1] }]);
  const sds = await startSds(t, 1, map);
  const good = new DataClient({ host: '127.0.0.1', port: sds.port, requestTimeoutMs: 10000 });
  t.teardown(() => good.close());
  const tok = token(GOOD_TREE);
  let goodOps = 0;
  let goodErrors = 0;
  let stop = false;
  const goodLoop = (async () => {
    for (let i = 0; !stop; i++) {
      const data = Buffer.alloc(4096, i & 0xff);
      const a = { pgId: i % 3, epoch: 1, volumeId: GOOD_TREE, treeId: GOOD_TREE, chunkIndex: i % 5, layerId: 0 };
      const w = await good.write(a, 4096 * (i % 7), data, tok);
      const r = await good.read(a, 4096 * (i % 7), 4096, tok);
      if (w.status !== 0 || r.status !== 0 || !r.payload.equals(data)) goodErrors++;
      goodOps++;
    }
  })();

  let closedByServer = 0;
  for (let round = 0; round < 150; round++) {
    const sock = net.connect(sds.port, '127.0.0.1');
    sock.on('error', () => undefined);
    sock.on('data', () => undefined);
    const parts: Buffer[] = [];
    for (let i = 0, n = 1 + rng.int(4); i < n; i++) {
      const f = validFrame(rng);
      parts.push(rng.int(3) === 0 ? f : mutate(rng, f));
    }
    sock.write(Buffer.concat(parts));
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 30);
      sock.once('close', () => { clearTimeout(timer); resolve(true); });
    });
    if (closed) closedByServer++;
    sock.destroy();
  }
  stop = true;
  await goodLoop;
  t.comment(`connections closed by the server: ${closedByServer}/150, good ops ${goodOps}`);
  t.ok(closedByServer > 0, 'malformed frames closed their connections');
  t.ok(goodOps > 10, 'the good client made progress throughout');
  t.equal(goodErrors, 0, 'the good client always got its own data back');
  t.equal((await good.ping()).status, 0, 'server still answers');
  t.ok(sds.server.metrics.protocolErrors > 0, 'protocol errors were counted');
});
