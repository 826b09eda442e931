/**
 * Who may call the HTTP listeners of SDS and SDC (control and management).
 * Two credentials are accepted, both rooted in the cluster key:
 *
 * - the component proof (`authorization: PflexComponent ...`, control-auth.ts):
 *   whoever holds the cluster key (the MDM, SDS peers, operators' tools on a
 *   cluster host); allowed everywhere;
 * - an MDM-issued bearer token (`authorization: Bearer <JWT>`, HS256 with
 *   deriveKey(clusterKey, 'jwt')), verified here without asking the MDM:
 *   any role may read a management listener; only `admin` may call a control
 *   listener. These components have no user table, so a user's token stays
 *   good here until it expires (userTokenTtlS), even after the user is
 *   deleted or re-roled at the MDM.
 */
import { createVerifier } from 'fast-jwt';
import { checkControlAuthorization } from './control-auth.js';
import { deriveKey } from './keys.js';

/** `read`: management listeners (health, metrics); `control`: commands that change or move data. */
export type ListenerAccess = 'read' | 'control';

export type ListenerCaller =
  | { via: 'component'; name: string }
  | { via: 'token'; sub: string; role: string };

interface TokenClaims { sub?: unknown; role?: unknown }

export class ListenerAuth {
  private readonly verifyJwt: (token: string) => TokenClaims;

  constructor(private readonly clusterKey: Buffer) {
    this.verifyJwt = createVerifier({ key: deriveKey(clusterKey, 'jwt'), algorithms: ['HS256'], cache: 1000 }) as (token: string) => TokenClaims;
  }

  /** The caller the header proves, or undefined (no header, bad proof, bad or expired token). */
  authenticate(header: string | undefined, nowMs = Date.now()): ListenerCaller | undefined {
    if (header === undefined) return undefined;
    const component = checkControlAuthorization(this.clusterKey, header, nowMs);
    if (component !== undefined) return { via: 'component', name: component };
    const m = /^Bearer ([A-Za-z0-9_.-]{1,4096})$/.exec(header);
    if (!m) return undefined;
    let claims: TokenClaims;
    try {
      claims = this.verifyJwt(m[1]!);
    } catch {
      return undefined;
    }
    if (typeof claims.sub !== 'string' || typeof claims.role !== 'string') return undefined;
    return { via: 'token', sub: claims.sub, role: claims.role };
  }

  /** Whether an authenticated caller may use a listener of this access level. */
  static allows(caller: ListenerCaller, access: ListenerAccess): boolean {
    if (caller.via === 'component') return true;
    return access === 'read' || caller.role === 'admin';
  }
}
