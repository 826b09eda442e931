/**
 * Calls to the HTTP listeners of SDS and SDC, which authenticate every route
 * (src/shared/listener-auth.ts): with the cluster key (a PflexComponent
 * proof) or with an MDM-issued bearer token.
 */
import { controlAuthorization } from '../../src/shared/control-auth.js';
import { readPem, tlsFetch } from '../../src/shared/tls.js';

/** tls: the listeners serve HTTPS with certificates of this CA (an Mdm started with tls carries it). */
export type ListenerCredential = ({ clusterKey: Buffer } | { token: string }) & { tls?: { caFile: string } | undefined };

export function listenerHeaders(cred: ListenerCredential): Record<string, string> {
  return { authorization: 'token' in cred ? `Bearer ${cred.token}` : controlAuthorization(cred.clusterKey, 'test') };
}

/** GET a listener route as JSON; throws on a non-2xx answer. */
// `any` by default: tests read many answer shapes of these listeners.
export async function listenerJson<T = any>(cred: ListenerCredential, port: number, path: string, host = '127.0.0.1'): Promise<T> {
  const get = cred.tls ? tlsFetch(readPem(cred.tls.caFile)) : fetch;
  const res = await get(`${cred.tls ? 'https' : 'http'}://${host}:${port}${path}`, { headers: listenerHeaders(cred) });
  if (!res.ok) throw new Error(`GET ${path} on port ${port}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}
