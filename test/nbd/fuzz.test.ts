import t from 'tap';
import { randomInt } from 'node:crypto';
import { startPflexNbd } from '../helpers/nbd.js';
import {
  CMD,
  OPT,
  REQUEST_MAGIC,
  RawNbdClient,
  RawSocket,
  goData,
  metaData,
  option,
  request,
} from './handshake-raw-client.js';

/**
 * Random and mutated handshake and transmission bytes over many connections
 * to one `pflex nbd serve`, while a well-behaved client keeps checking its
 * data. Replay a failure with NBD_FUZZ_SEED=<seed printed below>.
 */
const SEED = process.env.NBD_FUZZ_SEED ? Number(process.env.NBD_FUZZ_SEED) : randomInt(2 ** 31);
const CONNECTIONS = Number(process.env.NBD_FUZZ_CONNECTIONS ?? 600);
const PARALLEL = 12;
const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
/** The checker owns [CHECK_START, CHECK_END); fuzzers may never write there. */
const CHECK_START = SIZE / 2;
const CHECK_END = SIZE - MiB;

/** mulberry32: small, fast, and the same sequence for the same seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  const bytes = (n: number): Buffer => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, bytes, pick };
}
type Rng = ReturnType<typeof prng>;

function validHandshake(rng: Rng): Buffer[] {
  const flags = Buffer.alloc(4);
  flags.writeUInt32BE(3);
  const parts: Buffer[] = [flags];
  if (rng.next() < 0.7) parts.push(option(OPT.STRUCTURED_REPLY));
  if (rng.next() < 0.5) parts.push(option(OPT.SET_META_CONTEXT, metaData('disk', ['base:allocation'])));
  if (rng.next() < 0.3) parts.push(option(OPT.LIST));
  if (rng.next() < 0.3) parts.push(option(OPT.LIST_META_CONTEXT, metaData('', [])));
  if (rng.next() < 0.2) parts.push(option(OPT.INFO, goData(rng.pick(['disk', '', 'nope']), [0, 1, 2, 3])));
  parts.push(rng.next() < 0.8 ? option(OPT.GO, goData(rng.pick(['disk', '']), [3])) : option(OPT.EXPORT_NAME, Buffer.from('disk')));
  return parts;
}

/** A write-type frame aimed at the checker's region is pushed out of range. */
function sanitize(frame: Buffer): Buffer {
  if (frame.length < 28 || frame.readUInt32BE(0) !== REQUEST_MAGIC) return frame;
  const type = frame.readUInt16BE(6);
  const offset = Number(frame.readBigUInt64BE(16));
  const length = frame.readUInt32BE(24);
  if ((type === CMD.WRITE || type === CMD.TRIM || type === CMD.WRITE_ZEROES) && offset < CHECK_END && offset + length > CHECK_START) {
    frame.writeBigUInt64BE(2n ** 62n, 16);
  }
  return frame;
}

function randomRequest(rng: Rng): Buffer[] {
  const type = rng.next() < 0.9 ? rng.pick([0, 1, 1, 3, 4, 5, 6, 7, 0, 0]) : rng.int(65536);
  const flags = rng.next() < 0.7 ? rng.pick([0, 0, 1, 2, 4, 8, 16]) : rng.int(65536);
  const length = rng.pick([0, 1, 512, 4096, 65536, 65537, rng.int(2 * MiB), 32 * MiB + 1, 0xffffffff, rng.int(2 ** 32)]);
  const offset = rng.pick([0, rng.int(CHECK_START), SIZE - 1, SIZE, SIZE + 4096, 2 ** 53, rng.int(SIZE)]);
  const frame = request(type, flags, BigInt(rng.int(2 ** 31)), offset, length >>> 0);
  if (offset >= 2 ** 53) frame.writeBigUInt64BE(0xfffffffffffffe00n, 16);
  const out = [sanitize(frame)];
  if (type === CMD.WRITE && length <= 2 * MiB) out.push(rng.bytes(rng.next() < 0.9 ? length : rng.int(length + 1)));
  return out;
}

function mutate(rng: Rng, input: Buffer): Buffer {
  const b = Buffer.from(input);
  if (b.length === 0) return rng.bytes(rng.int(64));
  switch (rng.int(5)) {
    case 0: // flip bits
      for (let i = rng.int(4) + 1; i > 0; i--) b[rng.int(b.length)]! ^= 1 << rng.int(8);
      return b;
    case 1: // truncate
      return b.subarray(0, rng.int(b.length));
    case 2: // insert random bytes
      return Buffer.concat([b.subarray(0, rng.int(b.length)), rng.bytes(rng.int(32) + 1), b]);
    case 3: // overwrite a 32-bit field with an extreme value
      if (b.length >= 4) b.writeUInt32BE(rng.pick([0, 1, 0x7fffffff, 0xffffffff, 4096]), rng.int(b.length - 3));
      return b;
    default: // duplicate a slice
      return Buffer.concat([b, b.subarray(rng.int(b.length))]);
  }
}

/** One hostile connection: returns what kind of input it sent. */
async function fuzzConnection(port: number, rng: Rng): Promise<string> {
  const s = await RawSocket.connect(port);
  const kind = rng.pick(['random', 'handshake-mutated', 'transmission-random', 'transmission-mutated', 'idle-close']);
  try {
    let parts: Buffer[] = [];
    if (kind === 'random') parts = [rng.bytes(rng.int(4096))];
    else if (kind === 'handshake-mutated') parts = validHandshake(rng).map((p) => (rng.next() < 0.3 ? mutate(rng, p) : p));
    else if (kind === 'transmission-random') {
      parts = validHandshake(rng);
      for (let i = rng.int(20); i > 0; i--) parts.push(...randomRequest(rng));
    } else if (kind === 'transmission-mutated') {
      parts = validHandshake(rng);
      for (let i = rng.int(20); i > 0; i--) parts.push(...randomRequest(rng).map((p) => (rng.next() < 0.2 ? sanitize(mutate(rng, p)) : p)));
    }
    for (const p of parts) s.write(p);
    // Sometimes read what comes back, sometimes hang up at once.
    if (rng.next() < 0.5) await s.read(rng.int(4096) + 1, rng.int(200) + 20).catch(() => undefined);
  } finally {
    s.destroy();
  }
  return kind;
}

/** The well-behaved client: writes and reads back its own region, with a model of it. */
async function checker(port: number, rng: Rng, stop: () => boolean): Promise<number> {
  const c = await RawNbdClient.connect(port, { baseAllocation: true });
  const model = Buffer.alloc(CHECK_END - CHECK_START);
  let checks = 0;
  while (!stop() || checks < 20) {
    const len = rng.int(256 * 1024) + 1;
    const off = rng.int(model.length - len);
    const data = rng.bytes(Math.min(len, 4096)).subarray(0, len);
    const payload = len <= data.length ? data : Buffer.alloc(len, data[0]);
    const w = await c.write(CHECK_START + off, payload);
    if (w.error !== 0) throw new Error(`checker write failed: errno ${w.error}`);
    payload.copy(model, off);
    const rlen = rng.int(512 * 1024) + 1;
    const roff = rng.int(model.length - rlen);
    const r = await c.read(CHECK_START + roff, rlen);
    if (r.error !== 0 || !r.data || !r.data.equals(model.subarray(roff, roff + rlen))) {
      throw new Error(`checker read at ${CHECK_START + roff}+${rlen} returned wrong data (errno ${r.error})`);
    }
    checks++;
  }
  await c.disconnect();
  return checks;
}

t.test(`fuzz: ${CONNECTIONS} hostile connections, seed ${SEED}`, async (t) => {
  t.comment(`NBD fuzz seed ${SEED} (replay: NBD_FUZZ_SEED=${SEED})`);
  const srv = await startPflexNbd(t, { memory: '64M', extraArgs: ['--handshake-timeout-ms', '2000'] });
  const rng = prng(SEED);
  let done = false;
  const checking = checker(srv.port, prng(SEED ^ 0x5eed), () => done);

  const kinds = new Map<string, number>();
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < CONNECTIONS) {
      started++;
      // Each connection gets its own sub-seed so that the sequence does not depend on timing.
      const kind = await fuzzConnection(srv.port, prng(rng.int(2 ** 31)));
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  done = true;
  const checks = await checking;
  t.comment(`connections by kind: ${JSON.stringify(Object.fromEntries(kinds))}; checker rounds: ${checks}`);

  const msgs = new Map<string, number>();
  for (const l of srv.proc.logs) msgs.set(String(l.msg), (msgs.get(String(l.msg)) ?? 0) + 1);
  t.comment(`server log lines: ${JSON.stringify(Object.fromEntries(msgs))}`);
  t.ok((msgs.get('nbd protocol violation, closing connection') ?? 0) > 0, 'the fuzzing did reach the protocol checks');

  t.equal(srv.proc.child.exitCode, null, 'server still running');
  const errors = srv.proc.logs.filter((l) => typeof l.level === 'number' && l.level >= 50);
  t.same(errors, [], 'no error-level logs (every bad input was an expected, handled case)');
  t.ok(checks >= 20, 'the well-behaved client kept getting correct data');

  const after = await RawNbdClient.connect(srv.port);
  t.equal((await after.read(CHECK_START, 4096)).error, 0, 'a new client still gets served');
  await after.disconnect();
  t.equal(await srv.proc.stop('SIGTERM'), 0, 'clean shutdown after the fuzzing');
});
