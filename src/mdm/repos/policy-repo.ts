import { Repo } from '../db.js';

export interface SnapshotPolicy {
  id: number; name: string; volumeId: number; intervalMs: number; retain: number;
  lastRunMs: number | null; lastError: string | null; createdAtMs: number;
}
interface PolicyRow {
  id: number; name: string; volume_id: number; interval_ms: number; retain: number;
  last_run_ms: number | null; last_error: string | null; created_at_ms: number;
}
const policy = (r: PolicyRow): SnapshotPolicy => ({
  id: r.id, name: r.name, volumeId: r.volume_id, intervalMs: r.interval_ms, retain: r.retain,
  lastRunMs: r.last_run_ms, lastError: r.last_error, createdAtMs: r.created_at_ms,
});

/** All SQL of snapshot policies. */
export class PolicyRepo extends Repo {
  list(): SnapshotPolicy[] {
    return this.stmt<[], PolicyRow>('SELECT * FROM snapshot_policies ORDER BY id').all().map(policy);
  }
  get(id: number): SnapshotPolicy | undefined {
    const r = this.stmt<[number], PolicyRow>('SELECT * FROM snapshot_policies WHERE id = ?').get(id);
    return r && policy(r);
  }
  getByName(name: string): SnapshotPolicy | undefined {
    const r = this.stmt<[string], PolicyRow>('SELECT * FROM snapshot_policies WHERE name = ?').get(name);
    return r && policy(r);
  }
  insert(p: { name: string; volumeId: number; intervalMs: number; retain: number }, nowMs: number): number {
    return Number(this.stmt('INSERT INTO snapshot_policies (name, volume_id, interval_ms, retain, created_at_ms) VALUES (?, ?, ?, ?, ?)')
      .run(p.name, p.volumeId, p.intervalMs, p.retain, nowMs).lastInsertRowid);
  }
  update(id: number, p: { intervalMs: number; retain: number }): void {
    this.stmt('UPDATE snapshot_policies SET interval_ms = ?, retain = ? WHERE id = ?').run(p.intervalMs, p.retain, id);
  }
  delete(id: number): void {
    this.stmt('DELETE FROM snapshot_policies WHERE id = ?').run(id);
  }
  recordRun(id: number, atMs: number, error: string | null): void {
    this.stmt('UPDATE snapshot_policies SET last_run_ms = ?, last_error = ? WHERE id = ?').run(atMs, error, id);
  }
}
