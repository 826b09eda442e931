/**
 * Client side of the data protocol: one persistent, pipelined TCP connection
 * per SDS, replies matched by request id. Used by SDS primaries to forward to
 * secondaries and by the SDC (and tests, and bench/sds.ts) to talk to SDSs.
 *
 * A request resolves with the reply frame whatever its status (the caller
 * decides what a STALE_EPOCH or NO_CHUNK means to it); it rejects with
 * PFLEX_ERR_UNAVAILABLE when the connection fails or the reply does not come
 * in time, and with PFLEX_ERR_IO when a reply payload fails its checksum.
 *
 * Liveness: a peer cut off by a partition (or a stopped process) sends no
 * RST or FIN; the socket just goes quiet. While requests are outstanding and
 * nothing has been received for livenessSilenceMs, the client PINGs the peer
 * on a side connection (the probe); when nothing at all arrives for
 * livenessTimeoutMs more, the connection is dropped and every pending
 * request fails as on a connection loss. Any received byte is life (a big
 * READ reply in progress is), and so is a PING reply. The probe has its own
 * connection because a PING on the data connection would queue behind
 * megabytes of WRITE payload, and a busy SDS stops reading a connection
 * whose in-flight limits are reached (TCP backpressure): a slow-but-alive
 * SDS still answers a PING on a fresh connection at once. Time the client
 * itself did not run (event loop stall) is not counted against the peer.
 *
 * With tls (a cluster running TLS) every connection, the probe's too, is
 * TLS 1.3 with our certificate presented (mutual TLS, docs/security.md); the
 * frames inside are the same. A request waits for the handshake like it
 * waits for the TCP connect.
 */
import net from 'node:net';
import tls from 'node:tls';
import { PflexError } from '../shared/errors.js';
import { mutualClientOptions, type MutualTls } from '../shared/tls.js';
import {
  encodeHead, FrameDecoder, FrameError, MsgType, payloadIntact, REPLY_BIT, requestHeader,
  type ChunkRequest, type Frame, type FrameHeader, type MsgTypeValue, type Payload,
} from './proto.js';
import {
  clientConnectTimeoutMs, clientLivenessSilenceMs, clientLivenessTimeoutMs, clientRequestTimeoutMs, clientStallMs,
} from './limits.js';

const EMPTY = Buffer.alloc(0);
const SWEEP_INTERVAL_MS = 250;

interface Pending {
  resolve: (f: Frame) => void;
  reject: (err: Error) => void;
  deadlineMs: number;
  type: number;
}

export interface DataClientOptions {
  host: string;
  port: number;
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Silence (with requests outstanding) before the peer is PINGed; 0 turns the liveness check off. */
  livenessSilenceMs?: number;
  /** After the PING, this long with nothing received declares the peer unreachable. */
  livenessTimeoutMs?: number;
  /** Mutual TLS with the SDS; undefined: plain TCP. */
  tls?: MutualTls | undefined;
}

/** The chunk-range fields of a request; requestId is the client's business. */
export type ChunkAddress = Omit<ChunkRequest, 'requestId' | 'flags' | 'offset' | 'length'>;

export class DataClient {
  readonly host: string;
  readonly port: number;
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private socket: net.Socket | null = null;
  private connected = false;
  private decoder = new FrameDecoder();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private corked = false;
  private sweeper: NodeJS.Timeout | null = null;
  private lastSweepMs = 0;
  private closed = false;
  private readonly livenessSilenceMs: number;
  private readonly livenessTimeoutMs: number;
  private readonly tls: MutualTls | undefined;
  /** Last sign of life: a received byte, a PING reply, the connect, or the first request after an idle spell. */
  private lastLifeMs = 0;
  /** When the outstanding probe was sent (0: none since the last sign of life). */
  private probeSentMs = 0;
  /** Side connection for PINGs, made on first need. */
  private prober: DataClient | null = null;
  /** Times this client declared its peer unreachable by the liveness check. */
  livenessFailures = 0;

  constructor(opts: DataClientOptions) {
    this.host = opts.host;
    this.port = opts.port;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? clientRequestTimeoutMs;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? clientConnectTimeoutMs;
    this.livenessSilenceMs = opts.livenessSilenceMs ?? clientLivenessSilenceMs;
    this.livenessTimeoutMs = opts.livenessTimeoutMs ?? clientLivenessTimeoutMs;
    this.tls = opts.tls;
  }

  get inflight(): number {
    return this.pending.size;
  }

  /** Sends one request; the payload is written without copying (payloadCrc: its CRC32 when already known). */
  request(type: MsgTypeValue, req: Omit<ChunkRequest, 'requestId'>, token: Buffer, payload: Payload = EMPTY, trace: Buffer = EMPTY, payloadCrc?: number): Promise<Frame> {
    if (this.closed) return Promise.reject(new PflexError('PFLEX_ERR_UNAVAILABLE', 'data client is closed'));
    const socket = this.ensureSocket();
    const requestId = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    const h: FrameHeader = requestHeader(type, { ...req, requestId });
    const head = encodeHead(h, token, trace, payload, payloadCrc);
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      process.nextTick(uncork, this);
    }
    socket.write(head);
    if (Buffer.isBuffer(payload)) {
      if (payload.length > 0) socket.write(payload);
    } else {
      for (const part of payload) if (part.length > 0) socket.write(part);
    }
    // Silence is only owed while something is outstanding: the clock starts with the first request.
    if (this.pending.size === 0) this.noteLife();
    return new Promise<Frame>((resolve, reject) => {
      this.pending.set(requestId, { resolve, reject, deadlineMs: Date.now() + this.requestTimeoutMs, type });
    });
  }

  write(addr: ChunkAddress, offset: number, data: Buffer, token: Buffer, flags = 0): Promise<Frame> {
    return this.request(MsgType.WRITE, { ...addr, offset, length: data.length, flags }, token, data);
  }

  read(addr: ChunkAddress, offset: number, length: number, token: Buffer, flags = 0): Promise<Frame> {
    return this.request(MsgType.READ, { ...addr, offset, length, flags }, token);
  }

  zero(addr: ChunkAddress, offset: number, length: number, token: Buffer, flags = 0): Promise<Frame> {
    return this.request(MsgType.ZERO, { ...addr, offset, length, flags }, token);
  }

  trim(addr: ChunkAddress, offset: number, length: number, token: Buffer, flags = 0): Promise<Frame> {
    return this.request(MsgType.TRIM, { ...addr, offset, length, flags }, token);
  }

  /** trace: the binary traceparent of a traced flush (src/shared/tracing.ts). */
  flush(addr: ChunkAddress, token: Buffer, flags = 0, trace: Buffer = EMPTY): Promise<Frame> {
    return this.request(MsgType.FLUSH, { ...addr, offset: 0, length: 0, flags }, token, EMPTY, trace);
  }

  ping(): Promise<Frame> {
    return this.request(MsgType.PING, { pgId: 0, epoch: 0, volumeId: 0, treeId: 0, chunkIndex: 0, layerId: 0, offset: 0, length: 0, flags: 0 }, EMPTY);
  }

  close(): void {
    this.closed = true;
    this.prober?.close();
    this.prober = null;
    this.drop(new PflexError('PFLEX_ERR_UNAVAILABLE', 'data client closed'));
  }

  private ensureSocket(): net.Socket {
    if (this.socket) return this.socket;
    const socket: net.Socket = this.tls
      ? tls.connect({ host: this.host, port: this.port, ...mutualClientOptions(this.tls, this.host) }).setNoDelay(true)
      : net.connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = socket;
    this.connected = false;
    this.decoder = new FrameDecoder();
    const connectTimer = setTimeout(() => {
      if (!this.connected && this.socket === socket) this.fail(socket, `connect to ${this.host}:${this.port} timed out${this.tls ? ' (TCP or TLS handshake)' : ''}`);
    }, this.connectTimeoutMs);
    socket.once(this.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(connectTimer);
      if (this.socket !== socket) return;
      this.connected = true;
      this.noteLife();
    });
    socket.on('data', (data: Buffer) => {
      if (this.socket !== socket) return;
      this.noteLife();
      try {
        this.decoder.push(data, (f) => this.onReply(f));
      } catch (err) {
        this.fail(socket, `bad reply frame from ${this.host}:${this.port}: ${(err as Error).message}`);
      }
    });
    socket.on('error', (err) => this.fail(socket, `data connection to ${this.host}:${this.port}: ${err.message}`));
    socket.on('close', () => {
      clearTimeout(connectTimer);
      this.fail(socket, `data connection to ${this.host}:${this.port} closed`);
    });
    if (!this.sweeper) {
      this.lastSweepMs = Date.now();
      this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
      this.sweeper.unref();
    }
    return socket;
  }

  private onReply(f: Frame): void {
    const p = this.pending.get(f.requestId);
    if (!p) return; // timed out earlier: drop the late reply
    this.pending.delete(f.requestId);
    if ((f.type & REPLY_BIT) === 0 || (f.type & ~REPLY_BIT) !== p.type) {
      p.reject(new FrameError(`reply type ${f.type} does not answer request type ${p.type}`));
    } else if (!payloadIntact(f)) {
      p.reject(new PflexError('PFLEX_ERR_IO', 'reply payload failed its checksum'));
    } else {
      p.resolve(f);
    }
  }

  /** Times out overdue requests and checks liveness; one timer per client instead of one per request. */
  private sweep(): void {
    const now = Date.now();
    const gap = now - this.lastSweepMs - SWEEP_INTERVAL_MS;
    this.lastSweepMs = now;
    if (this.pending.size === 0) return;
    if (gap > clientStallMs) {
      // We did not run for a while (event loop stall, suspended VM): replies may be
      // waiting unread in the socket. The peer is not to blame: shift every clock.
      this.excuseStall(gap);
      return;
    }
    if (this.checkLiveness(now)) return;
    for (const [id, p] of this.pending) {
      if (p.deadlineMs > now) continue;
      // A lost reply means the stream can no longer be trusted: drop the connection.
      this.pending.delete(id);
      p.reject(new PflexError('PFLEX_ERR_UNAVAILABLE', `request to ${this.host}:${this.port} timed out`));
      if (this.socket) this.fail(this.socket, `request to ${this.host}:${this.port} timed out`);
      return;
    }
  }

  private noteLife(): void {
    this.lastLifeMs = Date.now();
    this.probeSentMs = 0;
  }

  private excuseStall(gapMs: number): void {
    this.lastLifeMs += gapMs;
    if (this.probeSentMs !== 0) this.probeSentMs += gapMs;
    for (const p of this.pending.values()) p.deadlineMs += gapMs;
  }

  /** Probes a silent peer, and drops the connection when the probe too is unanswered; true when it did. */
  private checkLiveness(now: number): boolean {
    if (this.livenessSilenceMs <= 0 || !this.connected || !this.socket) return false;
    if (this.probeSentMs === 0) {
      if (now - this.lastLifeMs >= this.livenessSilenceMs) this.probe(now);
      return false;
    }
    if (now - this.probeSentMs < this.livenessTimeoutMs) return false;
    this.livenessFailures++;
    this.fail(this.socket, `no answer from ${this.host}:${this.port} for ${now - this.lastLifeMs} ms (not even to a PING): peer unreachable`);
    // The probe connection is as suspect as the data connection: start afresh next time.
    this.prober?.close();
    this.prober = null;
    return true;
  }

  private probe(now: number): void {
    // A probe still unanswered from an earlier silence (life came on the data connection since) means a stuck probe connection.
    if (this.prober && this.prober.inflight > 0) {
      this.prober.close();
      this.prober = null;
    }
    this.prober ??= new DataClient({
      host: this.host, port: this.port, livenessSilenceMs: 0, tls: this.tls,
      connectTimeoutMs: this.livenessTimeoutMs, requestTimeoutMs: this.livenessTimeoutMs + 2 * SWEEP_INTERVAL_MS,
    });
    this.probeSentMs = now;
    this.prober.ping().then(
      () => { if (!this.closed) this.noteLife(); },
      () => undefined, // an unanswered or refused probe: the deadline in checkLiveness decides
    );
  }

  private fail(socket: net.Socket, message: string): void {
    if (this.socket !== socket) return;
    this.drop(new PflexError('PFLEX_ERR_UNAVAILABLE', message));
  }

  private drop(err: Error): void {
    const socket = this.socket;
    this.socket = null;
    this.connected = false;
    this.corked = false;
    this.probeSentMs = 0;
    socket?.destroy();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(err);
    if (this.closed && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  /** @internal */
  uncorkNow(): void {
    this.corked = false;
    this.socket?.uncork();
  }
}

function uncork(client: DataClient): void {
  client.uncorkNow();
}

/** One DataClient per SDS address, kept open for reuse. */
export class DataClientPool {
  private readonly clients = new Map<string, DataClient>();

  constructor(private readonly opts: Omit<DataClientOptions, 'host' | 'port'> = {}) {}

  get(host: string, port: number): DataClient {
    const key = `${host}:${port}`;
    let c = this.clients.get(key);
    if (!c) {
      c = new DataClient({ ...this.opts, host, port });
      this.clients.set(key, c);
    }
    return c;
  }

  closeAll(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
