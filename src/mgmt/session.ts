/**
 * The session is the MDM's own bearer token, sealed (AES-256-GCM) into an
 * HttpOnly, SameSite=Strict cookie: MGMT keeps no session state, the MDM
 * stays the one place that checks users and roles, and the browser's
 * script never sees the token. The key lives in memory (or comes from a
 * file): restarting MGMT with a new key logs everyone out.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { MGMT_LIMITS, SESSION_COOKIE } from './limits.js';

export interface Session {
  /** The MDM bearer token of the user. */
  token: string;
  user: string;
  role: string;
  expiresAtMs: number;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

export class SessionCodec {
  constructor(private readonly key: Buffer = randomBytes(32), private readonly clock: () => number = Date.now) {
    if (key.length !== 32) throw new Error('the session key must be 32 bytes');
  }

  seal(s: Session): string {
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([c.update(JSON.stringify(s), 'utf8'), c.final()]);
    return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url');
  }

  /** The session in a cookie value, or undefined when forged, damaged or expired. */
  open(value: string | undefined): Session | undefined {
    if (!value) return undefined;
    try {
      const raw = Buffer.from(value, 'base64url');
      if (raw.length <= IV_BYTES + TAG_BYTES) return undefined;
      const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES));
      d.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      const text = Buffer.concat([d.update(raw.subarray(IV_BYTES + TAG_BYTES)), d.final()]).toString('utf8');
      const s = JSON.parse(text) as Session;
      if (typeof s.token !== 'string' || typeof s.expiresAtMs !== 'number' || s.expiresAtMs <= this.clock()) return undefined;
      return s;
    } catch {
      return undefined;
    }
  }

  /** Set-Cookie value carrying the session (secure: only over HTTPS). */
  cookie(s: Session, secure: boolean): string {
    const maxAgeS = Math.max(0, Math.floor(Math.min(s.expiresAtMs - this.clock(), MGMT_LIMITS.sessionTtlMsMax) / 1000));
    return `${SESSION_COOKIE}=${this.seal(s)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure ? '; Secure' : ''}`;
  }
}

export function clearCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}

/** The value of one cookie in a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
