/**
 * The SDS data-plane server (port 9700): accepts data-protocol connections,
 * checks every request (frame, payload checksum, IO token, PG role and
 * epoch), applies it to the chunk store and, as PG primary, replicates it to
 * the secondaries before acknowledging. Message types bind to handlers in one
 * table; only DataConnection touches a socket.
 */
import net from 'node:net';
import type { Logger } from '../shared/logger.js';
import { isPflexError } from '../shared/errors.js';
import {
  encodeHead, Flag, FrameDecoder, MsgType, payloadIntact, REPLY_BIT, replyHeader, Status, statusName,
  type Frame, type MsgTypeValue, type StatusValue,
} from '../dataplane/proto.js';
import type { DataClientPool } from '../dataplane/client.js';
import type { ChunkKey, ChunkStore } from './store/chunk-store.js';
import type { PgEntry, PgTable } from './pg-table.js';
import {
  forwardCatchUpDelayMsMax, forwardCatchUpDelayMsMin, forwardTimeoutMs, connectionIdleMs, connectionInflightBytesMax, connectionInflightRequestsMax, connectionsMax, serverBufferedBytesMax, serverInflightBytesMax,
} from './limits.js';
import { SdsMetrics } from './metrics.js';
import { blockAligned, blockCrcs, CRC_BLOCK_BYTES } from '../shared/crc32.js';
import type { VolumeTrees } from './volume-trees.js';
import { KeyedRwLock } from './store/rw-lock.js';

/** What the server needs of the IO token verifier (IoTokenVerifier fits). */
export interface TokenCheck {
  verify(token: Buffer, need: { volumeId: number; write: boolean; nowMs: number }): unknown;
}

export interface DataServerOptions {
  /** This SDS's id in the PG map (known after registration with the MDM). */
  selfId: () => number | undefined;
  store: ChunkStore;
  pgs: PgTable;
  tokens: TokenCheck;
  /** Volume -> tree, to check that a frame's tree belongs to its token's volume. */
  trees: VolumeTrees;
  /** Connections to peer SDSs for forwarding (timeout = forward timeout). */
  peers: DataClientPool;
  log: Logger;
  metrics?: SdsMetrics;
  now?: () => number;
  /** A joining (rebuilding) member missed a forwarded write: its copy must not complete (src/sds/rebuild.ts). */
  onJoinerFailure?: (pg: number, sdsId: number) => void;
  /** Timer for forward retries (the simulation passes its virtual clock's). */
  sleep?: (ms: number) => Promise<void>;
  /** How long a secondary whose map lags (EPOCH_AHEAD, UNKNOWN_PG) is given to catch up before it is fenced; default forwardTimeoutMs. */
  forwardCatchUpMs?: number;
}

const EMPTY = Buffer.alloc(0);

/** crcs: CRC32 per 4 KiB block of a block-aligned WRITE payload (computed once on arrival). */
type Handler = (server: DataServer, conn: DataConnection, f: Frame, crcs: Uint32Array | undefined) => Promise<void>;

/** Outcome of forwarding one request to one secondary. */
const enum Fwd { OK, STALE, TOKEN, FAILED }

/** What one forward attempt brought back: an outcome, or a lagging secondary to try again. */
const LAGGING = -1;

export class DataServer {
  readonly metrics: SdsMetrics;
  private readonly server: net.Server;
  private readonly conns = new Set<DataConnection>();
  /** Secondaries that took non-durable forwarded writes since their last flush, with the PGs involved. */
  private peersDirty = new Map<number, Set<number>>();
  /** "pg@epoch" of PGs where this SDS is the only member and its store was flushed since (see secureSole). */
  private readonly soleFlushed = new Map<string, Promise<void>>();
  /** In-flight fence calls, so concurrent failures of one member cost one MDM call. */
  private readonly fencing = new Map<string, Promise<StatusValue>>();
  private closing = false;
  readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  /** Bytes of partial frames buffered by all connections. */
  bufferedBytes = 0;
  /** Payload bytes of requests being served on all connections. */
  inflightBytes = 0;
  /** Connections paused by the server-wide in-flight limit, resumed when it falls. */
  readonly waiting = new Set<DataConnection>();
  /**
   * Rebuild ordering (src/sds/rebuild.ts): client requests hold their PG key
   * ("p<pg>") shared and writes also their chunk key shared, from routing to
   * reply; a chunk copy to a joining member holds the chunk key exclusive, the
   * start and end of a copy the PG key exclusive. So every write is either
   * inside a chunk's copy or forwarded to the joining member after it.
   */
  readonly locks = new KeyedRwLock();

  constructor(readonly opts: DataServerOptions) {
    this.metrics = opts.metrics ?? new SdsMetrics();
    this.now = opts.now ?? Date.now;
    // unref: a pending retry timer never holds the process open.
    this.sleep = opts.sleep ?? ((ms) => new Promise((resolve) => { setTimeout(resolve, ms).unref(); }));
    this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server.maxConnections = connectionsMax;
  }

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => { this.server.off('error', reject); resolve(); });
    });
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.conns) c.destroy();
    await closed;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) { socket.destroy(); return; }
    const conn = new DataConnection(this, socket);
    this.conns.add(conn);
    this.metrics.connections = this.conns.size;
    socket.once('close', () => {
      this.conns.delete(conn);
      this.metrics.connections = this.conns.size;
    });
  }

  /** Entry point of every decoded request frame. */
  dispatch(conn: DataConnection, f: Frame): void {
    if ((f.type & REPLY_BIT) !== 0) {
      conn.protocolError('a reply frame sent to a server');
      return;
    }
    const handler = HANDLERS[f.type];
    if (!handler) { conn.protocolError(`no handler for type ${f.type}`); return; }
    if (this.closing) { conn.reply(f, Status.SHUTTING_DOWN); return; }
    // One pass over an aligned write payload gives both the frame check and the store's block CRCs.
    let crcs: Uint32Array | undefined;
    let intact: boolean;
    if (f.type === MsgType.WRITE && blockAligned(f.offset, f.payload.length)) {
      crcs = new Uint32Array(f.payload.length / CRC_BLOCK_BYTES);
      intact = blockCrcs(f.payload, crcs) === f.crc;
    } else {
      intact = payloadIntact(f);
    }
    if (!intact) {
      this.metrics.checksumMismatchRequests++;
      conn.reply(f, Status.CHECKSUM_MISMATCH);
      return;
    }
    handler(this, conn, f, crcs).catch((err: unknown) => {
      const status = statusOf(err);
      if (status === Status.IO_ERROR && !isPflexError(err)) this.opts.log.error({ err }, 'unexpected error serving a data request');
      conn.reply(f, status, messageOf(err));
    });
  }

  /** Token check: every request except PING; the token names the frame's volume. */
  checkToken(f: Frame, write: boolean): void {
    this.opts.tokens.verify(f.token, { volumeId: f.volumeId, write, nowMs: this.now() });
  }

  /** The frame's tree must be the tree of the volume its token covers; else the status to answer. */
  async checkTree(f: Frame): Promise<StatusValue | undefined> {
    let tree = this.opts.trees.cached(f.volumeId);
    if (tree === undefined) {
      try {
        tree = await this.opts.trees.resolve(f.volumeId);
      } catch (err) {
        this.opts.log.warn({ volumeId: f.volumeId, err: (err as Error).message }, 'cannot look up the tree of a volume');
        return Status.BUSY;
      }
    }
    return tree === f.treeId ? undefined : Status.TOKEN_SCOPE;
  }

  /**
   * The PG entry if this SDS may serve the request at the epoch it carries,
   * else the status to answer. A newer epoch than ours triggers a refresh.
   */
  async route(f: Frame): Promise<PgEntry | StatusValue> {
    const scope = await this.checkTree(f);
    if (scope !== undefined) return scope;
    const forwarded = (f.flags & Flag.FORWARDED) !== 0;
    let entry = this.opts.pgs.get(f.pgId);
    if (!entry || f.epoch > entry.epoch) {
      await this.opts.pgs.refresh().catch((err: unknown) => this.opts.log.warn({ err }, 'PG map refresh failed'));
      entry = this.opts.pgs.get(f.pgId);
    }
    if (!entry) return Status.UNKNOWN_PG;
    if (f.epoch < entry.epoch) return Status.STALE_EPOCH;
    if (f.epoch > entry.epoch) return Status.EPOCH_AHEAD;
    const self = this.opts.selfId();
    if (forwarded && self !== undefined && entry.joining?.includes(self)) return entry;
    if (self === undefined || !entry.members.includes(self)) return forwarded ? Status.NOT_MEMBER : Status.NOT_PRIMARY;
    if (!forwarded && entry.members[0] !== self) return Status.NOT_PRIMARY;
    if (forwarded && entry.members[0] === self) return Status.NOT_MEMBER;
    return entry;
  }

  /** Sends the request on to every secondary; resolves with the status to answer the client. */
  async replicate(f: Frame, entry: PgEntry): Promise<StatusValue> {
    const secondaries = entry.members.slice(1);
    const joining = entry.joining ?? [];
    if (secondaries.length === 0 && joining.length === 0) return Status.OK;
    const [outcomes] = await Promise.all([
      Promise.all(secondaries.map((id) => this.forwardTo(id, f))),
      Promise.all(joining.map((id) => this.forwardToJoining(id, f))),
    ]);
    let failed: number[] | undefined;
    for (let i = 0; i < outcomes.length; i++) {
      const o = outcomes[i]!;
      if (o === Fwd.STALE) {
        // A secondary knows a newer map: ours is stale, so is the client's.
        await this.opts.pgs.refresh().catch(() => undefined);
        return Status.STALE_EPOCH;
      }
      if (o === Fwd.TOKEN) return Status.TOKEN_EXPIRED;
      if (o === Fwd.FAILED) (failed ??= []).push(secondaries[i]!);
    }
    if (!failed) {
      if ((f.flags & Flag.FUA) === 0) this.markPeersDirty(secondaries, f.pgId);
      return Status.OK;
    }
    // Only acknowledge once the MDM has taken the failed members out of the PG.
    for (const id of failed) {
      const status = await this.fence(f.pgId, id, entry.epoch);
      if (status !== Status.OK) return status;
    }
    const ok = secondaries.filter((id) => !failed!.includes(id));
    if ((f.flags & Flag.FUA) === 0) this.markPeersDirty(ok, f.pgId);
    return Status.OK;
  }

  /** A joining member's failure never holds up the client: its copy is failed instead (the MDM retries). */
  private async forwardToJoining(sdsId: number, f: Frame): Promise<void> {
    const o = await this.forwardTo(sdsId, f);
    if (o !== Fwd.OK) this.opts.onJoinerFailure?.(f.pgId, sdsId);
    else if ((f.flags & Flag.FUA) === 0) this.markPeersDirty([sdsId], f.pgId);
  }

  /**
   * Forwards to one secondary. A secondary whose map lags ours (EPOCH_AHEAD,
   * UNKNOWN_PG: it learns the new epoch from the MDM when it sees it) is
   * healthy, so it is asked again with a short backoff for up to
   * forwardCatchUpMs in all; only a secondary still refusing after that (cut
   * off from the MDM) counts as failed and gets fenced. The whole forward,
   * retries included, stays within that bound, so a client's request waits no
   * longer than for a silent secondary.
   */
  private async forwardTo(sdsId: number, f: Frame): Promise<Fwd> {
    const ep = this.opts.pgs.endpoint(sdsId);
    if (!ep) return Fwd.FAILED;
    const client = this.opts.peers.get(ep.address, ep.dataPort);
    const deadline = this.now() + (this.opts.forwardCatchUpMs ?? forwardTimeoutMs);
    let delay = forwardCatchUpDelayMsMin;
    for (let attempt = 0; ; attempt++) {
      const o = await this.forwardOnce(client, sdsId, f, attempt === 0 ? undefined : deadline);
      if (o !== LAGGING) return o;
      const left = deadline - this.now();
      if (left <= 0) {
        this.opts.log.warn({ sdsId, pg: f.pgId, epoch: f.epoch, attempts: attempt + 1 }, 'secondary did not catch up with the PG map in time');
        return Fwd.FAILED;
      }
      await this.sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, forwardCatchUpDelayMsMax);
    }
  }

  /** One forward; a retry (deadline set) is cut off at the deadline (a late reply is ignored). */
  private async forwardOnce(client: ReturnType<DataClientPool['get']>, sdsId: number, f: Frame, deadline: number | undefined): Promise<Fwd | typeof LAGGING> {
    this.metrics.forwarded++;
    try {
      const sent = client.request(f.type as MsgTypeValue, {
        pgId: f.pgId, epoch: f.epoch, volumeId: f.volumeId, treeId: f.treeId, chunkIndex: f.chunkIndex, layerId: f.layerId,
        offset: f.offset, length: f.length, flags: f.flags | Flag.FORWARDED,
      }, f.token, f.payload, f.trace, f.crc);
      const reply = deadline === undefined ? await sent : await Promise.race([sent, this.sleep(Math.max(0, deadline - this.now())).then(() => undefined)]);
      if (reply === undefined) {
        sent.catch(() => undefined);
        return LAGGING;
      }
      switch (reply.status) {
        case Status.OK: return Fwd.OK;
        case Status.STALE_EPOCH: return Fwd.STALE;
        case Status.TOKEN_EXPIRED: return Fwd.TOKEN;
        case Status.EPOCH_AHEAD: case Status.UNKNOWN_PG: return LAGGING;
        default:
          this.opts.log.warn({ sdsId, pg: f.pgId, status: statusName(reply.status) }, 'secondary refused a forwarded request');
          return Fwd.FAILED;
      }
    } catch (err) {
      this.metrics.forwardFailures++;
      this.opts.log.warn({ sdsId, pg: f.pgId, err: (err as Error).message }, 'forward to secondary failed');
      return Fwd.FAILED;
    }
  }

  /** Asks the MDM to drop a failed member; OK when it is out of the PG (by us or already). */
  fence(pg: number, sdsId: number, epoch: number): Promise<StatusValue> {
    // A stopping SDS sees its own connections go (peer clients closed, sockets
    // destroyed): that is no evidence against the peer, and fencing it would
    // leave this SDS, about to be gone, as the PG's last member. The client is
    // not acknowledged and retries elsewhere.
    if (this.closing) return Promise.resolve(Status.SHUTTING_DOWN);
    const key = `${pg}/${sdsId}/${epoch}`;
    let p = this.fencing.get(key);
    if (!p) {
      p = this.doFence(pg, sdsId, epoch).finally(() => this.fencing.delete(key));
      this.fencing.set(key, p);
    }
    return p;
  }

  private async doFence(pg: number, sdsId: number, epoch: number): Promise<StatusValue> {
    const e = this.opts.pgs.get(pg);
    const self = this.opts.selfId();
    if (e && e.members.length === 2 && self !== undefined && e.members.includes(self) && e.members.includes(sdsId)) {
      // We are about to be the PG's only copy: what was acknowledged while there were two must be
      // durable before the other copy stops counting (we may lose power before we learn the answer).
      try {
        await this.opts.store.flush();
      } catch (err) {
        this.opts.log.error({ pg, err: (err as Error).message }, 'flush before fencing the other member failed');
        return Status.IO_ERROR;
      }
    }
    try {
      const r = await this.opts.pgs.fence(pg, sdsId, epoch);
      this.metrics.fences++;
      this.opts.log.warn({ pg, sdsId, epoch, newEpoch: r.entry.epoch, members: r.entry.members, fenced: r.fenced }, 'fenced a failed PG member');
      return r.entry.members.includes(sdsId) ? Status.REPLICATION_FAILED : Status.OK;
    } catch (err) {
      if (isPflexError(err) && err.code === 'PFLEX_ERR_STALE_EPOCH') {
        await this.opts.pgs.refresh().catch(() => undefined);
        const now = this.opts.pgs.get(pg);
        return now && !now.members.includes(sdsId) ? Status.OK : Status.STALE_EPOCH;
      }
      this.opts.log.error({ pg, sdsId, err: (err as Error).message }, 'could not fence a failed PG member');
      return Status.REPLICATION_FAILED;
    }
  }

  /**
   * A PG whose acting set is this SDS alone has no other copy that would
   * survive our power loss, so nothing acknowledged may stay in the page
   * cache only: the first time we see ourselves alone at an epoch, the store
   * is flushed (the writes acknowledged while there were two copies), and
   * every write routed with such an entry is written durably (see
   * handleWriteLocked). Resolves at once when we are not alone. `always`: a
   * flush that starts now (a write that completed after a shared flush began
   * would not be covered by it).
   */
  secureSole(pg: number, always = false): Promise<void> {
    const e = this.opts.pgs.get(pg);
    const self = this.opts.selfId();
    if (!e || self === undefined || e.members.length !== 1 || e.members[0] !== self) return Promise.resolve();
    const key = `${pg}@${e.epoch}`;
    let p = this.soleFlushed.get(key);
    if (!p || always) {
      p = this.opts.store.flush();
      this.soleFlushed.set(key, p);
      p.catch(() => this.soleFlushed.delete(key));
    }
    return p;
  }

  /** After a map change: secures every PG we are now alone in (the node's poll calls this). */
  async secureSolePgs(): Promise<void> {
    for (const key of [...this.soleFlushed.keys()]) {
      const [pg, epoch] = key.split('@').map(Number) as [number, number];
      if (this.opts.pgs.get(pg)?.epoch !== epoch) this.soleFlushed.delete(key);
    }
    await Promise.all(this.opts.pgs.all().map((e) => this.secureSole(e.pg)));
  }

  private markPeersDirty(ids: number[], pg: number): void {
    for (const id of ids) {
      let set = this.peersDirty.get(id);
      if (!set) this.peersDirty.set(id, (set = new Set()));
      set.add(pg);
    }
  }

  /** Flushes every secondary that took writes since its last flush; a failed one is fenced from those PGs. */
  async flushPeers(f: Frame): Promise<StatusValue> {
    const dirty = this.peersDirty;
    if (dirty.size === 0) return Status.OK;
    this.peersDirty = new Map();
    const ids = [...dirty.keys()];
    const outcomes = await Promise.all(ids.map((id) => this.forwardTo(id, f)));
    let status: StatusValue = Status.OK;
    for (let i = 0; i < ids.length; i++) {
      if (outcomes[i] === Fwd.OK) continue;
      const id = ids[i]!;
      for (const pg of dirty.get(id)!) {
        const entry = this.opts.pgs.get(pg);
        if (!entry || !entry.members.includes(id)) continue;
        const s = await this.fence(pg, id, entry.epoch);
        if (s !== Status.OK) {
          status = Status.REPLICATION_FAILED;
          this.markPeersDirty([id], pg); // still owed a flush
        }
      }
    }
    return status;
  }

  key(f: Frame): ChunkKey {
    return { treeId: f.treeId, chunkIndex: f.chunkIndex, layerId: f.layerId };
  }
}

// ---- handlers: one per message type -----------------------------------------

/** Client requests (not forwarded ones) run under the rebuild ordering locks (DataServer.locks). */
async function handleWrite(s: DataServer, conn: DataConnection, f: Frame, crcs: Uint32Array | undefined): Promise<void> {
  if ((f.flags & Flag.FORWARDED) !== 0) return handleWriteLocked(s, conn, f, crcs);
  const pgKey = `p${f.pgId}`;
  const chunkKey = `c${f.pgId}/${f.treeId}-${f.chunkIndex}-${f.layerId}`;
  await s.locks.acquire(pgKey, false);
  try {
    await s.locks.acquire(chunkKey, false);
    try {
      await handleWriteLocked(s, conn, f, crcs);
    } finally {
      s.locks.release(chunkKey, false);
    }
  } finally {
    s.locks.release(pgKey, false);
  }
}

async function handleWriteLocked(s: DataServer, conn: DataConnection, f: Frame, crcs: Uint32Array | undefined): Promise<void> {
  s.checkToken(f, true);
  const route = await s.route(f);
  if (typeof route === 'number') { conn.reply(f, route); return; }
  const started = performance.now();
  const forwarded = (f.flags & Flag.FORWARDED) !== 0;
  // The only member of a PG writes through: no other copy would survive its power loss (secureSole).
  const fua = (f.flags & Flag.FUA) !== 0 || (!forwarded && route.members.length === 1);
  const local = f.type === MsgType.WRITE
    ? s.opts.store.write(f.pgId, s.key(f), f.offset, f.payload, fua, crcs)
    : s.opts.store.zero(f.pgId, s.key(f), f.offset, f.length, fua);
  if (forwarded) {
    await local;
  } else {
    // Forwarding starts before awaiting the local write so both run in parallel.
    const replicated = s.replicate(f, route);
    const [localResult, status] = await Promise.allSettled([local, replicated]);
    if (localResult.status === 'rejected') throw localResult.reason;
    if (status.status === 'rejected') throw status.reason;
    if (status.value !== Status.OK) {
      conn.reply(f, status.value, EMPTY, s.opts.pgs.get(f.pgId)?.epoch ?? f.epoch);
      return;
    }
    // Fencing a secondary may just have left us alone: then flush before acknowledging.
    if (!fua) await s.secureSole(f.pgId, true);
  }
  s.metrics.record(f.type, f.length, performance.now() - started);
  conn.reply(f, Status.OK, EMPTY, s.opts.pgs.get(f.pgId)?.epoch ?? f.epoch);
}

async function handleRead(s: DataServer, conn: DataConnection, f: Frame): Promise<void> {
  // Shared on the PG: a PG's data is never dropped under a read that routed to it.
  const pgKey = `p${f.pgId}`;
  await s.locks.acquire(pgKey, false);
  try {
    await handleReadLocked(s, conn, f);
  } finally {
    s.locks.release(pgKey, false);
  }
}

async function handleReadLocked(s: DataServer, conn: DataConnection, f: Frame): Promise<void> {
  s.checkToken(f, false);
  if ((f.flags & Flag.FORWARDED) !== 0) { conn.reply(f, Status.BAD_REQUEST, 'reads are not forwarded'); return; }
  const route = await s.route(f);
  if (typeof route === 'number') { conn.reply(f, route); return; }
  const started = performance.now();
  const crcOut: { crc?: number } = {};
  const data = await s.opts.store.read(f.pgId, s.key(f), f.offset, f.length, crcOut);
  s.metrics.record(f.type, f.length, performance.now() - started);
  if (!data) conn.reply(f, Status.NO_CHUNK);
  else conn.replyData(f, data, crcOut.crc);
}

async function handleFlush(s: DataServer, conn: DataConnection, f: Frame): Promise<void> {
  s.checkToken(f, false);
  const started = performance.now();
  const forwarded = (f.flags & Flag.FORWARDED) !== 0;
  const [local, peers] = await Promise.allSettled([s.opts.store.flush(), forwarded ? Status.OK : s.flushPeers(f)]);
  if (local.status === 'rejected') throw local.reason;
  if (peers.status === 'rejected') throw peers.reason;
  s.metrics.record(f.type, 0, performance.now() - started);
  conn.reply(f, peers.value);
}

async function handlePing(_s: DataServer, conn: DataConnection, f: Frame): Promise<void> {
  conn.reply(f, Status.OK);
}

const HANDLERS: Record<number, Handler | undefined> = {
  [MsgType.WRITE]: handleWrite,
  [MsgType.ZERO]: handleWrite,
  [MsgType.TRIM]: handleWrite,
  [MsgType.READ]: handleRead,
  [MsgType.FLUSH]: handleFlush,
  [MsgType.PING]: handlePing,
};

function statusOf(err: unknown): StatusValue {
  if (!isPflexError(err)) return Status.IO_ERROR;
  switch (err.code) {
    case 'PFLEX_ERR_TOKEN_INVALID': return Status.BAD_TOKEN;
    case 'PFLEX_ERR_TOKEN_EXPIRED': return Status.TOKEN_EXPIRED;
    case 'PFLEX_ERR_TOKEN_SCOPE': return Status.TOKEN_SCOPE;
    case 'PFLEX_ERR_BAD_REQUEST': return Status.BAD_REQUEST;
    case 'PFLEX_ERR_STALE_EPOCH': return Status.STALE_EPOCH;
    case 'PFLEX_ERR_IO': return err.details?.noSpace ? Status.NO_SPACE : Status.IO_ERROR;
    default: return Status.IO_ERROR;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---- one client connection ------------------------------------------------------

/**
 * One data connection: decodes frames, bounds the requests and bytes in
 * flight (stops reading the socket beyond them: TCP backpressure rather than
 * errors), writes replies corked so a burst of replies leaves in few packets.
 */
export class DataConnection {
  private readonly decoder = new FrameDecoder();
  private inflight = 0;
  private inflightBytes = 0;
  private paused = false;
  private corked = false;
  private dead = false;

  constructor(private readonly server: DataServer, private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.destroy());
    socket.on('drain', () => this.maybeResume());
    socket.setTimeout(connectionIdleMs, () => { if (this.inflight === 0) this.destroy(); });
  }

  private readonly onData = (data: Buffer): void => {
    const before = this.decoder.bufferedBytes;
    try {
      this.decoder.push(data, this.onFrame);
    } catch (err) {
      this.protocolError((err as Error).message);
      return;
    }
    const after = this.decoder.bufferedBytes;
    this.server.bufferedBytes += after - before;
    if (after > 0 && this.server.bufferedBytes > serverBufferedBytesMax) {
      this.server.opts.log.warn({ remote: this.socket.remoteAddress, bufferedBytes: after }, 'partial frames across connections exceed the server limit: closing this connection');
      this.destroy();
    }
  };

  private readonly onFrame = (f: Frame): void => {
    if (this.dead) return;
    const bytes = costOf(f);
    this.inflight++;
    this.inflightBytes += bytes;
    this.server.inflightBytes += bytes;
    if (!this.paused && this.overLimit()) {
      this.paused = true;
      this.socket.pause();
      if (this.server.inflightBytes >= serverInflightBytesMax) this.server.waiting.add(this);
    }
    this.server.dispatch(this, f);
  };

  /** Beyond a limit we stop reading this socket: TCP pushes back on the client. */
  private overLimit(): boolean {
    return this.inflight >= connectionInflightRequestsMax || this.inflightBytes >= connectionInflightBytesMax
      || this.socket.writableLength >= connectionInflightBytesMax || this.server.inflightBytes >= serverInflightBytesMax;
  }

  maybeResume(): void {
    if (!this.paused || this.dead) return;
    if (this.inflight < connectionInflightRequestsMax / 2 && this.inflightBytes < connectionInflightBytesMax / 2
      && this.socket.writableLength < connectionInflightBytesMax / 2 && this.server.inflightBytes < serverInflightBytesMax / 2) {
      this.paused = false;
      this.server.waiting.delete(this);
      this.socket.resume();
    }
  }

  protocolError(message: string): void {
    if (this.dead) return;
    this.server.metrics.protocolErrors++;
    this.server.opts.log.warn({ remote: this.socket.remoteAddress, err: message }, 'malformed data frame: closing the connection');
    this.destroy();
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    this.server.bufferedBytes -= this.decoder.bufferedBytes;
    this.server.waiting.delete(this);
    this.socket.destroy();
  }

  reply(req: Frame, status: StatusValue, message: Buffer | string = EMPTY, epoch?: number): void {
    const payload = typeof message === 'string' ? Buffer.from(message) : message;
    if (status !== Status.OK) this.server.metrics.errorReplies++;
    this.send(req, replyHeader(req, status, 0, epoch ?? this.server.opts.pgs.get(req.pgId)?.epoch ?? req.epoch), payload);
  }

  /** crc: the CRC32 of data when the store already has it. */
  replyData(req: Frame, data: Buffer, crc?: number): void {
    this.send(req, replyHeader(req, Status.OK, data.length), data, crc);
  }

  private send(req: Frame, h: ReturnType<typeof replyHeader>, payload: Buffer, crc?: number): void {
    const bytes = costOf(req);
    this.inflight--;
    this.inflightBytes -= bytes;
    this.server.inflightBytes -= bytes;
    if (this.server.waiting.size > 0 && this.server.inflightBytes < serverInflightBytesMax / 2) {
      for (const c of [...this.server.waiting]) c.maybeResume();
    }
    if (this.dead || this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(uncork, this);
    }
    this.socket.write(encodeHead(h, EMPTY, EMPTY, payload, crc));
    if (payload.length > 0) this.socket.write(payload);
    this.maybeResume();
  }

  /** @internal */
  uncorkNow(): void {
    this.corked = false;
    if (!this.socket.destroyed) this.socket.uncork();
  }
}

/** Memory a request holds while served: its payload, or the data a READ will return. */
function costOf(f: Frame): number {
  return f.payload.length + (f.type === MsgType.READ ? f.length : 0);
}

function uncork(conn: DataConnection): void {
  conn.uncorkNow();
}
