import type { AuditEntry, AuditFilter, SecurityRepo } from '../repos/security-repo.js';

/** The audit log: every mutation, who, what, on which target, when and how it ended. */
export class AuditService {
  constructor(private readonly repo: SecurityRepo) {}

  record(e: Omit<AuditEntry, 'id'>): void {
    this.repo.insertAudit(e);
  }

  query(f: AuditFilter): AuditEntry[] {
    return this.repo.queryAudit(f);
  }
}
