/**
 * The SDS data-plane server (port 9700): accepts data-protocol connections,
 * checks every request (frame, payload checksum, IO token, PG role and
 * epoch), applies it to the chunk store and, as PG primary, replicates it to
 * the secondaries before acknowledging (src/sds/replication.ts). Message
 * types bind to handlers in one table (src/sds/data-handlers.ts); only
 * DataConnection (src/sds/data-connection.ts) touches a socket.
 *
 * With tls (the cluster runs TLS) the port speaks TLS 1.3 and admits only
 * clients presenting a certificate of the cluster CA (SDCs, peer SDSs); a
 * plain-text client or a certificate of another CA fails the handshake,
 * which is logged and closes that connection alone. The frames are the same.
 */
import net from 'node:net';
import tls from 'node:tls';
import { mutualServerOptions, type MutualTls } from '../shared/tls.js';
import type { Logger } from '../shared/logger.js';
import { isPflexError } from '../shared/errors.js';
import { Flag, MsgType, payloadIntact, REPLY_BIT, Status, type Frame, type StatusValue } from '../dataplane/proto.js';
import type { DataClientPool } from '../dataplane/client.js';
import type { ChunkKey, ChunkStore } from './store/chunk-store.js';
import type { PgEntry, PgTable } from './pg-table.js';
import { connectionsMax, replicaReadLeaseMs, tlsHandshakeTimeoutMs } from './limits.js';
import { SdsMetrics } from './metrics.js';
import { blockAligned, blockCrcs, CRC_BLOCK_BYTES } from '../shared/crc32.js';
import type { VolumeLayout, VolumeTrees } from './volume-trees.js';
import { KeyedRwLock } from './store/rw-lock.js';
import { LayeredChunks } from './layered.js';
import { DataConnection } from './data-connection.js';
import { HANDLERS, messageOf, statusOf } from './data-handlers.js';
import { Replication } from './replication.js';
import { RequestSpans } from './request-spans.js';

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
  /** Trees of deleted volumes (src/sds/dead-trees.ts): no IO reaches them any more. */
  deadTrees?: { has(treeId: number): boolean };
  /** Connections to peer SDSs for forwarding (timeout = forward timeout). */
  peers: DataClientPool;
  log: Logger;
  metrics?: SdsMetrics;
  now?: () => number;
  /** A joining (rebuilding) member missed a forwarded write: its copy must not complete (src/sds/rebuild.ts). */
  onJoinerFailure?: (pg: number, sdsId: number) => void;
  /** Timer for forward retries (the simulation passes its virtual clock's). */
  sleep?: (ms: number) => Promise<void>;
  /** Replica reads and the write-acknowledgement hold after a member removal; default replicaReadLeaseMs. */
  replicaReadLeaseMs?: number;
  /** How long a secondary whose map lags (EPOCH_AHEAD, UNKNOWN_PG) is given to catch up before it is fenced; default forwardTimeoutMs. */
  forwardCatchUpMs?: number;
  /** Mutual TLS on the data port; undefined: plain TCP. */
  tls?: MutualTls | undefined;
}

export class DataServer {
  readonly metrics: SdsMetrics;
  private readonly server: net.Server;
  private readonly conns = new Set<DataConnection>();
  private closing = false;
  readonly now: () => number;
  readonly replication: Replication;
  readonly leaseMs: number;
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
  /** Server spans of traced requests (src/sds/request-spans.ts). */
  readonly spans: RequestSpans;
  /** Reads through and copy-on-write over a volume's snapshot layers. */
  readonly layered: LayeredChunks;

  constructor(readonly opts: DataServerOptions) {
    this.layered = new LayeredChunks(opts.store);
    this.metrics = opts.metrics ?? new SdsMetrics();
    this.now = opts.now ?? Date.now;
    // unref: a pending retry timer never holds the process open.
    this.leaseMs = opts.replicaReadLeaseMs ?? replicaReadLeaseMs;
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((resolve) => { setTimeout(resolve, ms).unref(); }));
    this.spans = new RequestSpans(opts.selfId);
    this.replication = new Replication({
      selfId: opts.selfId, store: opts.store, pgs: opts.pgs, peers: opts.peers, log: opts.log, metrics: this.metrics,
      now: this.now, sleep, closing: () => this.closing, spanOf: (f) => this.spans.of(f),
      ...(opts.onJoinerFailure ? { onJoinerFailure: opts.onJoinerFailure } : {}),
      ...(opts.forwardCatchUpMs !== undefined ? { forwardCatchUpMs: opts.forwardCatchUpMs } : {}),
    });
    if (opts.tls) {
      const server = tls.createServer({ ...mutualServerOptions(opts.tls), noDelay: true, handshakeTimeout: tlsHandshakeTimeoutMs }, (socket) => this.accept(socket));
      server.on('tlsClientError', (err, socket) => this.refuse(err, socket));
      this.server = server;
    } else {
      this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    }
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

  /** A client that failed the TLS handshake: plain text, no certificate, another CA, a timeout. */
  private refuse(err: Error, socket: tls.TLSSocket): void {
    this.metrics.tlsRefused++;
    this.opts.log.warn({ remote: socket.remoteAddress, remotePort: socket.remotePort, err: err.message },
      'data connection refused: TLS handshake failed (mutual TLS needs a client certificate of the cluster CA)');
    socket.destroy();
  }

  /** Entry point of every decoded request frame. */
  dispatch(conn: DataConnection, f: Frame): void {
    if ((f.type & REPLY_BIT) !== 0) {
      conn.protocolError('a reply frame sent to a server');
      return;
    }
    const handler = HANDLERS[f.type];
    if (!handler) { conn.protocolError(`no handler for type ${f.type}`); return; }
    if (f.trace.length > 0) this.spans.start(f);
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

  /**
   * The frame's tree must be the tree of the volume its token covers, and its
   * layer the volume's layer now; else the status to answer. A layer newer
   * than the cached one means our answer is old (a snapshot moved the
   * volume): it is looked up again. An older one is the client's: LAYER_CHANGED.
   */
  async checkTree(f: Frame): Promise<StatusValue | undefined> {
    // The volume was deleted: a token still valid for it must not write its chunks back.
    if (this.opts.deadTrees?.has(f.treeId)) return Status.TOKEN_SCOPE;
    let layout: VolumeLayout | undefined;
    try {
      layout = this.opts.trees.cached(f.volumeId) ?? await this.opts.trees.resolve(f.volumeId);
      if (layout && layout.treeId === f.treeId && f.layerId > layout.layerId) {
        this.opts.trees.forget(f.volumeId);
        layout = await this.opts.trees.resolve(f.volumeId);
      }
    } catch (err) {
      this.opts.log.warn({ volumeId: f.volumeId, err: (err as Error).message }, 'cannot look up the tree of a volume');
      return Status.BUSY;
    }
    if (layout === undefined || layout.treeId !== f.treeId) return Status.TOKEN_SCOPE;
    return layout.layerId === f.layerId ? undefined : Status.LAYER_CHANGED;
  }

  /** The layers under the frame's (nearest first), as checked by route(); undefined when the volume moved layer since. */
  ancestors(f: Frame): readonly number[] | undefined | Promise<readonly number[] | undefined> {
    const pick = (layout: VolumeLayout | undefined) => (layout && layout.layerId === f.layerId ? layout.chain.slice(1) : undefined);
    const hit = this.opts.trees.cached(f.volumeId);
    return hit ? pick(hit) : this.opts.trees.resolve(f.volumeId).then(pick);
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
    if (!forwarded && entry.members[0] !== self) {
      const replicaRead = f.type === MsgType.READ && (f.flags & Flag.REPLICA_READ) !== 0;
      if (replicaRead && this.opts.pgs.replicaReadable(f.pgId, f.epoch, self, this.leaseMs)) {
        this.metrics.replicaReads++;
        return entry;
      }
      return Status.NOT_PRIMARY;
    }
    if (forwarded && entry.members[0] === self) return Status.NOT_MEMBER;
    return entry;
  }

  /** After a map change: secures every PG this SDS is now alone in (the node's poll calls this). */
  secureSolePgs(): Promise<void> {
    return this.replication.secureSolePgs();
  }

  key(f: Frame): ChunkKey {
    return { treeId: f.treeId, chunkIndex: f.chunkIndex, layerId: f.layerId };
  }
}

export { DataConnection };
