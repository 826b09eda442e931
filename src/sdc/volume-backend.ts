/**
 * The SDC's BlockBackend for one mapped volume: every NBD request is cut at
 * chunk boundaries, each piece goes to its PG's primary SDS (PG from
 * pgOfChunk, primary from the cached PG map) over the pooled persistent data
 * connections, all pieces in parallel, and reads are reassembled.
 *
 * A piece is retried, not failed, while the cluster can still answer it: a
 * stale epoch refreshes the map, a refused token is renewed, a primary that
 * does not answer (connection lost, or silent: see the data client's
 * liveness check) is reported to the MDM and the piece goes to the new
 * primary. A piece still waiting on a primary that a newer map has dropped
 * from its PG is abandoned and re-sent at once (see send()). The NBD client
 * sees an error only after ioTimeoutMs, or at once for answers no retry can
 * change (bad request, no space, not allowed).
 *
 * Tracing: a sampled NBD request is the root span of its trace; its data
 * frames carry its traceparent (the SDSs' spans are its children) and the
 * MDM calls it makes (token, map, fence) are client spans under it. A
 * request that is not sampled allocates nothing for tracing.
 *
 * Unaligned writes go to the SDS as they are: the SDS applies a sub-block
 * write under its own chunk lock, so there is no read-modify-write in the SDC
 * for two clients to race on.
 */
import type { BackendCapabilities, BlockBackend, Extent, WriteOptions, ZeroOptions } from '../nbd/backend.js';
import { NbdError } from '../nbd/errors.js';
import type { DataClientPool } from '../dataplane/client.js';
import { Flag, MsgType, payloadBytes, slicePayload, Status, statusName, type Frame, type MsgTypeValue, type Payload } from '../dataplane/proto.js';
import { PflexError, assert, isPflexError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { pgOfChunk } from '../shared/pg.js';
import { endSpan, rootSampled, SpanKind, startRoot, traceBytes, type Span } from '../shared/tracing.js';
import { blockStatusChunksMax, retryDelayMsMax, retryDelayMsMin, storedChunksCachedMax } from './limits.js';
import type { Endpoint, PoolMap, Route } from './pool-map.js';
import type { OpName } from './stats.js';
import { VolumeStats } from './stats.js';
import type { QosLimiter } from './qos.js';
import type { VolumeToken } from './tokens.js';

export interface VolumeInfo {
  id: number;
  name: string;
  treeId: number;
  /** The layer of the tree this volume reads and writes; a snapshot or revert moves it (docs/snapshots.md). */
  layerId: number;
  poolId: number;
  sizeBytes: number;
  chunkBytes: number;
  readOnly: boolean;
}

export interface VolumeBackendDeps {
  map: PoolMap;
  token: VolumeToken;
  clients: DataClientPool;
  log: Logger;
  ioTimeoutMs: number;
  /** Spread reads over every acting member of a PG, not only its primary (docs/sdc.md "Replica reads"). */
  replicaReads?: boolean;
  /** The volume's layer now, from the MDM (after an SDS answered LAYER_CHANGED). */
  currentLayer?: () => Promise<number>;
  /** The mapping's QoS; requests wait here before anything is sent (none: unlimited). */
  qos?: QosLimiter;
}

const EMPTY = Buffer.alloc(0);
const ZEROS = Buffer.alloc(1024 * 1024);

function zeros(length: number): Buffer {
  return length <= ZEROS.length ? ZEROS.subarray(0, length) : Buffer.alloc(length);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One chunk-sized (or smaller) part of a request. */
interface Piece {
  chunk: number;
  /** Offset within the chunk. */
  offset: number;
  length: number;
  /** Offset within the request. */
  pos: number;
}

export class VolumeBackend implements BlockBackend {
  /** Changed in place by update(): a connection negotiated an earlier size and access. */
  size: number;
  capabilities: BackendCapabilities;
  readonly stats = new VolumeStats();
  /** SDSs that acknowledged non-FUA writes since the last flush (by id). */
  private dirty = new Map<number, Endpoint>();
  /** Turn of the member the next replica read goes to. */
  private nextReplica = 0;
  /**
   * Chunks known to exist (written here, or probed), so BLOCK_STATUS need not
   * probe them again; a TRIM or WRITE_ZEROES of a whole chunk frees it on the
   * SDSs and takes it out of this set.
   */
  private readonly stored = new Set<number>();
  private closed = false;
  /** Set while the MDM holds this volume's writes for a snapshot cut; writes wait on it. */
  private gate: { promise: Promise<void>; open: () => void; timer: NodeJS.Timeout } | null = null;
  /** Writes (WRITE, TRIM, ZERO) between their start and their answer. */
  private writesInflight = 0;
  private drained: Array<() => void> = [];
  private layerRefresh: Promise<void> | null = null;

  constructor(readonly volume: VolumeInfo, private readonly d: VolumeBackendDeps) {
    this.size = volume.sizeBytes;
    this.capabilities = {
      readOnly: volume.readOnly, flush: true, fua: true, trim: true, zero: true, fastZero: false,
      cache: false, multiConn: true, extents: true,
    };
  }

  pieces(offset: number, length: number): Piece[] {
    const cb = this.volume.chunkBytes;
    const out: Piece[] = [];
    let pos = 0;
    while (pos < length) {
      const abs = offset + pos;
      const chunk = Math.floor(abs / cb);
      const within = abs - chunk * cb;
      const n = Math.min(cb - within, length - pos);
      out.push({ chunk, offset: within, length: n, pos });
      pos += n;
    }
    return out;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const parts = await this.readv(offset, length);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
  }

  /** The range as the pieces' reply payloads in order (a read across chunks is not joined into a copy). */
  async readv(offset: number, length: number): Promise<Buffer[]> {
    const started = performance.now();
    const span = rootSampled() ? this.requestSpan('read', offset, length, false) : undefined;
    try {
      this.mustFit('read', offset, length);
      await this.throttle(length, span);
      const ps = this.pieces(offset, length);
      const out = ps.length === 1 ? [await this.readPiece(ps[0]!, span)] : await Promise.all(ps.map((p) => this.readPiece(p, span)));
      this.stats.record('read', length, started, false);
      if (span) endSpan(span);
      return out;
    } catch (err) {
      this.stats.record('read', length, started, true);
      if (span) endSpan(span, err);
      throw err;
    }
  }

  /**
   * The volume was resized or renamed, or its mapping's access changed, at
   * the MDM (seen at the SDC's rescan). It applies to the connections
   * already open: they negotiated the old size and access, and the NBD
   * server checks requests against those, so a shrunk volume or a read-only
   * mapping is enforced here.
   */
  update(to: { name: string; sizeBytes: number; readOnly: boolean }): void {
    if (to.sizeBytes !== this.size) this.d.log.info({ from: this.size, to: to.sizeBytes }, 'volume resized');
    if (to.readOnly !== this.volume.readOnly) this.d.log.info({ readOnly: to.readOnly }, 'mapping access changed');
    this.volume.name = to.name;
    this.size = this.volume.sizeBytes = to.sizeBytes;
    this.volume.readOnly = to.readOnly;
    this.capabilities = { ...this.capabilities, readOnly: to.readOnly };
  }

  private mustFit(op: OpName, offset: number, length: number): void {
    if (offset + length > this.size) {
      throw new NbdError(op === 'read' ? 'EINVAL' : 'ENOSPC', `${op} at ${offset}+${length} is beyond the end of volume ${this.volume.name} (${this.size} bytes, resized since this connection opened)`);
    }
  }

  private mustBeWritable(op: OpName, offset: number, length: number): void {
    if (this.volume.readOnly) throw new NbdError('EPERM', `volume ${this.volume.name} is mapped read-only to this SDC now`);
    this.mustFit(op, offset, length);
  }

  /** Waits for the mapping's QoS to let a request of `bytes` go (at once when unlimited). */
  private async throttle(bytes: number, span: Span | undefined): Promise<void> {
    const queued = this.d.qos?.take(bytes);
    if (!queued) return;
    const t0 = performance.now();
    await queued;
    if (span) span.addEvent('qos.wait', { 'pflex.waited_ms': performance.now() - t0 });
  }

  /** The root span of a sampled NBD request (kind SERVER: the SDC serves it to the NBD client). */
  private requestSpan(op: string, offset: number, length: number, fua: boolean): Span | undefined {
    return startRoot(`nbd.${op}`, SpanKind.SERVER, {
      'pflex.volume': this.volume.name, 'pflex.volume_id': this.volume.id, 'nbd.offset': offset, 'nbd.length': length, 'nbd.fua': fua,
    });
  }

  private async readPiece(p: Piece, span: Span | undefined): Promise<Buffer> {
    const f = await this.exec(MsgType.READ, p, EMPTY, 0, span);
    if (f.status === Status.NO_CHUNK) return zeros(p.length);
    assert(f.payload.length === p.length, 'SDS answered a read with the wrong length');
    return f.payload;
  }

  write(offset: number, data: Buffer, options: WriteOptions): Promise<void> {
    return this.modify('write', MsgType.WRITE, offset, data.length, options.fua, data);
  }

  /** A write whose payload came off the NBD socket in parts: each piece is sent as views of them, never joined. */
  writev(offset: number, data: readonly Buffer[], options: WriteOptions): Promise<void> {
    return this.modify('write', MsgType.WRITE, offset, payloadBytes(data), options.fua, data);
  }

  trim(offset: number, length: number, options: WriteOptions): Promise<void> {
    return this.modify('trim', MsgType.TRIM, offset, length, options.fua);
  }

  zero(offset: number, length: number, options: ZeroOptions): Promise<void> {
    if (options.fast) return Promise.reject(new NbdError('ENOTSUP', 'fast zero is not supported'));
    return this.modify('zero', MsgType.ZERO, offset, length, options.fua);
  }

  private async modify(op: OpName, type: MsgTypeValue, offset: number, length: number, fua: boolean, data?: Payload): Promise<void> {
    const started = performance.now();
    const flags = fua ? Flag.FUA : 0;
    const span = rootSampled() ? this.requestSpan(op, offset, length, fua) : undefined;
    // Trim and zero move no data: they count as operations, not bandwidth.
    // Tokens are taken once, before the quiesce gate: a write held by a
    // snapshot cut has already paid, and one waiting on QoS is not in flight
    // (the cut does not wait for it).
    try {
      this.mustBeWritable(op, offset, length);
      await this.throttle(data ? length : 0, span);
      while (this.gate) await this.gate.promise;
      this.writesInflight++;
      try {
        const ps = this.pieces(offset, length);
        const one = async (p: Piece): Promise<void> => {
          const payload = data ? slicePayload(data, p.pos, p.length) : EMPTY;
          await this.exec(type, p, payload, flags, span);
          if (!data && p.offset === 0 && p.length === this.volume.chunkBytes) this.stored.delete(p.chunk);
        };
        if (ps.length === 1) await one(ps[0]!);
        else await Promise.all(ps.map(one));
      } finally {
        if (--this.writesInflight === 0) for (const wake of this.drained.splice(0)) wake();
      }
      this.stats.record(op, length, started, false);
      if (span) endSpan(span);
    } catch (err) {
      this.stats.record(op, length, started, true);
      if (span) endSpan(span, err);
      throw err;
    }
  }

  /**
   * A snapshot cut (the MDM's quiesce): new writes wait, and this resolves
   * once the writes in flight have their answers, so every write acknowledged
   * before the cut is in the old layer and none after it is. The hold ends at
   * resume(), or by itself after holdMs should the MDM never come back (a
   * write then goes to the old layer and the SDSs answer LAYER_CHANGED if
   * the cut was committed).
   */
  async quiesce(holdMs: number): Promise<void> {
    if (!this.gate) {
      let open!: () => void;
      const promise = new Promise<void>((r) => { open = r; });
      const timer = setTimeout(() => {
        this.d.log.warn({ holdMs }, 'quiesced writes released without a resume from the MDM');
        this.resume();
      }, holdMs);
      timer.unref();
      this.gate = { promise, open, timer };
    }
    if (this.writesInflight > 0) await new Promise<void>((r) => this.drained.push(r));
  }

  /** Ends a quiesce; layerId: the volume's layer after the cut. */
  resume(layerId?: number): void {
    if (layerId !== undefined) this.volume.layerId = layerId;
    const g = this.gate;
    if (!g) return;
    this.gate = null;
    clearTimeout(g.timer);
    g.open();
  }

  get quiesced(): boolean {
    return this.gate !== null;
  }

  /** An SDS said our layer is old: ask the MDM (concurrent pieces share one call). */
  private refreshLayer(): Promise<void> {
    const fetch = this.d.currentLayer;
    if (!fetch) return Promise.resolve();
    this.layerRefresh ??= fetch().then((layerId) => {
      if (layerId !== this.volume.layerId) this.d.log.info({ from: this.volume.layerId, to: layerId }, 'volume moved to a new layer');
      this.volume.layerId = layerId;
      this.stored.clear(); // another layer: what was stored may differ
    }).finally(() => { this.layerRefresh = null; });
    return this.layerRefresh;
  }

  /**
   * Makes every write acknowledged before the call durable on every replica:
   * each primary written since the last flush flushes itself and the
   * secondaries it forwarded to. A primary that died meanwhile handed its PGs
   * to its secondaries, which are other SDSs: they are all flushed instead.
   */
  async flush(): Promise<void> {
    const started = performance.now();
    const span = rootSampled() ? this.requestSpan('flush', 0, 0, false) : undefined;
    await this.throttle(0, span);
    const dirty = this.dirty;
    this.dirty = new Map();
    try {
      const down: number[] = [];
      await Promise.all([...dirty.values()].map((ep) => this.flushOne(ep, span).catch((err: unknown) => {
        if (!isPflexError(err) || err.code !== 'PFLEX_ERR_UNAVAILABLE') throw err;
        down.push(ep.id);
      })));
      if (down.length > 0) await this.flushAround(down, span);
      this.stats.record('flush', 0, started, false);
      if (span) endSpan(span, undefined, { 'pflex.sds_flushed': dirty.size });
    } catch (err) {
      for (const [id, ep] of dirty) this.dirty.set(id, ep); // still owed a flush
      this.stats.record('flush', 0, started, true);
      if (span) endSpan(span, err);
      throw err;
    }
  }

  /**
   * Some written primaries did not answer the flush: report them for every PG
   * they lead, then flush every other SDS (the secondaries that hold their
   * writes are among them).
   */
  private async flushAround(down: number[], span: Span | undefined): Promise<void> {
    const map = this.d.map;
    await map.refresh(span).catch(() => undefined);
    const routes: Route[] = [];
    for (let pg = 0; pg < map.pgCount; pg++) {
      const r = map.route(pg);
      if (r && down.includes(r.primary.id)) routes.push(r);
    }
    this.stats.primariesReported += routes.length;
    await Promise.all(routes.map((r) => map.reportFailed(r, 'did not answer a flush', span)));
    for (let pg = 0; pg < map.pgCount; pg++) {
      const r = map.route(pg);
      if (r && down.includes(r.primary.id)) throw new PflexError('PFLEX_ERR_UNAVAILABLE', `SDS ${r.primary.id} did not answer a flush and still leads PG ${pg}`);
    }
    const members = map.memberIds();
    await Promise.all(map.sdsList().filter((ep) => members.has(ep.id) && !down.includes(ep.id)).map((ep) => this.flushOne(ep, span)));
  }

  private async flushOne(ep: Endpoint, span: Span | undefined): Promise<void> {
    const deadline = Date.now() + this.d.ioTimeoutMs;
    let delay = retryDelayMsMin;
    const trace = traceBytes(span);
    for (;;) {
      const token = await this.token(span);
      const client = this.d.clients.get(ep.address, ep.dataPort);
      const f = await client.flush({ pgId: 0, epoch: 0, volumeId: this.volume.id, treeId: this.volume.treeId, chunkIndex: 0, layerId: this.volume.layerId }, token, 0, trace);
      if (f.status === Status.OK) return;
      if (f.status === Status.TOKEN_EXPIRED || f.status === Status.BAD_TOKEN) {
        this.stats.tokenRefusals++;
        await this.d.token.renew(span);
      } else if (f.status !== Status.REPLICATION_FAILED && f.status !== Status.BUSY) {
        throw this.statusError(f, 'flush');
      }
      if (Date.now() > deadline) throw new PflexError('PFLEX_ERR_UNAVAILABLE', `flush of SDS ${ep.id} failed: ${statusName(f.status)}`);
      await sleep(delay);
      delay = Math.min(delay * 2, retryDelayMsMax);
    }
  }

  async cache(): Promise<void> {
    // Not advertised; nothing to prefetch into.
  }

  /** Chunk-granular extents: a chunk no SDS has stored reads as zeros and is a hole. */
  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    const started = performance.now();
    const span = rootSampled() ? this.requestSpan('block_status', offset, length, false) : undefined;
    const cb = this.volume.chunkBytes;
    const end = offset + length;
    const spans: Array<{ chunk: number; length: number }> = [];
    for (let pos = offset; pos < end && spans.length < blockStatusChunksMax;) {
      const chunk = Math.floor(pos / cb);
      const n = Math.min((chunk + 1) * cb, end) - pos;
      spans.push({ chunk, length: n });
      pos += n;
    }
    try {
      const holes = await Promise.all(spans.map(async (s) => {
        if (this.stored.has(s.chunk)) return false;
        const f = await this.exec(MsgType.READ, { chunk: s.chunk, offset: 0, length: 1, pos: 0 }, EMPTY, 0, span);
        return f.status === Status.NO_CHUNK;
      }));
      const out: Array<{ length: number; hole: boolean; zero: boolean }> = [];
      for (let i = 0; i < spans.length; i++) {
        const hole = holes[i]!;
        const last = out[out.length - 1];
        if (last && last.hole === hole) last.length += spans[i]!.length;
        else out.push({ length: spans[i]!.length, hole, zero: hole });
      }
      this.stats.record('blockStatus', 0, started, false);
      if (span) endSpan(span);
      return out;
    } catch (err) {
      this.stats.record('blockStatus', 0, started, true);
      if (span) endSpan(span, err);
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private remember(chunk: number): void {
    if (this.stored.size < storedChunksCachedMax) this.stored.add(chunk);
  }

  private token(span: Span | undefined): Promise<Buffer> | Buffer {
    return this.d.token.get(span);
  }

  /**
   * Sends one piece to its primary until it gets an answer no retry can
   * improve. span: the traced NBD request (undefined when not sampled).
   */
  private async exec(type: MsgTypeValue, p: Piece, payload: Payload, flags: number, span: Span | undefined): Promise<Frame> {
    const deadline = Date.now() + this.d.ioTimeoutMs;
    const map = this.d.map;
    const trace = traceBytes(span);
    let delay = retryDelayMsMin;
    let last = 'no answer';
    for (let attempt = 0; ; attempt++) {
      // Closed: unmapped from this SDC (or the SDC is stopping). A token still
      // cached would be honoured by the SDSs until it expires, so refuse here.
      if (this.closed) throw new PflexError('PFLEX_ERR_UNAVAILABLE', `volume ${this.volume.name} is no longer served by this SDC (unmapped, or the SDC is stopping)`);
      if (attempt > 0) {
        this.stats.retries++;
        if (span) span.addEvent('retry', { 'pflex.chunk': p.chunk, 'pflex.reason': last });
        if (Date.now() > deadline) {
          throw new PflexError('PFLEX_ERR_UNAVAILABLE', `volume ${this.volume.name} chunk ${p.chunk}: no answer in ${this.d.ioTimeoutMs} ms (${last})`);
        }
      }
      const route = map.pgCount > 0 ? map.route(pgOfChunk(this.volume.treeId, p.chunk, map.pgCount)) : undefined;
      if (!route) {
        last = 'PG map not ready';
        await map.refresh(span).catch((err: unknown) => { last = (err as Error).message; });
        if (map.pgCount === 0 || !map.route(pgOfChunk(this.volume.treeId, p.chunk, map.pgCount))) {
          await sleep(delay);
          delay = Math.min(delay * 2, retryDelayMsMax);
        }
        continue;
      }
      let token: Buffer;
      try {
        const t = this.token(span);
        token = t instanceof Buffer ? t : await t;
      } catch (err) {
        if (isPflexError(err) && err.code !== 'PFLEX_ERR_UNAVAILABLE') throw err; // unmapped (403) or similar
        last = (err as Error).message;
        await sleep(delay);
        delay = Math.min(delay * 2, retryDelayMsMax);
        continue;
      }
      if (attempt === 0 && type === MsgType.READ && this.d.replicaReads) {
        const f = await this.replicaRead(route, p, flags, token);
        if (f) return f;
        this.stats.replicaFallbacks++;
      }
      let f: Frame;
      try {
        f = await this.send(route, type, p, payload, flags, token, trace);
      } catch (err) {
        if (!isPflexError(err) || (err.code !== 'PFLEX_ERR_UNAVAILABLE' && err.code !== 'PFLEX_ERR_IO')) throw err;
        last = err.message;
        const moved = map.route(route.pg);
        if (err.code === 'PFLEX_ERR_UNAVAILABLE' && moved && moved.primary.id !== route.primary.id) {
          continue; // abandoned, or the map moved on meanwhile: nothing to report
        }
        if (err.code === 'PFLEX_ERR_UNAVAILABLE') {
          this.stats.primariesReported++;
          await map.reportFailed(route, err.message, span);
          const now = map.route(route.pg);
          if (now && now.primary.id === route.primary.id && now.epoch === route.epoch) {
            await sleep(delay);
            delay = Math.min(delay * 2, retryDelayMsMax);
          }
        }
        continue;
      }
      switch (f.status) {
        case Status.OK:
          if (type === MsgType.WRITE || type === MsgType.READ) this.remember(p.chunk);
          if (type !== MsgType.READ && (flags & Flag.FUA) === 0 && !this.dirty.has(route.primary.id)) this.dirty.set(route.primary.id, route.primary);
          return f;
        case Status.NO_CHUNK:
          return f;
        case Status.STALE_EPOCH:
        case Status.NOT_PRIMARY:
        case Status.EPOCH_AHEAD:
        case Status.UNKNOWN_PG:
        case Status.NOT_MEMBER:
          last = statusName(f.status);
          await map.refresh(span).catch(() => undefined);
          if (f.status === Status.EPOCH_AHEAD || f.status === Status.UNKNOWN_PG) await sleep(delay); // the SDS has yet to learn the map
          delay = Math.min(delay * 2, retryDelayMsMax);
          continue;
        case Status.TOKEN_EXPIRED:
        case Status.BAD_TOKEN:
          last = statusName(f.status);
          this.stats.tokenRefusals++;
          await this.d.token.renew(span).catch(() => undefined);
          continue;
        case Status.LAYER_CHANGED:
          last = statusName(f.status);
          await this.refreshLayer().catch((err: unknown) => { last = (err as Error).message; });
          await sleep(delay);
          delay = Math.min(delay * 2, retryDelayMsMax);
          continue;
        case Status.BUSY:
        case Status.SHUTTING_DOWN:
        case Status.REPLICATION_FAILED:
        case Status.CHECKSUM_MISMATCH:
          last = statusName(f.status);
          await sleep(delay);
          delay = Math.min(delay * 2, retryDelayMsMax);
          if (f.status !== Status.CHECKSUM_MISMATCH) await map.refresh(span).catch(() => undefined);
          continue;
        default:
          throw this.statusError(f, MsgType.READ === type ? 'read' : 'write');
      }
    }
  }

  /**
   * One attempt of a piece on its primary. It is abandoned (rejected as
   * UNAVAILABLE, and exec retries on the new primary at once) when a newer
   * map drops that primary from the PG: fenced by another SDC or a primary
   * whose forward it missed, or evicted by the MDM as DOWN. Waiting on a
   * dead primary would only end with a timeout.
   *
   * Why an abandoned request may be left running: if the old primary A is
   * in fact alive and applies it later, the result must never become
   * visible. A was taken out of the PG by a fence or eviction, which gave
   * the PG a new epoch E' > E (the epoch the piece carries). A checks the
   * epoch of every request against its own PG table (DataServer.route):
   * if A already knows E' it refuses the piece (STALE_EPOCH / NOT_PRIMARY);
   * if it does not, it may write its own copy, but it forwards the write to
   * the secondaries with the piece's epoch E, and a member that knows E'
   * refuses a forwarded frame whose epoch is older (route(): STALE_EPOCH
   * comes before any role check, for forwarded frames too); A then answers
   * STALE_EPOCH, not OK. Every member of the new acting set knows E' before
   * it acknowledges the re-sent piece (the new primary routed it at E', and
   * forwarded it at E' to the others), and the NBD client's write completes
   * only after that acknowledgement, so no write ordered after it can be
   * overtaken by A's late copy on any current member. A's own copy is
   * stale, but A is not a member: it serves no reads at E' and must be
   * rebuilt before it rejoins the PG. Hence abandoning only when the old
   * primary left the PG, not on any epoch change nor when it was merely
   * demoted (a demoted member keeps its copy; there the SDC waits for A's
   * STALE_EPOCH answer, which a live A sends promptly).
   */
  private send(route: Route, type: MsgTypeValue, p: Piece, payload: Payload, flags: number, token: Buffer, trace: Buffer): Promise<Frame> {
    const client = this.d.clients.get(route.primary.address, route.primary.dataPort);
    const reply = client.request(type, {
      pgId: route.pg, epoch: route.epoch, volumeId: this.volume.id, treeId: this.volume.treeId, chunkIndex: p.chunk, layerId: this.volume.layerId,
      offset: p.offset, length: p.length, flags,
    }, token, payload, trace);
    return new Promise<Frame>((resolve, reject) => {
      const unwatch = this.d.map.watchPrimary(route, () => {
        this.stats.piecesAbandoned++;
        reject(new PflexError('PFLEX_ERR_UNAVAILABLE', `SDS ${route.primary.id} no longer serves PG ${route.pg}: request abandoned`));
      });
      reply.then((f) => { unwatch(); resolve(f); }, (err: unknown) => { unwatch(); reject(err); });
    });
  }

  /**
   * A read sent to one acting member chosen in turn (the primary included,
   * which spreads the load evenly). A secondary serves it only while its map
   * is confirmed current (DataServer.route); the answer (OK, NO_CHUNK) is
   * kept, anything else (refusal, no answer) sends the piece to the primary:
   * undefined.
   */
  private async replicaRead(route: Route, p: Piece, flags: number, token: Buffer): Promise<Frame | undefined> {
    const members = this.d.map.members(route.pg);
    if (members.length < 2) return undefined;
    const ep = members[this.nextReplica++ % members.length]!;
    if (ep.id === route.primary.id) return undefined;
    try {
      const f = await this.d.clients.get(ep.address, ep.dataPort).request(MsgType.READ, {
        pgId: route.pg, epoch: route.epoch, volumeId: this.volume.id, treeId: this.volume.treeId, chunkIndex: p.chunk, layerId: this.volume.layerId,
        offset: p.offset, length: p.length, flags: flags | Flag.REPLICA_READ,
      }, token, EMPTY);
      if (f.status !== Status.OK && f.status !== Status.NO_CHUNK) return undefined;
      this.stats.replicaReads++;
      if (f.status === Status.OK) this.remember(p.chunk);
      return f;
    } catch {
      return undefined;
    }
  }

  private statusError(f: Frame, what: string): Error {
    const text = f.payload.length > 0 && f.payload.length < 1024 ? `: ${f.payload.toString('utf8')}` : '';
    const message = `${what} refused by the SDS (${statusName(f.status)})${text}`;
    switch (f.status) {
      case Status.NO_SPACE: return new NbdError('ENOSPC', message);
      case Status.TOKEN_SCOPE: return new NbdError('EPERM', message);
      case Status.BAD_REQUEST: return new NbdError('EINVAL', message);
      default: return new PflexError('PFLEX_ERR_IO', message);
    }
  }
}
