/**
 * Replication of the SDS primary (docs/sds.md): a write goes on to every
 * secondary and joining member before it is acknowledged; a secondary that
 * fails is fenced out of the PG at the MDM first. Also the durability rules
 * that follow from the acting set: a PG this SDS is alone in is written
 * through (secureSole), and a FLUSH reaches every secondary that took
 * non-durable writes since its last flush (flushPeers).
 *
 * Tracing: each forward of a traced request is a client span under the
 * request's server span, and the forwarded frame carries its traceparent (so
 * the secondary's span is its child); a fence it causes is traced under the
 * request too.
 */
import type { Logger } from '../shared/logger.js';
import { isPflexError } from '../shared/errors.js';
import { Flag, Status, statusName, type Frame, type MsgTypeValue, type StatusValue } from '../dataplane/proto.js';
import type { DataClientPool } from '../dataplane/client.js';
import type { ChunkStore } from './store/chunk-store.js';
import type { PgEntry, PgTable } from './pg-table.js';
import { forwardCatchUpDelayMsMax, forwardCatchUpDelayMsMin, forwardTimeoutMs } from './limits.js';
import type { SdsMetrics } from './metrics.js';
import { OP_NAMES } from './request-spans.js';
import { endSpan, SpanKind, startChild, traceBytes, traceFields, type Span } from '../shared/tracing.js';

export interface ReplicationDeps {
  selfId: () => number | undefined;
  store: ChunkStore;
  pgs: PgTable;
  peers: DataClientPool;
  log: Logger;
  metrics: SdsMetrics;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** The data server is closing: its lost connections are no evidence against a peer. */
  closing: () => boolean;
  /** A joining (rebuilding) member missed a forwarded write: its copy must not complete (src/sds/rebuild.ts). */
  onJoinerFailure?: (pg: number, sdsId: number) => void;
  /** How long a secondary whose map lags (EPOCH_AHEAD, UNKNOWN_PG) is given to catch up before it is fenced; default forwardTimeoutMs. */
  forwardCatchUpMs?: number;
  /** The server span of a traced request being served (src/sds/request-spans.ts). */
  spanOf?: (f: Frame) => Span | undefined;
}

/** Outcome of forwarding one request to one secondary. */
const enum Fwd { OK, STALE, TOKEN, FAILED, LAYER }

/** What one forward attempt brought back: an outcome, or a lagging secondary to try again. */
const LAGGING = -1;

export class Replication {
  /** Secondaries that took non-durable forwarded writes since their last flush, with the PGs involved. */
  private peersDirty = new Map<number, Set<number>>();
  /** "pg@epoch" of PGs where this SDS is the only member and its store was flushed since (see secureSole). */
  private readonly soleFlushed = new Map<string, Promise<void>>();
  /** In-flight fence calls, so concurrent failures of one member cost one MDM call. */
  private readonly fencing = new Map<string, Promise<StatusValue>>();

  constructor(private readonly o: ReplicationDeps) {}

  private spanOf(f: Frame): Span | undefined {
    return f.trace.length > 0 && this.o.spanOf ? this.o.spanOf(f) : undefined;
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
        await this.o.pgs.refresh().catch(() => undefined);
        return Status.STALE_EPOCH;
      }
      if (o === Fwd.TOKEN) return Status.TOKEN_EXPIRED;
      // The secondary knows the volume's newer layer (docs/snapshots.md): ours is old, so is the client's.
      if (o === Fwd.LAYER) return Status.LAYER_CHANGED;
      if (o === Fwd.FAILED) (failed ??= []).push(secondaries[i]!);
    }
    if (!failed) {
      if ((f.flags & Flag.FUA) === 0) this.markPeersDirty(secondaries, f.pgId);
      return Status.OK;
    }
    // Only acknowledge once the MDM has taken the failed members out of the PG.
    for (const id of failed) {
      const status = await this.fence(f.pgId, id, entry.epoch, this.spanOf(f));
      if (status !== Status.OK) return status;
    }
    const ok = secondaries.filter((id) => !failed!.includes(id));
    if ((f.flags & Flag.FUA) === 0) this.markPeersDirty(ok, f.pgId);
    return Status.OK;
  }

  /** A joining member's failure never holds up the client: its copy is failed instead (the MDM retries). */
  private async forwardToJoining(sdsId: number, f: Frame): Promise<void> {
    const o = await this.forwardTo(sdsId, f);
    if (o !== Fwd.OK) this.o.onJoinerFailure?.(f.pgId, sdsId);
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
    const ep = this.o.pgs.endpoint(sdsId);
    if (!ep) return Fwd.FAILED;
    const client = this.o.peers.get(ep.address, ep.dataPort);
    const deadline = this.o.now() + (this.o.forwardCatchUpMs ?? forwardTimeoutMs);
    let delay = forwardCatchUpDelayMsMin;
    for (let attempt = 0; ; attempt++) {
      const o = await this.forwardOnce(client, sdsId, f, attempt === 0 ? undefined : deadline);
      if (o !== LAGGING) return o;
      const left = deadline - this.o.now();
      if (left <= 0) {
        this.o.log.warn({ sdsId, pg: f.pgId, epoch: f.epoch, attempts: attempt + 1 }, 'secondary did not catch up with the PG map in time');
        return Fwd.FAILED;
      }
      await this.o.sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, forwardCatchUpDelayMsMax);
    }
  }

  /** One forward; a retry (deadline set) is cut off at the deadline (a late reply is ignored). */
  private async forwardOnce(client: ReturnType<DataClientPool['get']>, sdsId: number, f: Frame, deadline: number | undefined): Promise<Fwd | typeof LAGGING> {
    this.o.metrics.forwarded++;
    const parent = this.spanOf(f);
    const span = parent && startChild(parent, `sds.forward.${OP_NAMES[f.type] ?? 'request'}`, SpanKind.CLIENT, {
      'pflex.sds_id': this.o.selfId() ?? -1, 'pflex.peer_sds_id': sdsId, 'pflex.pg': f.pgId, 'pflex.retry': deadline !== undefined,
    });
    try {
      const sent = client.request(f.type as MsgTypeValue, {
        pgId: f.pgId, epoch: f.epoch, volumeId: f.volumeId, treeId: f.treeId, chunkIndex: f.chunkIndex, layerId: f.layerId,
        offset: f.offset, length: f.length, flags: f.flags | Flag.FORWARDED,
      }, f.token, f.payload, span ? traceBytes(span) : f.trace, f.crc);
      const reply = deadline === undefined ? await sent : await Promise.race([sent, this.o.sleep(Math.max(0, deadline - this.o.now())).then(() => undefined)]);
      if (reply === undefined) {
        sent.catch(() => undefined);
        if (span) endSpan(span, 'no answer before the catch-up deadline');
        return LAGGING;
      }
      if (span) endSpan(span, reply.status === Status.OK ? undefined : statusName(reply.status), { 'pflex.status': statusName(reply.status) });
      switch (reply.status) {
        case Status.OK: return Fwd.OK;
        case Status.STALE_EPOCH: return Fwd.STALE;
        case Status.TOKEN_EXPIRED: return Fwd.TOKEN;
        case Status.LAYER_CHANGED: return Fwd.LAYER;
        case Status.EPOCH_AHEAD: case Status.UNKNOWN_PG: return LAGGING;
        default:
          this.o.log.warn({ sdsId, pg: f.pgId, status: statusName(reply.status), ...traceFields(parent) }, 'secondary refused a forwarded request');
          return Fwd.FAILED;
      }
    } catch (err) {
      this.o.metrics.forwardFailures++;
      if (span) endSpan(span, err);
      this.o.log.warn({ sdsId, pg: f.pgId, err: (err as Error).message, ...traceFields(parent) }, 'forward to secondary failed');
      return Fwd.FAILED;
    }
  }

  /** Asks the MDM to drop a failed member; OK when it is out of the PG (by us or already). */
  fence(pg: number, sdsId: number, epoch: number, span?: Span): Promise<StatusValue> {
    // A stopping SDS sees its own connections go (peer clients closed, sockets
    // destroyed): that is no evidence against the peer, and fencing it would
    // leave this SDS, about to be gone, as the PG's last member. The client is
    // not acknowledged and retries elsewhere.
    if (this.o.closing()) return Promise.resolve(Status.SHUTTING_DOWN);
    const key = `${pg}/${sdsId}/${epoch}`;
    let p = this.fencing.get(key);
    if (!p) {
      p = this.doFence(pg, sdsId, epoch, span).finally(() => this.fencing.delete(key));
      this.fencing.set(key, p);
    }
    return p;
  }

  private async doFence(pg: number, sdsId: number, epoch: number, span: Span | undefined): Promise<StatusValue> {
    const e = this.o.pgs.get(pg);
    const self = this.o.selfId();
    if (e && e.members.length === 2 && self !== undefined && e.members.includes(self) && e.members.includes(sdsId)) {
      // We are about to be the PG's only copy: what was acknowledged while there were two must be
      // durable before the other copy stops counting (we may lose power before we learn the answer).
      try {
        await this.o.store.flush();
      } catch (err) {
        this.o.log.error({ pg, err: (err as Error).message }, 'flush before fencing the other member failed');
        return Status.IO_ERROR;
      }
    }
    try {
      const r = await this.o.pgs.fence(pg, sdsId, epoch, span);
      this.o.metrics.fences++;
      this.o.log.warn({ pg, sdsId, epoch, newEpoch: r.entry.epoch, members: r.entry.members, fenced: r.fenced, ...traceFields(span) }, 'fenced a failed PG member');
      return r.entry.members.includes(sdsId) ? Status.REPLICATION_FAILED : Status.OK;
    } catch (err) {
      if (isPflexError(err) && err.code === 'PFLEX_ERR_STALE_EPOCH') {
        await this.o.pgs.refresh().catch(() => undefined);
        const now = this.o.pgs.get(pg);
        return now && !now.members.includes(sdsId) ? Status.OK : Status.STALE_EPOCH;
      }
      this.o.log.error({ pg, sdsId, err: (err as Error).message }, 'could not fence a failed PG member');
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
    const e = this.o.pgs.get(pg);
    const self = this.o.selfId();
    if (!e || self === undefined || e.members.length !== 1 || e.members[0] !== self) return Promise.resolve();
    const key = `${pg}@${e.epoch}`;
    let p = this.soleFlushed.get(key);
    if (!p || always) {
      p = this.o.store.flush();
      this.soleFlushed.set(key, p);
      p.catch(() => this.soleFlushed.delete(key));
    }
    return p;
  }

  /**
   * Replica reads (PgTable.replicaReadable): after this SDS learned that a
   * member left the PG, a write is acknowledged only once that member's read
   * lease has run out, so it cannot serve a read that misses the write.
   */
  async holdForRemoval(pg: number, leaseMs: number): Promise<void> {
    const ms = this.o.pgs.removalPendingMs(pg, leaseMs);
    if (ms > 0) await this.o.sleep(ms);
  }

  /** After a map change: secures every PG we are now alone in (the node's poll calls this). */
  async secureSolePgs(): Promise<void> {
    for (const key of [...this.soleFlushed.keys()]) {
      const [pg, epoch] = key.split('@').map(Number) as [number, number];
      if (this.o.pgs.get(pg)?.epoch !== epoch) this.soleFlushed.delete(key);
    }
    await Promise.all(this.o.pgs.all().map((e) => this.secureSole(e.pg)));
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
        const entry = this.o.pgs.get(pg);
        if (!entry || !entry.members.includes(id)) continue;
        const s = await this.fence(pg, id, entry.epoch, this.spanOf(f));
        if (s !== Status.OK) {
          status = Status.REPLICATION_FAILED;
          this.markPeersDirty([id], pg); // still owed a flush
        }
      }
    }
    return status;
  }
}
