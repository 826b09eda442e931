/** `pflex mgmt start`: builds the dashboard app and listens. */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { PflexError } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import { httpScheme, readPem, type TlsMaterial } from '../shared/tls.js';
import { buildMgmt } from './app.js';

export interface MgmtStartOptions {
  mdmUrl: string;
  host: string;
  port: number;
  /** File of 64 hex digits: sessions survive a restart (default: a random key per run). */
  sessionKeyFile?: string;
  secureCookies?: boolean;
  /** PEM file of the CA of an https MDM (default: tls.ca). */
  mdmCaFile?: string;
  /** Serve HTTPS with this certificate (secure cookies implied); its CA is trusted for the MDM too. */
  tls?: TlsMaterial;
}

export function readSessionKey(path: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new PflexError('PFLEX_ERR_NOT_FOUND', `cannot read the session key ${path}: ${(err as Error).message}`);
  }
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new PflexError('PFLEX_ERR_BAD_REQUEST', `${path}: the session key must be 64 hex digits`);
  return Buffer.from(text, 'hex');
}

export async function startMgmt(o: MgmtStartOptions): Promise<{ app: FastifyInstance; port: number }> {
  let mdm: URL;
  try {
    mdm = new URL(o.mdmUrl);
  } catch {
    throw new PflexError('PFLEX_ERR_BAD_REQUEST', `--mdm: not a URL: ${o.mdmUrl}`);
  }
  const logger = createLogger('mgmt');
  const app = await buildMgmt({
    mdmUrl: mdm.toString(), loggerInstance: logger, secureCookies: o.secureCookies ?? false,
    ...(o.sessionKeyFile ? { sessionKey: readSessionKey(o.sessionKeyFile) } : {}),
    ...(o.tls ? { https: o.tls } : {}),
    ...(o.mdmCaFile ? { mdmCa: readPem(o.mdmCaFile) } : o.tls?.ca ? { mdmCa: o.tls.ca } : {}),
  });
  await app.listen({ host: o.host, port: o.port });
  const port = (app.server.address() as AddressInfo).port;
  logger.info({ port, host: o.host, mdmUrl: mdm.toString(), tls: o.tls !== undefined, url: `${httpScheme(o.tls !== undefined)}://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}/` }, 'mgmt listening');
  return { app, port };
}
