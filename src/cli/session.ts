/**
 * Where the CLI finds its MDM and its login: the credentials file
 * ($PFLEX_CONFIG_DIR, else $XDG_CONFIG_HOME/pflex, else ~/.config/pflex)
 * holds the MDM URL and bearer token, readable by the user only (0600).
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PflexError } from '../shared/errors.js';
import { MdmClient } from '../shared/mdm-client.js';
import { readPem } from '../shared/tls.js';

export const CREDENTIALS_FILE = 'credentials.json';
export const MDM_URL_DEFAULT = 'http://127.0.0.1:8001';

export interface Credentials {
  mdmUrl: string;
  user: string;
  role?: string;
  token: string;
  expiresAtMs?: number;
  /** Path of the PEM CA used at login (an https:// MDM). */
  ca?: string;
}

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PFLEX_CONFIG_DIR) return env.PFLEX_CONFIG_DIR;
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'pflex');
}

export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), CREDENTIALS_FILE);
}

export function readCredentials(env: NodeJS.ProcessEnv = process.env): Credentials | null {
  let text: string;
  try {
    text = readFileSync(credentialsPath(env), 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed = JSON.parse(text) as Partial<Credentials>;
    if (typeof parsed.token !== 'string' || typeof parsed.mdmUrl !== 'string') return null;
    return parsed as Credentials;
  } catch {
    return null;
  }
}

/**
 * Writes the file with mode 0600 (a new directory gets 0700): the token goes
 * to a fresh 0600 file that then replaces the old one, so it is never
 * readable by others, even for a moment, even if an old file had looser modes.
 */
export function writeCredentials(creds: Credentials, env: NodeJS.ProcessEnv = process.env): string {
  const dir = configDir(env);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = credentialsPath(env);
  const tmp = `${path}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, path);
  return path;
}

export function removeCredentials(env: NodeJS.ProcessEnv = process.env): void {
  rmSync(credentialsPath(env), { force: true });
}

/** --mdm, then $PFLEX_MDM_URL, then the URL saved at login, then the local default. */
export function resolveMdmUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const url = flag || env.PFLEX_MDM_URL || readCredentials(env)?.mdmUrl || MDM_URL_DEFAULT;
  try {
    new URL(url);
  } catch {
    throw new PflexError('PFLEX_ERR_BAD_REQUEST', `not a URL: "${url}" (use e.g. --mdm http://mdm1:8001)`);
  }
  return url.replace(/\/+$/, '');
}

/** --ca, then $PFLEX_CA, then the CA saved at login against the same MDM. */
export function resolveCaPath(url: string, flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const creds = readCredentials(env);
  return flag || env.PFLEX_CA || (creds && creds.mdmUrl === url ? creds.ca : undefined) || undefined;
}

/** A client for the MDM with the saved login (if it was made against the same MDM). */
export function clientFor(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, caFlag?: string): MdmClient {
  const url = resolveMdmUrl(flag, env);
  const creds = readCredentials(env);
  const token = env.PFLEX_TOKEN || (creds && creds.mdmUrl === url ? creds.token : undefined);
  const ca = resolveCaPath(url, caFlag, env);
  return new MdmClient({ url, ...(token ? { token } : {}), ...(ca ? { ca: readPem(ca) } : {}) });
}
