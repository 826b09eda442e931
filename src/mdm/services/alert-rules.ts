import type { Severity } from '../repos/alert-repo.js';
import type { AlertService } from './alerts.js';
import type { MdmEvents, TransitionEvent } from './events.js';
import type { TopologyService } from './topology.js';

/** Alert keys are stable, so a condition raises one alert however often it is seen. */
export const componentAlertKey = (kind: string, id: number): string => `component-state:${kind}:${id}`;
export const capacityAlertKey = (poolId: number): string => `pool-capacity:${poolId}`;

/**
 * The automatic alerts: a component STALE (WARNING) or DOWN (ERROR) until it
 * beats again, and a pool above its capacity thresholds (high: WARNING,
 * critical: CRITICAL) until it falls below.
 */
export function installAlertRules(events: MdmEvents, alerts: AlertService, topology: TopologyService): void {
  events.on('transition', (t: TransitionEvent) => {
    const key = componentAlertKey(t.kind, t.id);
    const source = `${t.kind}:${t.name}`;
    if (t.to === 'ACTIVE') {
      alerts.resolveKey(key);
      return;
    }
    const severity: Severity = t.to === 'DOWN' ? 'ERROR' : 'WARNING';
    alerts.raise({ key, severity, category: 'component', source, message: `${t.kind.toUpperCase()} ${t.name} (id ${t.id}) is ${t.to}` });
  });
  events.on('poolUsage', ({ poolId }) => {
    const pool = topology.findPool(poolId);
    if (!pool) {
      alerts.resolveKey(capacityAlertKey(poolId));
      return;
    }
    const pct = topology.capacity(pool).utilizationPct;
    const key = capacityAlertKey(poolId);
    const source = `pool:${pool.name}`;
    if (pct >= pool.capacityCriticalPct) {
      alerts.raise({ key, severity: 'CRITICAL', category: 'capacity', source, message: `storage pool ${pool.name} is ${pct.toFixed(1)}% full (critical threshold ${pool.capacityCriticalPct}%)` });
    } else if (pct >= pool.capacityHighPct) {
      alerts.raise({ key, severity: 'WARNING', category: 'capacity', source, message: `storage pool ${pool.name} is ${pct.toFixed(1)}% full (high threshold ${pool.capacityHighPct}%)` });
    } else {
      alerts.resolveKey(key);
    }
  });
}
