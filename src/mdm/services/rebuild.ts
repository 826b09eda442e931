/**
 * Self-healing of the PG maps: rebuild after an SDS goes DOWN, rebalance
 * when SDSs join, drain before removal. One mechanism serves all three:
 *
 *   1. plan   — placement over the live, non-draining SDSs (previous = the
 *               acting sets) says where each PG should be; a PG that lacks
 *               a member gets one *joining* member (new epoch). The primary
 *               forwards writes to it at once; it is not read from nor
 *               waited for.
 *   2. copy   — the MDM asks the PG's primary (SDS control POST /rebuilds)
 *               to push every chunk to the joining member, each under that
 *               chunk's lock, throttled by a token bucket (src/sds/rebuild.ts).
 *   3. join   — the primary, with the PG's writes drained, calls
 *               POST /storage-pools/:id/pgs/:pg/join: the member enters the
 *               acting set, the member it replaces (rebalance, drain) leaves,
 *               new epoch; the leaver is told to drop its copy.
 *
 * A DOWN SDS is evicted from every PG at once (one new epoch). A failed copy
 * removes the joining member (new epoch) and is retried after a delay.
 */
import type { FastifyBaseLogger } from 'fastify';
import { isPflexError, PflexError } from '../../shared/errors.js';
import { MDM_LIMITS, type MdmConfig } from '../config.js';
import { tx, type Db } from '../db.js';
import type { PgEntry, PgRepo } from '../repos/pg-repo.js';
import type { RebuildJob, RebuildKind, RebuildRepo } from '../repos/rebuild-repo.js';
import type { Sds, StoragePool, TopologyRepo } from '../repos/topology-repo.js';
import type { AlertService } from './alerts.js';
import type { Clock, MdmEvents, PgMapEvent, TransitionEvent } from './events.js';
import type { PlaceFn } from './pgmap.js';
import type { ControlEndpoint, SdsControl } from './rebuild-control.js';
import type { TopologyService } from './topology.js';

export const degradedAlertKey = (poolId: number): string => `pool-degraded:${poolId}`;

export interface RebuildProgress {
  chunksDone: number; chunksTotal: number; bytesDone: number; bytesTotal: number;
  mode?: 'full' | 'delta' | undefined; bytesSkipped?: number | undefined;
}

export interface RebuildStatus {
  /** Some PG is degraded, joining or waiting to move. */
  active: boolean;
  pools: Array<{
    id: number; name: string; pgCount: number; replicationFactor: number;
    degradedPgs: number; rebuildingPgs: number;
  }>;
  jobs: RebuildJob[];
  totals: RebuildProgress;
  /** Finished in the last minute: bytes copied per second over that window. */
  recentBytesPerS: number;
  draining: number[];
  limits: { bandwidthBytesPerS: number; concurrentPgsMax: number };
}

export class RebuildService {
  logger: FastifyBaseLogger | undefined;
  private ticking = false;
  /** Per pool: what the last plan saw, so a steady cluster is not re-planned every tick. */
  private readonly planned = new Map<number, { signature: string; atMs: number }>();
  /**
   * When a peer last reported each SDS silent and the MDM fenced it. Such an
   * SDS stays ACTIVE until downAfterMs without a beat, but it must not be
   * picked as a joining member meanwhile: the copy would start with a call
   * to a silent SDS, under the primary's PG lock, and stall the PG's client IO.
   */
  private readonly fencedAtMs = new Map<number, number>();

  constructor(
    private readonly db: Db,
    private readonly pgs: PgRepo,
    private readonly jobs: RebuildRepo,
    private readonly topo: TopologyRepo,
    private readonly topology: TopologyService,
    private readonly alerts: AlertService,
    private readonly place: PlaceFn,
    private readonly config: MdmConfig,
    private readonly clock: Clock,
    private readonly events: MdmEvents,
    private readonly control: SdsControl,
  ) {
    events.on('transition', (t: TransitionEvent) => {
      if (t.kind === 'sds' && t.to === 'DOWN') this.evict(t.id);
    });
    events.on('pgMap', (e: PgMapEvent) => {
      if (e.fencedSdsId !== undefined) this.fencedAtMs.set(e.fencedSdsId, this.clock());
    });
  }

  /** Takes a DOWN SDS out of every PG of its pool (its primaries go to the next member), one new epoch. */
  evict(sdsId: number): number {
    const r = tx(this.db, () => {
      const s = this.topo.getSds(sdsId);
      if (!s) return undefined;
      const pool = this.topo.getPool(s.storagePoolId)!;
      // Without volumes there is no data to protect: the map stays whole (and the member comes back as it was).
      if (this.topo.countPoolChildren(pool.id).volumes === 0) return undefined;
      const epoch = pool.mapEpoch + 1;
      let changed = 0;
      for (const e of this.pgs.listInvolving(pool.id, sdsId)) {
        // The last member holds the only copy: it stays, the PG is unavailable until it returns.
        const members = e.members.length > 1 ? e.members.filter((m) => m !== sdsId) : e.members;
        let joining = e.joining.filter((m) => m !== sdsId);
        const job = this.jobs.activeFor(pool.id, e.pg);
        if (job && (job.targetSdsId === sdsId || job.sourceSdsId === sdsId)) {
          this.jobs.finish(job.id, 'cancelled', `SDS ${sdsId} is DOWN`, this.clock());
          joining = joining.filter((m) => m !== job.targetSdsId);
        }
        if (sameList(members, e.members) && sameList(joining, e.joining)) continue;
        this.pgs.upsert(pool.id, e.pg, members, epoch, joining);
        changed++;
      }
      if (changed > 0) this.topo.setPoolEpoch(pool.id, epoch);
      return { poolId: pool.id, epoch, changed };
    });
    if (r && r.changed > 0) {
      this.logger?.warn({ sdsId, poolId: r.poolId, pgs: r.changed, epoch: r.epoch }, 'evicted a DOWN SDS from its PGs');
      this.events.emit('pgMap', { poolId: r.poolId, epoch: r.epoch, reason: 'fence' });
    }
    return r?.changed ?? 0;
  }

  /** One round: evict DOWN members, plan new copies, drive running ones, finish drains, alerts. */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      for (const s of this.topo.listSds()) if (s.state === 'DOWN') this.evict(s.id);
      for (const pool of this.topo.listPools()) this.plan(pool.id);
      await this.drive();
      this.finishDrains();
      this.updateAlerts();
      this.jobs.prune(MDM_LIMITS.rebuildJobHistoryMax);
    } finally {
      this.ticking = false;
    }
  }

  /** Creates joining members (and jobs) for PGs that placement wants elsewhere, within the concurrency limit. */
  plan(poolId: number): RebuildJob[] {
    // Placement is the costly part: skip it while nothing it depends on moved (re-plan anyway after the retry delay).
    const pool0 = this.topo.getPool(poolId);
    if (!pool0) return [];
    const signature = [pool0.mapEpoch, this.jobs.active().length, this.jobs.drainingIds().join(','),
      this.topo.listSds({ poolId }).map((x) => `${x.id}:${x.state}:${x.capacityBytes}:${this.silentSinceFence(x) ? 'silent' : ''}`).join(',')].join('|');
    const last = this.planned.get(poolId);
    const now0 = this.clock();
    if (last && last.signature === signature && now0 - last.atMs < this.config.rebuildRetryDelayMs) return [];
    this.planned.set(poolId, { signature, atMs: now0 });
    const created = tx(this.db, () => {
      const pool = this.topo.getPool(poolId);
      if (!pool) return [];
      const current = this.pgs.list(poolId);
      if (current.length !== pool.pgCount) return [];
      let slots = this.config.rebuildConcurrentPgsMax - this.jobs.active().length;
      if (slots <= 0) return [];
      const draining = new Set(this.jobs.drainingIds());
      const all = this.topo.listSds({ poolId });
      const eligible = all.filter((s) => s.state !== 'DOWN' && !draining.has(s.id) && s.capacityBytes > 0 && !this.silentSinceFence(s));
      const target = this.target(pool, current, eligible);
      if (!target) return [];
      const byId = new Map(all.map((s) => [s.id, s]));
      const now = this.clock();
      // Degraded PGs first: they have lost redundancy; moves for balance can wait.
      const order = [...current].sort((a, b) => a.members.length - b.members.length || a.pg - b.pg);
      const epoch = pool.mapEpoch + 1;
      const out: number[] = [];
      for (const e of order) {
        if (slots <= 0) break;
        if (e.joining.length > 0 || this.jobs.activeFor(poolId, e.pg)) continue;
        if (now - this.jobs.lastFailure(poolId, e.pg) < this.config.rebuildRetryDelayMs) continue;
        const want = target[e.pg]!;
        const add = want.filter((m) => !e.members.includes(m));
        if (add.length === 0) continue;
        const source = byId.get(e.members[0]!);
        if (!source || source.state !== 'ACTIVE' || source.controlPort === null) continue;
        // A STALE SDS keeps its PGs (it may only be slow) but gets no new ones until it beats again.
        const newcomer = add.find((id) => byId.get(id)?.state === 'ACTIVE');
        if (newcomer === undefined) continue;
        const leaving = e.members.filter((m) => !want.includes(m));
        const replaces = e.members.length >= pool.replicationFactor ? leaving[0] ?? null : null;
        if (e.members.length >= pool.replicationFactor && replaces === null) continue;
        const kind: RebuildKind = e.members.length < pool.replicationFactor ? 'rebuild' : draining.has(replaces!) ? 'drain' : 'rebalance';
        this.pgs.upsert(poolId, e.pg, e.members, epoch, [newcomer]);
        out.push(this.jobs.insert({ poolId, pg: e.pg, kind, sourceSdsId: source.id, targetSdsId: newcomer, replacesSdsId: replaces, epoch }, now));
        slots--;
      }
      if (out.length > 0) this.topo.setPoolEpoch(poolId, epoch);
      return out.map((id) => this.jobs.get(id)!);
    });
    if (created.length > 0) {
      this.logger?.info({ poolId, jobs: created.map((j) => ({ pg: j.pg, kind: j.kind, from: j.sourceSdsId, to: j.targetSdsId, replaces: j.replacesSdsId })) }, 'rebuild: joining members added');
      this.events.emit('pgMap', { poolId, epoch: created[0]!.epoch, reason: 'recompute' });
    }
    return created;
  }

  /** Fenced as silent and not heard from since: not a rebuild target until its next heartbeat. */
  private silentSinceFence(s: Sds): boolean {
    const fenced = this.fencedAtMs.get(s.id);
    return fenced !== undefined && s.lastHeartbeatMs <= fenced;
  }

  private target(pool: StoragePool, current: PgEntry[], eligible: Sds[]): number[][] | undefined {
    const ids = new Set(eligible.map((s) => s.id));
    try {
      return this.place({
        pgCount: pool.pgCount, replicationFactor: pool.replicationFactor,
        sds: eligible.map((s) => ({ id: s.id, capacityBytes: s.capacityBytes, faultSetId: s.faultSetId })),
        previous: current.map((e) => e.members.filter((m) => ids.has(m))),
      });
    } catch (err) {
      if (isPflexError(err) && err.code === 'PFLEX_ERR_CONFLICT') return undefined; // too few SDSs or fault sets
      throw err;
    }
  }

  /** Starts pending jobs on their primaries, polls running ones, aborts those that cannot finish. */
  private async drive(): Promise<void> {
    const active = this.jobs.active();
    const polled = new Map<number, Promise<Map<number, import('../../dataplane/rebuild-proto.js').SdsRebuildStatus> | undefined>>();
    await Promise.all(active.map(async (job) => {
      const entry = this.pgs.get(job.poolId, job.pg);
      const source = this.topo.getSds(job.sourceSdsId);
      const target = this.topo.getSds(job.targetSdsId);
      if (!entry || !entry.joining.includes(job.targetSdsId)) return this.finishJob(job, 'cancelled', 'the joining member was removed from the PG');
      if (!source || !target || entry.members[0] !== job.sourceSdsId) return this.abort(job, 'the source is no longer the PG primary');
      const ep = endpoint(source);
      if (job.state === 'pending') {
        try {
          await this.control.startRebuild(ep, {
            jobId: job.id, poolId: job.poolId, pg: job.pg, epoch: job.epoch,
            target: { sdsId: target.id, address: target.address, controlPort: target.controlPort ?? 0 },
            bandwidthBytesPerS: this.config.rebuildBandwidthBytesPerS,
          });
          this.jobs.setRunning(job.id, this.clock());
        } catch (err) {
          if (this.clock() - job.createdAtMs > MDM_LIMITS.rebuildStartGiveUpMs) this.abort(job, `could not start: ${(err as Error).message}`);
        }
        return;
      }
      let list = polled.get(source.id);
      if (!list) {
        list = this.control.listRebuilds(ep).then((l) => new Map(l.map((s) => [s.jobId, s])), () => undefined);
        polled.set(source.id, list);
      }
      const statuses = await list;
      if (!statuses) return; // unreachable for now: health decides whether it is DOWN
      const s = statuses.get(job.id);
      if (!s) return this.abort(job, 'the primary does not know the job (restarted?)');
      this.jobs.progress(job.id, s);
      if (s.state === 'failed') this.abort(job, s.error ?? 'copy failed');
    }));
  }

  /** The primary reports the copy complete (with the PG's writes drained): the joining member becomes a member. */
  join(poolId: number, pg: number, sdsId: number, epoch: number, progress?: RebuildProgress): PgEntry {
    const r = tx(this.db, () => {
      const pool = this.topo.getPool(poolId);
      if (!pool) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no storage pool ${poolId}`);
      const entry = this.pgs.get(poolId, pg);
      const job = this.jobs.activeFor(poolId, pg);
      if (!entry || !job || job.targetSdsId !== sdsId || !entry.joining.includes(sdsId)) {
        throw new PflexError('PFLEX_ERR_CONFLICT', `SDS ${sdsId} is not joining PG ${pg} of pool ${poolId}`);
      }
      if (entry.epoch !== epoch) {
        throw new PflexError('PFLEX_ERR_STALE_EPOCH', `PG ${pg} is at epoch ${entry.epoch}, the copy finished at ${epoch}`, { pg, epoch: entry.epoch, members: entry.members });
      }
      const next = pool.mapEpoch + 1;
      let members = [...entry.members, sdsId];
      if (job.replacesSdsId !== null) members = members.filter((m) => m !== job.replacesSdsId);
      const joining = entry.joining.filter((m) => m !== sdsId);
      this.pgs.upsert(poolId, pg, members, next, joining);
      this.topo.setPoolEpoch(poolId, next);
      if (progress) this.jobs.progress(job.id, progress);
      this.jobs.finish(job.id, 'done', null, this.clock());
      return { entry: { pg, members, epoch: next, joining }, replaces: job.replacesSdsId, next };
    });
    this.logger?.info({ poolId, pg, sdsId, members: r.entry.members, epoch: r.next }, 'rebuild: member joined the PG');
    this.events.emit('pgMap', { poolId, epoch: r.next, reason: 'recompute' });
    if (r.replaces !== null) this.release(r.replaces, pg);
    return r.entry;
  }

  /** Marks an SDS for removal: its PGs move away (throttled like rebuild), then it is removed. */
  drain(sdsId: number): { sdsId: number; draining: boolean; pgs: number } {
    return tx(this.db, () => {
      const s = this.topo.getSds(sdsId);
      if (!s) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no SDS ${sdsId}`);
      this.jobs.setDraining(sdsId, true);
      return { sdsId, draining: true, pgs: this.pgs.listInvolving(s.storagePoolId, sdsId).length };
    });
  }

  status(): RebuildStatus {
    const jobs = this.jobs.active();
    const totals = jobs.reduce((a, j) => ({
      chunksDone: a.chunksDone + j.chunksDone, chunksTotal: a.chunksTotal + j.chunksTotal, bytesDone: a.bytesDone + j.bytesDone, bytesTotal: a.bytesTotal + j.bytesTotal,
    }), { chunksDone: 0, chunksTotal: 0, bytesDone: 0, bytesTotal: 0 });
    const windowMs = 60_000;
    const recent = this.jobs.finishedSince(this.clock() - windowMs).reduce((a, j) => a + j.bytesDone, 0);
    const pools = this.topo.listPools().map((p) => {
      const entries = this.pgs.list(p.id);
      return {
        id: p.id, name: p.name, pgCount: p.pgCount, replicationFactor: p.replicationFactor,
        degradedPgs: entries.filter((e) => e.members.length < p.replicationFactor).length,
        rebuildingPgs: entries.filter((e) => e.joining.length > 0).length,
      };
    });
    const draining = this.jobs.drainingIds();
    return {
      active: jobs.length > 0 || draining.length > 0 || pools.some((p) => p.degradedPgs > 0),
      pools, jobs, totals, recentBytesPerS: Math.round(recent / (windowMs / 1000)), draining,
      limits: { bandwidthBytesPerS: this.config.rebuildBandwidthBytesPerS, concurrentPgsMax: this.config.rebuildConcurrentPgsMax },
    };
  }

  history(limit: number): RebuildJob[] {
    return this.jobs.recent(limit);
  }

  /** A failed copy: the joining member leaves (new epoch) and the PG is planned again after the retry delay. */
  private abort(job: RebuildJob, error: string): void {
    const r = tx(this.db, () => {
      const current = this.jobs.get(job.id);
      if (!current || (current.state !== 'pending' && current.state !== 'running')) return undefined;
      this.jobs.finish(job.id, 'failed', error, this.clock());
      const pool = this.topo.getPool(job.poolId);
      const entry = this.pgs.get(job.poolId, job.pg);
      if (!pool || !entry || !entry.joining.includes(job.targetSdsId)) return undefined;
      const next = pool.mapEpoch + 1;
      this.pgs.upsert(job.poolId, job.pg, entry.members, next, entry.joining.filter((m) => m !== job.targetSdsId));
      this.topo.setPoolEpoch(job.poolId, next);
      return next;
    });
    this.logger?.warn({ poolId: job.poolId, pg: job.pg, target: job.targetSdsId, error }, 'rebuild: copy failed; will retry');
    if (r !== undefined) this.events.emit('pgMap', { poolId: job.poolId, epoch: r, reason: 'fence' });
  }

  private finishJob(job: RebuildJob, state: 'cancelled' | 'failed', error: string): void {
    tx(this.db, () => this.jobs.finish(job.id, state, error, this.clock()));
  }

  /** Tells a former member to drop its copy of a PG (it checks its own map first; on failure it drops it when it next reconciles). */
  private release(sdsId: number, pg: number): void {
    const s = this.topo.getSds(sdsId);
    if (!s || s.controlPort === null) return;
    this.control.releasePg(endpoint(s), pg).catch((err: unknown) => {
      this.logger?.info({ sdsId, pg, err: (err as Error).message }, 'rebuild: former member not told to drop its copy (it reconciles on its own)');
    });
  }

  /** Draining SDSs that hold nothing any more are removed. */
  private finishDrains(): void {
    for (const id of this.jobs.drainingIds()) {
      const s = this.topo.getSds(id);
      if (!s) continue;
      if (this.pgs.listInvolving(s.storagePoolId, id).length > 0) continue;
      try {
        this.topology.removeSds(id);
        this.logger?.info({ sdsId: id, name: s.name }, 'drained SDS removed');
      } catch (err) {
        this.logger?.warn({ sdsId: id, err: (err as Error).message }, 'drained SDS could not be removed yet');
      }
    }
  }

  /** One open alert per pool while PGs are degraded; resolved when every PG is whole. */
  private updateAlerts(): void {
    for (const p of this.status().pools) {
      const key = degradedAlertKey(p.id);
      if (p.degradedPgs === 0) {
        this.alerts.resolveKey(key);
        continue;
      }
      this.alerts.raise({
        key, severity: 'ERROR', category: 'rebuild', source: `pool:${p.name}`,
        message: `storage pool ${p.name}: ${p.degradedPgs} of ${p.pgCount} PGs have fewer than ${p.replicationFactor} copies (rebuilding ${p.rebuildingPgs})`,
      });
    }
  }
}

function endpoint(s: Sds): ControlEndpoint {
  return { address: s.address, controlPort: s.controlPort ?? 0 };
}

function sameList(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
