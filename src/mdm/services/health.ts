import { PflexError } from '../../shared/errors.js';
import { staleAfterMs, type MdmConfig } from '../config.js';
import { tx, type Db } from '../db.js';
import type { Severity } from '../repos/alert-repo.js';
import type { ComponentState, Sdc, Sds, TopologyRepo } from '../repos/topology-repo.js';
import type { AlertService } from './alerts.js';
import type { IoBeat, StatsService, VolumeIoBeat } from './stats.js';
import type { Clock, ComponentKind, MdmEvents, TransitionEvent } from './events.js';
import type { TopologyService } from './topology.js';

export interface StateCounts { total: number; active: number; stale: number; down: number }
export interface HealthSummary {
  status: 'OK' | 'DEGRADED' | 'ERROR';
  nowMs: number;
  sds: StateCounts;
  sdcs: StateCounts;
  storagePools: Array<{ id: number; name: string; utilizationPct: number; pgMapReady: boolean; degradedPgs: number }>;
  openAlerts: Record<Severity, number>;
}

/**
 * Heartbeats and the ACTIVE / STALE / DOWN state machine. States are a
 * function of the time since the last beat, evaluated by tick() with the
 * injected clock; a transition is persisted and then emitted.
 */
export class HealthService {
  /**
   * Nobody could beat while the MDM was down: silence is counted from the
   * later of the last beat and the MDM start, so a restart does not declare
   * the cluster DOWN (lastHeartbeatMs itself is kept as it was).
   */
  private readonly startedAtMs: number;

  constructor(
    private readonly db: Db,
    private readonly repo: TopologyRepo,
    private readonly topology: TopologyService,
    private readonly alerts: AlertService,
    private readonly config: MdmConfig,
    private readonly clock: Clock,
    private readonly events: MdmEvents,
    private readonly stats: StatsService,
  ) {
    this.startedAtMs = clock();
  }

  stateFor(sinceBeatMs: number): ComponentState {
    if (sinceBeatMs >= this.config.downAfterMs) return 'DOWN';
    if (sinceBeatMs >= staleAfterMs(this.config)) return 'STALE';
    return 'ACTIVE';
  }

  /**
   * The common beat (ACTIVE, figures unchanged) only notes the time in
   * memory (written in batch by tick()); a state change or new capacity
   * figures are written at once, since alerts and placement read them.
   * `known` is the row the caller already read (the route does, to check who beats).
   */
  sdsHeartbeat(id: number, beat: { usedBytes: number; capacityBytes?: number | undefined; io?: IoBeat | undefined }, known?: Sds): { state: ComponentState; heartbeatIntervalMs: number } {
    const current = known ?? this.repo.getSds(id);
    if (!current) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no SDS ${id}`);
    this.stats.recordSds(id, beat.io);
    const same = current.usedBytes === beat.usedBytes && (beat.capacityBytes === undefined || beat.capacityBytes === current.capacityBytes);
    if (current.state === 'ACTIVE' && same) {
      this.repo.noteSdsBeat(id, this.clock());
      return { state: 'ACTIVE', heartbeatIntervalMs: this.config.heartbeatIntervalMs };
    }
    const { transition, poolId, usageChanged } = tx(this.db, () => {
      const s = this.repo.getSds(id);
      if (!s) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no SDS ${id}`);
      const now = this.clock();
      this.repo.sdsHeartbeat(id, now, beat.usedBytes, beat.capacityBytes);
      const usageChanged = s.usedBytes !== beat.usedBytes || (beat.capacityBytes !== undefined && beat.capacityBytes !== s.capacityBytes);
      if (s.state === 'ACTIVE') return { transition: undefined, poolId: s.storagePoolId, usageChanged };
      this.repo.setSdsState(id, 'ACTIVE');
      const transition: TransitionEvent = { kind: 'sds', id, name: s.name, from: s.state, to: 'ACTIVE', atMs: now };
      return { transition, poolId: s.storagePoolId, usageChanged };
    });
    if (transition) this.events.emit('transition', transition);
    // Capacity alerts are re-evaluated only when the figures moved.
    if (usageChanged) this.events.emit('poolUsage', { poolId });
    return { state: 'ACTIVE', heartbeatIntervalMs: this.config.heartbeatIntervalMs };
  }

  sdcHeartbeat(id: number, known?: Sdc, volumes?: readonly VolumeIoBeat[]): { state: ComponentState; heartbeatIntervalMs: number } {
    const current = known ?? this.repo.getSdc(id);
    if (!current) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no SDC ${id}`);
    this.stats.recordSdc(id, volumes);
    if (current.state === 'ACTIVE') {
      this.repo.noteSdcBeat(id, this.clock());
      return { state: 'ACTIVE', heartbeatIntervalMs: this.config.heartbeatIntervalMs };
    }
    const transition = tx(this.db, () => {
      const s = this.repo.getSdc(id);
      if (!s) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no SDC ${id}`);
      const now = this.clock();
      this.repo.sdcHeartbeat(id, now);
      if (s.state === 'ACTIVE') return undefined;
      this.repo.setSdcState(id, 'ACTIVE');
      return { kind: 'sdc', id, name: s.name, from: s.state, to: 'ACTIVE', atMs: now } satisfies TransitionEvent;
    });
    if (transition) this.events.emit('transition', transition);
    return { state: 'ACTIVE', heartbeatIntervalMs: this.config.heartbeatIntervalMs };
  }

  /** Writes the beat times kept in memory (each tick, and when the MDM closes). */
  flushBeats(): void {
    tx(this.db, () => this.repo.flushBeats());
  }

  /** Re-evaluates every component against the clock; returns (and emits) the transitions. */
  tick(): TransitionEvent[] {
    const transitions = tx(this.db, () => {
      this.repo.flushBeats();
      const now = this.clock();
      const out: TransitionEvent[] = [];
      const check = (kind: ComponentKind, c: { id: number; name: string; state: ComponentState; lastHeartbeatMs: number }): void => {
        const to = this.stateFor(now - Math.max(c.lastHeartbeatMs, this.startedAtMs));
        // Only the heartbeat brings a component back to ACTIVE.
        if (to === c.state || to === 'ACTIVE') return;
        if (kind === 'sds') this.repo.setSdsState(c.id, to); else this.repo.setSdcState(c.id, to);
        out.push({ kind, id: c.id, name: c.name, from: c.state, to, atMs: now });
      };
      // Only components silent for at least the STALE threshold can move (a steady cluster reads no rows).
      const silentSinceMs = now - staleAfterMs(this.config);
      if (this.startedAtMs <= silentSinceMs) {
        for (const s of this.repo.listSilentSds(silentSinceMs)) check('sds', s);
        for (const s of this.repo.listSilentSdcs(silentSinceMs)) check('sdc', s);
      }
      return out;
    });
    for (const t of transitions) this.events.emit('transition', t);
    return transitions;
  }

  summary(): HealthSummary {
    const count = (list: Array<{ state: ComponentState }>): StateCounts => ({
      total: list.length,
      active: list.filter((c) => c.state === 'ACTIVE').length,
      stale: list.filter((c) => c.state === 'STALE').length,
      down: list.filter((c) => c.state === 'DOWN').length,
    });
    const sds = count(this.repo.listSds());
    const sdcs = count(this.repo.listSdcs());
    const storagePools = this.topology.listPools().map((p) => ({
      id: p.id, name: p.name, utilizationPct: p.capacity.utilizationPct, pgMapReady: p.pgMapReady, degradedPgs: p.degradedPgs,
    }));
    const openAlerts = this.alerts.openCounts();
    let status: HealthSummary['status'] = 'OK';
    if (sds.stale + sds.down + sdcs.stale + sdcs.down > 0 || storagePools.some((p) => p.degradedPgs > 0) || openAlerts.WARNING > 0) status = 'DEGRADED';
    if (openAlerts.ERROR + openAlerts.CRITICAL > 0) status = 'ERROR';
    return { status, nowMs: this.clock(), sds, sdcs, storagePools, openAlerts };
  }
}
