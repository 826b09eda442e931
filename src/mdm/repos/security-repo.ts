import { Repo } from '../db.js';

export type UserRole = 'admin' | 'monitor';
export interface User { id: number; name: string; role: UserRole; createdAtMs: number }
/** Consecutive failed logins of a user name and the lock they caused. */
export interface LoginFailures { failures: number; lastFailureAtMs: number; lockedUntilMs: number | null }
export interface UserWithHash extends User { passwordHash: string }

export interface AuditEntry {
  id: number; atMs: number; actor: string; role: string | null; action: string; target: string;
  status: number; result: 'success' | 'failure'; errorCode: string | null; ip: string | null;
}
export interface AuditFilter { actor?: string; action?: string; result?: 'success' | 'failure'; sinceMs?: number; untilMs?: number; limit: number }

interface UserRow { id: number; name: string; role: UserRole; password_hash: string; created_at_ms: number }
interface AuditRow {
  id: number; at_ms: number; actor: string; role: string | null; action: string; target: string; status: number;
  result: 'success' | 'failure'; error_code: string | null; ip: string | null;
}

/** SQL of users, the audit log and the small key/value meta table. */
export class SecurityRepo extends Repo {
  listUsers(): User[] {
    return this.stmt<[], UserRow>('SELECT * FROM users ORDER BY id').all()
      .map((r) => ({ id: r.id, name: r.name, role: r.role, createdAtMs: r.created_at_ms }));
  }
  getUser(id: number): User | undefined {
    return this.listUsers().find((u) => u.id === id);
  }
  getUserByName(name: string): UserWithHash | undefined {
    const r = this.stmt<[string], UserRow>('SELECT * FROM users WHERE name = ?').get(name);
    return r && { id: r.id, name: r.name, role: r.role, passwordHash: r.password_hash, createdAtMs: r.created_at_ms };
  }
  insertUser(name: string, role: UserRole, passwordHash: string, nowMs: number): number {
    return Number(this.stmt('INSERT INTO users (name, role, password_hash, created_at_ms) VALUES (?, ?, ?, ?)')
      .run(name, role, passwordHash, nowMs).lastInsertRowid);
  }
  setPassword(id: number, passwordHash: string): void {
    this.stmt('UPDATE users SET password_hash = ? WHERE id = ?').run(passwordHash, id);
  }
  deleteUser(id: number): void {
    this.stmt('DELETE FROM users WHERE id = ?').run(id);
  }
  countAdmins(): number {
    return this.stmt<[], { n: number }>("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'").get()?.n ?? 0;
  }

  insertAudit(e: Omit<AuditEntry, 'id'>): void {
    this.stmt(`INSERT INTO audit_log (at_ms, actor, role, action, target, status, result, error_code, ip)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(e.atMs, e.actor, e.role, e.action, e.target, e.status, e.result, e.errorCode, e.ip);
  }
  queryAudit(f: AuditFilter): AuditEntry[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (f.actor !== undefined) { where.push('actor = ?'); args.push(f.actor); }
    if (f.action !== undefined) { where.push('action LIKE ?'); args.push(`%${f.action}%`); }
    if (f.result !== undefined) { where.push('result = ?'); args.push(f.result); }
    if (f.sinceMs !== undefined) { where.push('at_ms >= ?'); args.push(f.sinceMs); }
    if (f.untilMs !== undefined) { where.push('at_ms <= ?'); args.push(f.untilMs); }
    const sql = `SELECT * FROM audit_log${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    return this.stmt<unknown[], AuditRow>(sql).all(...args, f.limit).map((r) => ({
      id: r.id, atMs: r.at_ms, actor: r.actor, role: r.role, action: r.action, target: r.target, status: r.status,
      result: r.result, errorCode: r.error_code, ip: r.ip,
    }));
  }

  getLoginFailures(name: string): LoginFailures | undefined {
    const r = this.stmt<[string], { failures: number; last_failure_at_ms: number; locked_until_ms: number | null }>(
      'SELECT failures, last_failure_at_ms, locked_until_ms FROM login_failures WHERE user_name = ?').get(name);
    return r && { failures: r.failures, lastFailureAtMs: r.last_failure_at_ms, lockedUntilMs: r.locked_until_ms };
  }
  setLoginFailures(name: string, f: LoginFailures): void {
    this.stmt(`INSERT INTO login_failures (user_name, failures, last_failure_at_ms, locked_until_ms) VALUES (?, ?, ?, ?)
      ON CONFLICT (user_name) DO UPDATE SET failures = excluded.failures, last_failure_at_ms = excluded.last_failure_at_ms,
      locked_until_ms = excluded.locked_until_ms`).run(name, f.failures, f.lastFailureAtMs, f.lockedUntilMs);
  }
  /** Forgets the failures of a name; true when it was locked at nowMs. */
  clearLoginFailures(name: string, nowMs: number): boolean {
    const f = this.getLoginFailures(name);
    this.stmt('DELETE FROM login_failures WHERE user_name = ?').run(name);
    return f !== undefined && f.lockedUntilMs !== null && f.lockedUntilMs > nowMs;
  }
  /** Rows that no longer matter (unlocked and last failed before beforeMs): the table stays small. */
  pruneLoginFailures(beforeMs: number, nowMs: number): void {
    this.stmt('DELETE FROM login_failures WHERE last_failure_at_ms < ? AND (locked_until_ms IS NULL OR locked_until_ms <= ?)').run(beforeMs, nowMs);
  }

  getMeta(key: string): string | undefined {
    return this.stmt<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get(key)?.value;
  }
  setMeta(key: string, value: string): void {
    this.stmt('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }
}
