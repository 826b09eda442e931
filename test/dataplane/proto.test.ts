import t from 'tap';
import {
  decodeFrame, encodeFrame, encodeHead, FrameDecoder, FrameError, Flag, MsgType, REPLY_BIT, Status, HEADER_BYTES,
  replyHeader, requestHeader, payloadIntact, encodeTraceparent, decodeTraceparent, statusName, type Frame, type FrameHeader,
  payloadBytes, payloadCrc32, slicePayload,
} from '../../src/dataplane/proto.js';
import { Rng } from '../sds/rng.js';

const EMPTY_TRACE = Buffer.alloc(0);

const base = {
  requestId: 7, pgId: 12, epoch: 3, volumeId: 98, treeId: 99, chunkIndex: 4096, layerId: 2, offset: 4096, length: 5, flags: Flag.FUA,
};

t.test('write request round trip keeps every field and the payload bytes', async (t) => {
  const payload = Buffer.from('hello');
  const token = Buffer.from('tok-bytes');
  const trace = encodeTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  const buf = encodeFrame(requestHeader(MsgType.WRITE, base), token, trace, payload);
  t.equal(buf.length, HEADER_BYTES + token.length + trace.length + payload.length);
  const f = decodeFrame(buf);
  t.match(f, { ...base, type: MsgType.WRITE, status: 0 });
  t.same(f.payload, payload);
  t.same(f.token, token);
  t.equal(decodeTraceparent(f.trace), '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  // encodeHead + payload written separately gives the same bytes.
  const head = encodeHead(requestHeader(MsgType.WRITE, base), token, trace, payload);
  t.same(Buffer.concat([head, payload]), buf);
});

t.test('a payload in parts: the same frame as the joined buffer; slices are views of the parts', async (t) => {
  const rng = new Rng(11);
  const parts = [rng.bytes(3), rng.bytes(0), rng.bytes(4000), rng.bytes(97)];
  const joined = Buffer.concat(parts);
  const h = requestHeader(MsgType.WRITE, { ...base, length: joined.length });
  t.equal(payloadBytes(parts), joined.length);
  t.equal(payloadCrc32(parts), payloadCrc32(joined), 'CRC over the parts in order = CRC of the joined bytes');
  t.same(encodeHead(h, Buffer.from('tok'), EMPTY_TRACE, parts), encodeHead(h, Buffer.from('tok'), EMPTY_TRACE, joined), 'same header bytes');
  const f = decodeFrame(Buffer.concat([encodeHead(h, Buffer.from('tok'), EMPTY_TRACE, parts), ...parts]));
  t.ok(payloadIntact(f), 'the receiver verifies the CRC');
  for (const [start, length] of [[0, joined.length], [0, 3], [2, 2], [3, 4000], [1, 4002], [4003, 97], [100, 1], [4050, 50]] as const) {
    const s = slicePayload(parts, start, length);
    t.same(Buffer.concat(Buffer.isBuffer(s) ? [s] : [...s]), joined.subarray(start, start + length), `slice [${start}, +${length})`);
  }
  const view = slicePayload(parts, 10, 5);
  t.ok(Buffer.isBuffer(view) && view.buffer === parts[2]!.buffer, 'a slice inside one part is a view of it, not a copy');
  t.same(slicePayload(joined, 5, 7), joined.subarray(5, 12), 'a single buffer slices to a view');
});

t.test('each message type and its reply round-trips', async (t) => {
  for (const type of [MsgType.READ, MsgType.FLUSH, MsgType.TRIM, MsgType.ZERO, MsgType.PING]) {
    const req = requestHeader(type, { ...base, flags: 0 });
    const f = decodeFrame(encodeFrame(req, Buffer.from('t')));
    t.equal(f.type, type);
    const data = type === MsgType.READ ? Buffer.alloc(5, 1) : Buffer.alloc(0);
    const reply = decodeFrame(encodeFrame(replyHeader(f, Status.OK, data.length), undefined, undefined, data));
    t.equal(reply.type, type | REPLY_BIT);
    t.equal(reply.requestId, 7);
    t.same(reply.payload, data);
  }
  const stale = decodeFrame(encodeFrame(replyHeader(requestHeader(MsgType.WRITE, base), Status.STALE_EPOCH, 0, 9)));
  t.equal(stale.status, Status.STALE_EPOCH);
  t.equal(stale.epoch, 9);
});

t.test('status codes are distinct and named', async (t) => {
  const values = Object.values(Status);
  t.equal(new Set(values).size, values.length);
  t.equal(statusName(Status.TOKEN_EXPIRED), 'TOKEN_EXPIRED');
});

t.test('malformed frames are rejected with FrameError', async (t) => {
  const good = encodeFrame(requestHeader(MsgType.WRITE, base), Buffer.from('tok'), undefined, Buffer.from('hello'));
  const mutate = (fn: (b: Buffer) => void): Buffer => { const b = Buffer.from(good); fn(b); return b; };
  const cases: Array<[string, Buffer]> = [
    ['bad magic', mutate((b) => { b[0] = 0; })],
    ['bad version', mutate((b) => { b[8] = 9; })],
    ['unknown type', mutate((b) => { b[9] = 42; })],
    ['unknown flag', mutate((b) => { b.writeUInt16LE(0x8000, 10); })],
    ['length mismatch', mutate((b) => { b.writeUInt32LE(6, 44); })],
    ['token overrun', mutate((b) => { b.writeUInt16LE(1000, 52); })],
    ['status in request', mutate((b) => { b.writeUInt16LE(1, 38); })],
    ['truncated', good.subarray(0, 30)],
  ];
  for (const [name, buf] of cases) t.throws(() => decodeFrame(buf), FrameError, name);
  t.throws(() => decodeFrame(encodeFrame(requestHeader(MsgType.READ, { ...base, length: 0 }))), FrameError, 'zero-length read');
});

t.test('a damaged payload decodes but is not intact', async (t) => {
  const good = encodeFrame(requestHeader(MsgType.WRITE, base), Buffer.from('tok'), undefined, Buffer.from('hello'));
  t.ok(payloadIntact(decodeFrame(good)));
  const bad = Buffer.from(good);
  bad[bad.length - 1]! ^= 1;
  t.notOk(payloadIntact(decodeFrame(bad)));
});

t.test('decoder handles split and coalesced frames', async (t) => {
  const seed = Number(process.env.PFLEX_SEED ?? Date.now() % 1e9);
  t.comment(`seed ${seed}`);
  const rng = new Rng(seed);
  const frames: Buffer[] = [];
  const headers: FrameHeader[] = [];
  for (let i = 0; i < 200; i++) {
    const len = 1 + rng.int(70000);
    const h = requestHeader(MsgType.WRITE, { ...base, requestId: i, length: len, offset: 0 });
    headers.push(h);
    frames.push(encodeFrame(h, Buffer.from('tok'), undefined, rng.bytes(len)));
  }
  const stream = Buffer.concat(frames);
  const dec = new FrameDecoder();
  const got: Frame[] = [];
  let pos = 0;
  while (pos < stream.length) {
    const n = Math.min(stream.length - pos, 1 + rng.int(rng.int(2) === 0 ? 16 : 200000));
    dec.push(stream.subarray(pos, pos + n), (f) => got.push(f));
    pos += n;
  }
  t.equal(got.length, frames.length);
  t.equal(dec.bufferedBytes, 0);
  for (let i = 0; i < got.length; i++) {
    if (got[i]!.requestId !== i || !got[i]!.payload.equals(frames[i]!.subarray(frames[i]!.length - headers[i]!.length))) {
      t.fail(`frame ${i} differs`);
      return;
    }
  }
  t.pass('all frames decoded intact and in order');
});

t.test('decoder rejects an oversized frame from its prefix alone', async (t) => {
  const dec = new FrameDecoder();
  const prefix = Buffer.alloc(8);
  prefix.writeUInt32LE(0x31444650, 0);
  prefix.writeUInt32LE(0xffffffff, 4);
  t.throws(() => dec.push(prefix, () => t.fail('no frame')), FrameError);
});
