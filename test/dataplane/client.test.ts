/**
 * The data client's liveness check against real TCP servers on loopback: a
 * silent peer (accepts, never answers, keeps the connection: what a
 * partition or a stopped process looks like) fails the pending request with
 * PFLEX_ERR_UNAVAILABLE within the liveness bound, long before the request
 * timeout; a slow-but-alive peer (answers PINGs but holds the reply, stops
 * reading its data connection, or trickles a big reply) is not declared dead.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { DataClient } from '../../src/dataplane/client.js';
import { encodeFrame, FrameDecoder, MsgType, replyHeader, Status, type Frame } from '../../src/dataplane/proto.js';
import { isPflexError } from '../../src/shared/errors.js';
import { clientLivenessSilenceMs, clientLivenessTimeoutMs } from '../../src/dataplane/limits.js';

const ADDR = { pgId: 1, epoch: 1, volumeId: 1, treeId: 1, chunkIndex: 0, layerId: 0 };
const TOKEN = Buffer.from('token');
const SILENCE_MS = 300;
const TIMEOUT_MS = 500;
/** The liveness bound with these settings, plus two sweep periods of granularity. */
const BOUND_MS = SILENCE_MS + TIMEOUT_MS + 500;

type Responder = (socket: net.Socket, f: Frame) => void;

/** A data-protocol server on loopback: onFrame decides what (if anything) to answer. */
async function server(t: Test, onFrame: Responder, onConnection?: (socket: net.Socket) => void): Promise<{ port: number; sockets: net.Socket[] }> {
  const sockets: net.Socket[] = [];
  const srv = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    const decoder = new FrameDecoder();
    socket.on('data', (d: Buffer) => decoder.push(d, (f) => onFrame(socket, f)));
    onConnection?.(socket);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    srv.close();
  });
  return { port: (srv.address() as net.AddressInfo).port, sockets };
}

function answer(socket: net.Socket, f: Frame, payload = Buffer.alloc(0)): void {
  if (!socket.destroyed) socket.write(encodeFrame(replyHeader(f, Status.OK, payload.length), undefined, undefined, payload));
}

async function failure(p: Promise<unknown>): Promise<{ err: unknown; ms: number }> {
  const started = Date.now();
  try {
    await p;
  } catch (err) {
    return { err, ms: Date.now() - started };
  }
  throw new Error('the request did not fail');
}

t.test('a silent peer fails pending requests within the liveness bound', async (t) => {
  const srv = await server(t, () => undefined);
  const c = new DataClient({ host: '127.0.0.1', port: srv.port, requestTimeoutMs: 30_000, livenessSilenceMs: SILENCE_MS, livenessTimeoutMs: TIMEOUT_MS });
  t.teardown(() => c.close());
  const [a, b] = await Promise.all([failure(c.write(ADDR, 0, Buffer.alloc(4096, 1), TOKEN)), failure(c.read(ADDR, 0, 4096, TOKEN))]);
  for (const r of [a, b]) {
    t.ok(isPflexError(r.err) && r.err.code === 'PFLEX_ERR_UNAVAILABLE', `failed as unavailable: ${(r.err as Error).message}`);
    t.ok(r.ms >= SILENCE_MS + TIMEOUT_MS - 50, `not before silence + timeout (${r.ms} ms)`);
    t.ok(r.ms < BOUND_MS + 2000, `within the liveness bound, far below the 30 s request timeout (${r.ms} ms)`);
  }
  t.match((a.err as Error).message, /PING/, 'the error says the peer did not even answer a PING');
  t.equal(c.livenessFailures, 1, 'one liveness failure for the connection');
  t.ok(srv.sockets.length >= 2, 'the PING went on a side connection');
  t.equal(c.inflight, 0, 'nothing left pending');
  // The client reconnects for the next request (the peer may come back).
  const again = await failure(c.read(ADDR, 0, 1, TOKEN));
  t.ok(isPflexError(again.err) && again.err.code === 'PFLEX_ERR_UNAVAILABLE', 'a later request is tried again and fails the same way');
});

t.test('with the default limits a silent peer is declared unreachable in about 3.5 s', async (t) => {
  const srv = await server(t, () => undefined);
  const c = new DataClient({ host: '127.0.0.1', port: srv.port, requestTimeoutMs: 30_000 });
  t.teardown(() => c.close());
  const r = await failure(c.read(ADDR, 0, 4096, TOKEN));
  t.ok(isPflexError(r.err) && r.err.code === 'PFLEX_ERR_UNAVAILABLE', 'failed as unavailable');
  const bound = clientLivenessSilenceMs + clientLivenessTimeoutMs;
  t.ok(r.ms >= bound - 50 && r.ms < bound + 3000, `detected after ${r.ms} ms (silence ${clientLivenessSilenceMs} + timeout ${clientLivenessTimeoutMs} ms)`);
  t.comment(`silent peer detected after ${r.ms} ms with the default limits`);
});

t.test('a peer that answers PINGs but holds the reply (and stops reading) is not declared dead', async (t) => {
  const HOLD_MS = 2 * BOUND_MS;
  let releaseAt = 0;
  const srv = await server(t, (socket, f) => {
    if (f.type === MsgType.PING) { answer(socket, f); return; }
    const now = Date.now();
    if (releaseAt === 0) {
      // Busy SDS: in-flight limit reached, it stops reading this connection until its disk catches up.
      releaseAt = now + HOLD_MS;
      socket.pause();
      setTimeout(() => socket.resume(), HOLD_MS);
    }
    setTimeout(() => answer(socket, f, f.type === MsgType.READ ? Buffer.alloc(f.length, 7) : undefined), Math.max(0, releaseAt - now));
  });
  const c = new DataClient({ host: '127.0.0.1', port: srv.port, requestTimeoutMs: 30_000, livenessSilenceMs: SILENCE_MS, livenessTimeoutMs: TIMEOUT_MS });
  t.teardown(() => c.close());
  const started = Date.now();
  // Big writes queue behind the paused one on the data connection: a PING sent there would wait for them.
  const writes = [0, 1, 2, 3].map((i) => c.write(ADDR, 0, Buffer.alloc(8 * 1024 * 1024, i), TOKEN));
  const replies = await Promise.all([...writes, c.read(ADDR, 0, 4096, TOKEN)]);
  const ms = Date.now() - started;
  t.ok(replies.every((f) => f.status === Status.OK), 'every request completed');
  t.ok(ms >= HOLD_MS, `the replies were held for longer than the liveness bound (${ms} ms)`);
  t.equal(c.livenessFailures, 0, 'no liveness failure');
});

t.test('a big reply trickling in is life even without PING replies', async (t) => {
  const PARTS = 12;
  const srv = await server(t, (socket, f) => {
    if (f.type !== MsgType.READ) return; // PINGs are never answered
    const frame = encodeFrame(replyHeader(f, Status.OK, f.length), undefined, undefined, Buffer.alloc(f.length, 9));
    const step = Math.ceil(frame.length / PARTS);
    let i = 0;
    const timer = setInterval(() => {
      if (socket.destroyed) { clearInterval(timer); return; }
      socket.write(frame.subarray(i * step, (i + 1) * step));
      if (++i >= PARTS) clearInterval(timer);
    }, 200);
  });
  const c = new DataClient({ host: '127.0.0.1', port: srv.port, requestTimeoutMs: 30_000, livenessSilenceMs: SILENCE_MS, livenessTimeoutMs: TIMEOUT_MS });
  t.teardown(() => c.close());
  const started = Date.now();
  const f = await c.read(ADDR, 0, 1024 * 1024, TOKEN);
  const ms = Date.now() - started;
  t.equal(f.status, Status.OK, 'the read completed');
  t.ok(f.payload.equals(Buffer.alloc(1024 * 1024, 9)), 'with its data');
  t.ok(ms > BOUND_MS, `over a span longer than the liveness bound (${ms} ms)`);
  t.equal(c.livenessFailures, 0, 'no liveness failure');
});

t.test('time the client itself stalled is not blamed on the peer', async (t) => {
  const srv = await server(t, (socket, f) => setTimeout(() => answer(socket, f), 20));
  const c = new DataClient({ host: '127.0.0.1', port: srv.port, requestTimeoutMs: 600, livenessSilenceMs: 100, livenessTimeoutMs: 200 });
  t.teardown(() => c.close());
  await c.flush(ADDR, TOKEN); // connected
  const p = c.flush(ADDR, TOKEN);
  const until = Date.now() + 1800;
  while (Date.now() < until) { /* the client's event loop is blocked past every deadline */ }
  const f = await p;
  t.equal(f.status, Status.OK, 'the reply that waited in the socket is taken');
  t.equal(c.livenessFailures, 0, 'no liveness failure');
});
