import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { checkComponentProof, type ComponentKind } from '../../shared/component-auth.js';
import { PflexError } from '../../shared/errors.js';
import { MDM_LIMITS, type MdmConfig } from '../config.js';
import { tx, type Db } from '../db.js';
import type { SecurityRepo, User, UserRole } from '../repos/security-repo.js';
import type { Clock } from './events.js';

export type Role = UserRole | 'component';

/** What a bearer token says about its holder. */
export interface Claims {
  sub: string;
  role: Role;
  /** Components only. */
  kind?: ComponentKind;
  /** Users only. */
  uid?: number;
}

export type SignFn = (claims: Claims, ttlS: number) => string;

export interface IssuedToken { token: string; expiresAtMs: number; role: Role }

const SCRYPT = { N: 16384, r: 8, p: 1, keyBytes: 32, saltBytes: 16 } as const;

function scryptAsync(password: string, salt: Buffer, keyLen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, keyLen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

/** scrypt$N$r$p$salt$hash (base64). */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SCRYPT.saltBytes);
  const key = await scryptAsync(password, salt, SCRYPT.keyBytes, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  const salt = Buffer.from(parts[4]!, 'base64');
  const want = Buffer.from(parts[5]!, 'base64');
  const got = await scryptAsync(password, salt, want.length, { N, r, p });
  return timingSafeEqual(got, want);
}

// Verified against when the user does not exist, so that timing does not tell names apart.
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

/** Users, passwords, logins and component authentication. */
export class AuthService {
  constructor(
    private readonly db: Db,
    private readonly repo: SecurityRepo,
    private readonly clusterKey: Buffer,
    private readonly config: MdmConfig,
    private readonly clock: Clock,
    private readonly sign: SignFn,
  ) {}

  /**
   * Password login. loginFailuresMax failures in a row lock the user name
   * for loginLockoutMs (persisted, audited). Unknown names are counted and
   * locked alike, so neither the answer nor the lockout tells whether a user exists.
   */
  async login(name: string, password: string, ip: string | null = null): Promise<IssuedToken> {
    this.refuseIfLocked(name);
    const user = this.repo.getUserByName(name);
    const ok = await verifyPassword(password, user?.passwordHash ?? DUMMY_HASH);
    if (!user || !ok) {
      this.loginFailed(name, ip);
      throw new PflexError('PFLEX_ERR_UNAUTHENTICATED', 'wrong user name or password');
    }
    // A lock may have started while the password was being checked.
    this.refuseIfLocked(name);
    if (this.repo.getLoginFailures(name)) tx(this.db, () => this.repo.clearLoginFailures(name, this.clock()));
    return this.issue({ sub: user.name, role: user.role, uid: user.id }, this.config.userTokenTtlS);
  }

  /** Lifts the lock (and forgets the failures) of a user; true when it was locked. */
  unlock(id: number): { name: string; wasLocked: boolean } {
    return tx(this.db, () => {
      const u = this.repo.getUser(id);
      if (!u) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no user ${id}`);
      return { name: u.name, wasLocked: this.repo.clearLoginFailures(u.name, this.clock()) };
    });
  }

  /** When the user name is locked, until when (ms since the epoch); else null. */
  lockedUntil(name: string): number | null {
    const f = this.repo.getLoginFailures(name);
    return f?.lockedUntilMs != null && f.lockedUntilMs > this.clock() ? f.lockedUntilMs : null;
  }

  private refuseIfLocked(name: string): void {
    const until = this.lockedUntil(name);
    if (until !== null) {
      throw new PflexError('PFLEX_ERR_LOGIN_LOCKED', `too many failed logins for "${name}": locked until ${new Date(until).toISOString()} (an admin can unlock it: pflex user unlock)`,
        { lockedUntilMs: until });
    }
  }

  private loginFailed(name: string, ip: string | null): void {
    const max = this.config.loginFailuresMax;
    if (max <= 0) return;
    tx(this.db, () => {
      const now = this.clock();
      const lockMs = this.config.loginLockoutMs;
      this.repo.pruneLoginFailures(now - lockMs, now);
      const prev = this.repo.getLoginFailures(name);
      // Failures older than a lockout period, or from before a finished lock, do not count.
      const fresh = prev && now - prev.lastFailureAtMs < lockMs && !(prev.lockedUntilMs !== null && prev.lockedUntilMs <= now);
      const failures = (fresh ? prev.failures : 0) + 1;
      const locks = failures >= max;
      this.repo.setLoginFailures(name, { failures: locks ? 0 : failures, lastFailureAtMs: now, lockedUntilMs: locks ? now + lockMs : null });
      if (locks) {
        this.repo.insertAudit({
          atMs: now, actor: name, role: null, action: 'LOCKOUT', target: `user name "${name}" locked for ${lockMs} ms after ${max} failed logins`,
          status: 429, result: 'failure', errorCode: 'PFLEX_ERR_LOGIN_LOCKED', ip,
        });
      }
    });
  }

  componentLogin(kind: ComponentKind, name: string, tsMs: number, proof: string): IssuedToken {
    if (Math.abs(this.clock() - tsMs) > this.config.componentAuthSkewMs) {
      throw new PflexError('PFLEX_ERR_UNAUTHENTICATED', `proof timestamp is more than ${this.config.componentAuthSkewMs} ms away from the MDM clock`);
    }
    if (!checkComponentProof(this.clusterKey, kind, name, tsMs, proof)) throw new PflexError('PFLEX_ERR_UNAUTHENTICATED', 'bad component proof');
    return this.issue({ sub: name, role: 'component', kind }, this.config.componentTokenTtlS);
  }

  /** A user token stays valid only while its user exists with the same role. */
  checkClaims(claims: Claims): void {
    if (claims.role === 'component') return;
    const user = this.repo.getUserByName(claims.sub);
    if (!user || user.id !== claims.uid || user.role !== claims.role) throw new PflexError('PFLEX_ERR_UNAUTHENTICATED', 'the token\'s user no longer exists or changed role');
  }

  listUsers(): User[] { return this.repo.listUsers(); }

  async createUser(name: string, password: string, role: UserRole): Promise<User> {
    checkPassword(password);
    const hash = await hashPassword(password);
    return tx(this.db, () => {
      if (this.repo.getUserByName(name)) throw new PflexError('PFLEX_ERR_CONFLICT', `user "${name}" already exists`);
      return this.repo.getUser(this.repo.insertUser(name, role, hash, this.clock()))!;
    });
  }

  async setPassword(id: number, password: string): Promise<User> {
    checkPassword(password);
    const hash = await hashPassword(password);
    return tx(this.db, () => {
      const u = this.repo.getUser(id);
      if (!u) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no user ${id}`);
      this.repo.setPassword(id, hash);
      return u;
    });
  }

  deleteUser(id: number): void {
    tx(this.db, () => {
      const u = this.repo.getUser(id);
      if (!u) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no user ${id}`);
      if (u.role === 'admin' && this.repo.countAdmins() === 1) throw new PflexError('PFLEX_ERR_CONFLICT', 'cannot delete the last admin');
      this.repo.deleteUser(id);
    });
  }

  private issue(claims: Claims, ttlS: number): IssuedToken {
    return { token: this.sign(claims, ttlS), expiresAtMs: Date.now() + ttlS * 1000, role: claims.role };
  }
}

function checkPassword(password: string): void {
  if (password.length < MDM_LIMITS.passwordLengthMin) {
    throw new PflexError('PFLEX_ERR_BAD_REQUEST', `a password has at least ${MDM_LIMITS.passwordLengthMin} characters`);
  }
}
