import { Repo } from '../db.js';

export type UserRole = 'admin' | 'monitor';
export interface User { id: number; name: string; role: UserRole; createdAtMs: number }
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

  getMeta(key: string): string | undefined {
    return this.stmt<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get(key)?.value;
  }
  setMeta(key: string, value: string): void {
    this.stmt('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }
}
