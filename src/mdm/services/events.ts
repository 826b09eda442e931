import { EventEmitter } from 'node:events';
import type { ComponentState } from '../repos/topology-repo.js';

export type ComponentKind = 'sds' | 'sdc';

/** A component changed health state (alerts use it now, rebuild later). */
export interface TransitionEvent {
  kind: ComponentKind;
  id: number;
  name: string;
  from: ComponentState;
  to: ComponentState;
  atMs: number;
}

/** Something changed the capacity figures of a pool. */
export interface PoolUsageEvent { poolId: number }

/** A PG map of a pool changed (new epoch). */
export interface PgMapEvent {
  poolId: number;
  epoch: number;
  reason: 'recompute' | 'fence';
  /** The acting-set member a peer reported silent and the MDM took out (POST .../fence). */
  fencedSdsId?: number;
}

interface EventMap {
  transition: [TransitionEvent];
  poolUsage: [PoolUsageEvent];
  pgMap: [PgMapEvent];
}

/** Typed event bus of the MDM; events are emitted after their transaction committed. */
export class MdmEvents extends EventEmitter<EventMap> {}

export type Clock = () => number;
