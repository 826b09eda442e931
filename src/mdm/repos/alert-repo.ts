import { Repo } from '../db.js';

export type Severity = 'INFO' | 'WARNING' | 'ERROR' | 'CRITICAL';
export const SEVERITIES: readonly Severity[] = ['INFO', 'WARNING', 'ERROR', 'CRITICAL'];

export interface Alert {
  id: number; dedupKey: string | null; severity: Severity; category: string; source: string; message: string;
  state: 'open' | 'resolved'; raisedAtMs: number; updatedAtMs: number; resolvedAtMs: number | null; resolvedBy: string | null;
}
export interface AlertFilter { severity?: Severity; minSeverity?: Severity; category?: string; source?: string; state?: 'open' | 'resolved'; limit: number }

interface AlertRow {
  id: number; dedup_key: string | null; severity: Severity; category: string; source: string; message: string; state: 'open' | 'resolved';
  raised_at_ms: number; updated_at_ms: number; resolved_at_ms: number | null; resolved_by: string | null;
}
const alert = (r: AlertRow): Alert => ({
  id: r.id, dedupKey: r.dedup_key, severity: r.severity, category: r.category, source: r.source, message: r.message, state: r.state,
  raisedAtMs: r.raised_at_ms, updatedAtMs: r.updated_at_ms, resolvedAtMs: r.resolved_at_ms, resolvedBy: r.resolved_by,
});

/** SQL of alerts (open and history). */
export class AlertRepo extends Repo {
  get(id: number): Alert | undefined {
    const r = this.stmt<[number], AlertRow>('SELECT * FROM alerts WHERE id = ?').get(id);
    return r && alert(r);
  }
  openByKey(key: string): Alert | undefined {
    const r = this.stmt<[string], AlertRow>("SELECT * FROM alerts WHERE dedup_key = ? AND state = 'open'").get(key);
    return r && alert(r);
  }
  openByKeyPrefix(prefix: string): Alert[] {
    return this.stmt<[string], AlertRow>("SELECT * FROM alerts WHERE state = 'open' AND dedup_key LIKE ? ORDER BY id")
      .all(`${prefix.replace(/[%_]/g, '')}%`).map(alert);
  }
  insert(a: { dedupKey: string | null; severity: Severity; category: string; source: string; message: string }, nowMs: number): number {
    return Number(this.stmt(`INSERT INTO alerts (dedup_key, severity, category, source, message, state, raised_at_ms, updated_at_ms)
      VALUES (?, ?, ?, ?, ?, 'open', ?, ?)`).run(a.dedupKey, a.severity, a.category, a.source, a.message, nowMs, nowMs).lastInsertRowid);
  }
  update(id: number, severity: Severity, message: string, nowMs: number): void {
    this.stmt('UPDATE alerts SET severity = ?, message = ?, updated_at_ms = ? WHERE id = ?').run(severity, message, nowMs, id);
  }
  resolve(id: number, by: string, nowMs: number): void {
    this.stmt("UPDATE alerts SET state = 'resolved', resolved_at_ms = ?, resolved_by = ?, updated_at_ms = ? WHERE id = ?").run(nowMs, by, nowMs, id);
  }
  query(f: AlertFilter): Alert[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.severity !== undefined) { where.push('severity = ?'); args.push(f.severity); }
    if (f.minSeverity !== undefined) {
      const allowed = ['INFO', 'WARNING', 'ERROR', 'CRITICAL'].slice(['INFO', 'WARNING', 'ERROR', 'CRITICAL'].indexOf(f.minSeverity));
      where.push(`severity IN (${allowed.map(() => '?').join(', ')})`);
      args.push(...allowed);
    }
    if (f.category !== undefined) { where.push('category = ?'); args.push(f.category); }
    if (f.source !== undefined) { where.push('source = ?'); args.push(f.source); }
    if (f.state !== undefined) { where.push('state = ?'); args.push(f.state); }
    const sql = `SELECT * FROM alerts${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    return this.stmt<unknown[], AlertRow>(sql).all(...args, f.limit).map(alert);
  }
  countOpenBySeverity(): Record<Severity, number> {
    const counts: Record<Severity, number> = { INFO: 0, WARNING: 0, ERROR: 0, CRITICAL: 0 };
    for (const r of this.stmt<[], { severity: Severity; n: number }>(
      "SELECT severity, COUNT(*) AS n FROM alerts WHERE state = 'open' GROUP BY severity").all()) counts[r.severity] = r.n;
    return counts;
  }
}
