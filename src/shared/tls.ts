/**
 * TLS for every pflex listener and client, in one place: PEM files named by
 * --tls-cert/--tls-key/--tls-ca (docs/security.md), TLS 1.3 only.
 *
 * A component with a certificate and key serves HTTPS on its HTTP listeners
 * and calls its peers over HTTPS, trusting the cluster CA (--tls-ca; without
 * it, the system's trust store). A cluster is all TLS or all plain text.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions, SecureContextOptions, TlsOptions } from 'node:tls';
import { isIP } from 'node:net';
import { Agent, fetch as undiciFetch } from 'undici';
import { PflexError } from './errors.js';

export const tlsMinVersion = 'TLSv1.3' as const;

/** Paths of PEM files, as given on the command line or in the environment. */
export interface TlsFiles { cert?: string | undefined; key?: string | undefined; ca?: string | undefined }

/** What a TLS endpoint presents (cert, key) and trusts (ca). */
export interface TlsMaterial { cert: Buffer; key: Buffer; ca?: Buffer }

export function readPem(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new PflexError('PFLEX_ERR_NOT_FOUND', `cannot read ${path}: ${(err as Error).message}`);
  }
}

/** The material of a listener: undefined (plain text) when no certificate is given; cert and key go together. */
export function loadTls(files: TlsFiles): TlsMaterial | undefined {
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new PflexError('PFLEX_ERR_BAD_REQUEST', 'TLS needs both a certificate (--tls-cert) and its key (--tls-key)');
  }
  if (files.cert === undefined || files.key === undefined) return undefined;
  return { cert: readPem(files.cert), key: readPem(files.key), ...(files.ca !== undefined ? { ca: readPem(files.ca) } : {}) };
}

/** Options of an HTTPS (or TLS) server presenting this material. */
export function serverTlsOptions(m: TlsMaterial): SecureContextOptions {
  return { cert: m.cert, key: m.key, ...(m.ca ? { ca: m.ca } : {}), minVersion: tlsMinVersion };
}

export type Fetch = typeof globalThis.fetch;

/**
 * fetch for our HTTP clients: the global one when ca is undefined, else one
 * that trusts ca (TLS 1.3 only) and presents cert/key when given.
 */
export function tlsFetch(ca: Buffer | undefined, client?: { cert: Buffer; key: Buffer }): Fetch {
  if (ca === undefined) return globalThis.fetch;
  const dispatcher = new Agent({ connect: { ca, minVersion: tlsMinVersion, ...(client ?? {}) } });
  return ((url: Parameters<Fetch>[0], init?: RequestInit) =>
    undiciFetch(url as Parameters<typeof undiciFetch>[0], { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher })) as unknown as Fetch;
}

/** The URL scheme of our HTTP listeners in a cluster with or without TLS. */
export function httpScheme(tls: boolean): 'https' | 'http' {
  return tls ? 'https' : 'http';
}

/** How a component calls its peers' HTTP listeners: over HTTPS trusting the CA when its own TLS is on. */
export interface PeerHttp { scheme: 'http' | 'https'; fetch: Fetch }

export function peerHttp(m: TlsMaterial | undefined): PeerHttp {
  return { scheme: httpScheme(m !== undefined), fetch: tlsFetch(m?.ca) };
}

/**
 * Mutual TLS (the SDS data plane, docs/security.md): both ends present a
 * certificate of the cluster CA and check the other's against it. The CA is
 * required: without it the system's trust store would admit any public
 * certificate as a client.
 */
export interface MutualTls { cert: Buffer; key: Buffer; ca: Buffer }

/** The mTLS material of a component, or undefined when its TLS is off. */
export function mutualTls(m: TlsMaterial | undefined, what: string): MutualTls | undefined {
  if (m === undefined) return undefined;
  if (m.ca === undefined) throw new PflexError('PFLEX_ERR_BAD_REQUEST', `${what} runs mutual TLS and needs the cluster CA (--tls-ca)`);
  return { cert: m.cert, key: m.key, ca: m.ca };
}

/** A TLS server that demands a client certificate chaining to the CA (the handshake fails otherwise). */
export function mutualServerOptions(m: MutualTls): TlsOptions {
  return { ...serverTlsOptions(m), requestCert: true, rejectUnauthorized: true };
}

/** A TLS client of host presenting its certificate; the server's is checked against the CA and host. */
export function mutualClientOptions(m: MutualTls, host: string): ConnectionOptions {
  // SNI carries DNS names only; for an IP, Node checks the certificate's IP SANs against host.
  return { cert: m.cert, key: m.key, ca: m.ca, minVersion: tlsMinVersion, ...(isIP(host) === 0 ? { servername: host } : {}) };
}
