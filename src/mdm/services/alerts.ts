import { PflexError } from '../../shared/errors.js';
import { tx, type Db } from '../db.js';
import type { Alert, AlertFilter, AlertRepo, Severity } from '../repos/alert-repo.js';
import type { Clock } from './events.js';

export interface RaiseAlert {
  /** Alerts with a key are deduplicated: raising it again updates the open one. */
  key?: string;
  severity: Severity;
  category: string;
  source: string;
  message: string;
}

/** Raise, update, resolve and query alerts. */
export class AlertService {
  constructor(private readonly db: Db, private readonly repo: AlertRepo, private readonly clock: Clock) {}

  raise(a: RaiseAlert): Alert {
    return tx(this.db, () => {
      const now = this.clock();
      const open = a.key === undefined ? undefined : this.repo.openByKey(a.key);
      if (open) {
        if (open.severity !== a.severity || open.message !== a.message) this.repo.update(open.id, a.severity, a.message, now);
        return this.repo.get(open.id)!;
      }
      const id = this.repo.insert({ dedupKey: a.key ?? null, severity: a.severity, category: a.category, source: a.source, message: a.message }, now);
      return this.repo.get(id)!;
    });
  }

  /** Auto-resolution on recovery: resolves the open alert with this key, if any. */
  resolveKey(key: string, by = 'auto'): Alert | undefined {
    return tx(this.db, () => {
      const open = this.repo.openByKey(key);
      if (!open) return undefined;
      this.repo.resolve(open.id, by, this.clock());
      return this.repo.get(open.id);
    });
  }

  resolve(id: number, by: string): Alert {
    return tx(this.db, () => {
      const a = this.repo.get(id);
      if (!a) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no alert ${id}`);
      if (a.state === 'resolved') throw new PflexError('PFLEX_ERR_CONFLICT', `alert ${id} is already resolved`);
      this.repo.resolve(id, by, this.clock());
      return this.repo.get(id)!;
    });
  }

  get(id: number): Alert {
    const a = this.repo.get(id);
    if (!a) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no alert ${id}`);
    return a;
  }

  list(filter: AlertFilter): Alert[] {
    return this.repo.query(filter);
  }

  openCounts(): Record<Severity, number> {
    return this.repo.countOpenBySeverity();
  }
}
