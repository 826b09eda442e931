/**
 * MGMT's only way to the MDM: its HTTP API, with the user's own token, so
 * that the MDM checks the role and writes the audit row of every change.
 */
import { tlsFetch, type Fetch } from '../shared/tls.js';
import { MGMT_LIMITS } from './limits.js';

export interface MdmAnswer { status: number; body: unknown }

export class MdmGateway {
  private readonly fetch: Fetch;

  /** ca: PEM of the CA that signed an https MDM's certificate (default: the system's trust store). */
  constructor(private readonly baseUrl: string, ca?: Buffer) {
    this.fetch = tlsFetch(ca);
  }

  /** One call; a network failure or timeout is a 503 answer with PFLEX_ERR_UNAVAILABLE, never a throw. */
  async call(method: string, pathAndQuery: string, token: string | undefined, body?: unknown): Promise<MdmAnswer> {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      const r = await this.fetch(new URL(pathAndQuery, this.baseUrl), {
        method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(MGMT_LIMITS.mdmCallTimeoutMs),
      });
      const text = await r.text();
      let parsed: unknown = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = { error: { code: 'PFLEX_ERR_UNAVAILABLE', message: `the MDM answered HTTP ${r.status} without JSON` } };
      }
      return { status: r.status, body: parsed };
    } catch (err) {
      return { status: 503, body: { error: { code: 'PFLEX_ERR_UNAVAILABLE', message: `the MDM at ${this.baseUrl} is unreachable: ${(err as Error).message}` } } };
    }
  }
}
