/**
 * Typed HTTP client of the MDM API (docs/api.md), used by the CLI, the SDS
 * and the SDC. Errors come back as PflexError: an answer
 * {error: {code, message}} keeps its code; a network failure or timeout is
 * PFLEX_ERR_UNAVAILABLE. Users authenticate with a bearer token from
 * login(); components with the cluster key (POST /auth/component), and log
 * in again by themselves when their token is refused or expires.
 */
import type { Static } from '@fastify/type-provider-typebox';
import type * as S from './mdm-api.js';
import { componentProof, type ComponentKind } from './component-auth.js';
import { codeOfHttpStatus, ERRORS, PflexError, type ErrorCode } from './errors.js';
import { tlsFetch, type Fetch } from './tls.js';
import { endSpan, SpanKind, startChild, traceparentHeader, type Span } from './tracing.js';

// API types come from the MDM's own TypeBox schemas (type-only: no runtime import).
export type ProtectionDomain = Static<typeof S.ProtectionDomain>;
export type StoragePool = Static<typeof S.StoragePool>;
export type FaultSet = Static<typeof S.FaultSet>;
export type Sds = Static<typeof S.Sds>;
export type Sdc = Static<typeof S.Sdc>;
export type Mapping = Static<typeof S.Mapping>;
export type Volume = Static<typeof S.Volume>;
export type VolumeDeletion = Static<typeof S.VolumeDeletion>;
export type LayerRelease = Static<typeof S.LayerRelease>;
export type SnapshotPolicy = Static<typeof S.SnapshotPolicy>;
export type VolumeTrim = Static<typeof S.VolumeTrim>;
export type LayerDeletion = Static<typeof S.LayerDeletion>;
export type BackupInfo = Static<typeof S.BackupInfo>;
export type PgEntry = Static<typeof S.PgEntry>;
export type PgMap = Static<typeof S.PgMap>;
export type Beat = Static<typeof S.Beat>;
export type IoBeat = Static<typeof S.IoBeat>;
export type VolumeIoBeat = IoBeat & { volumeId: number };
export type Stats = Static<typeof S.Stats>;
export type StatsPoint = Static<typeof S.StatsPoint>;
export type HealthSummary = Static<typeof S.HealthSummary>;
export type Alert = Static<typeof S.Alert>;
export type User = Static<typeof S.User>;
export type AuditEntry = Static<typeof S.AuditEntry>;
export type IssuedToken = Static<typeof S.IssuedToken>;
export type IoTokenAnswer = Static<typeof S.IoToken>;
export type AccessMode = 'readWrite' | 'readOnly';
export type Provisioning = 'thin' | 'thick';
export type Severity = 'INFO' | 'WARNING' | 'ERROR' | 'CRITICAL';
export interface WhoAmI { sub: string; role: string; kind?: string; uid?: number }
export interface Ok { ok: boolean }

export interface NewPool {
  protectionDomainId: number;
  name: string;
  replicationFactor: 2 | 3;
  chunkBytes?: number;
  pgCount?: number;
  defaultProvisioning?: Provisioning;
  capacityHighPct?: number;
  capacityCriticalPct?: number;
}
export interface PoolPatch { name?: string; defaultProvisioning?: Provisioning; capacityHighPct?: number; capacityCriticalPct?: number }
export interface RegisterSds {
  name: string;
  protectionDomainName: string;
  storagePoolName: string;
  faultSetName?: string;
  address: string;
  dataPort: number;
  controlPort?: number;
  mgmtPort?: number;
  capacityBytes: number;
  /** False when the SDS's previous run ended without a clean stop (power loss): the MDM fences it out of its PGs. Default true. */
  cleanStop?: boolean;
}
export interface RegisterSdc { guid: string; name?: string; address?: string; controlPort?: number }
export interface NewVolume { name: string; storagePoolId: number; sizeBytes: number; provisioning?: Provisioning }
export interface AlertFilter {
  severity?: Severity;
  minSeverity?: Severity;
  category?: string;
  source?: string;
  state?: 'open' | 'resolved';
  limit?: number;
}
export interface AuditFilter { actor?: string; action?: string; result?: 'success' | 'failure'; sinceMs?: number; untilMs?: number; limit?: number }
export interface FenceAnswer { fenced: boolean; pg: PgEntry; map: PgMap }
/** An IO token as issued, plus its binary form for the data plane. */
export interface IoTokenGrant extends IoTokenAnswer { bytes: Buffer }

/** Per-request timeout unless the caller passes one. */
export const mdmRequestTimeoutMsDefault = 10_000;

export interface MdmClientOptions {
  /** Base URL of the MDM, e.g. http://127.0.0.1:8001 */
  url: string;
  /** User bearer token (from login). */
  token?: string;
  /** Component login: obtains a fresh bearer token (see componentAuth()). */
  componentAuth?: ComponentAuth;
  timeoutMs?: number;
  /** Headers added to every request, computed per request (e.g. W3C traceparent of the current span). */
  headers?: () => Record<string, string>;
  /** PEM CA the MDM's certificate is checked against (an https:// URL; default the system's trust store). */
  ca?: Buffer;
}

/** How a component logs in; called again whenever its token is refused or about to expire. */
export type ComponentAuth = (client: MdmClient) => Promise<IssuedToken>;

/** A component token is renewed this long before it expires. */
export const componentTokenRenewBeforeMs = 60_000;

/** Component login with the cluster key (POST /auth/component, proof as in shared/component-auth.ts). */
export function componentAuth(kind: ComponentKind, name: string, clusterKey: Buffer, clock: () => number = Date.now): ComponentAuth {
  return (client) => {
    const tsMs = clock();
    return client.raw<IssuedToken>('POST', '/auth/component', {
      anonymous: true,
      body: { kind, name, tsMs, proof: componentProof(clusterKey, kind, name, tsMs) },
    });
  };
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Do not send the bearer token (login endpoints). */
  anonymous?: boolean;
  timeoutMs?: number;
  /** Extra headers (e.g. W3C traceparent). */
  headers?: Record<string, string>;
  /** The traced operation this call is part of (an NBD request): the call gets a client span under it. */
  parent?: Span;
}

function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/** Turns an HTTP error answer into a PflexError, keeping the server's code and message. */
export function errorFromResponse(status: number, body: unknown): PflexError {
  const err = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
  const code = isErrorCode(err?.code) ? err.code : codeOfHttpStatus(status);
  const message = typeof err?.message === 'string' ? err.message : `MDM answered HTTP ${status}`;
  const details = err?.details && typeof err.details === 'object' ? (err.details as Record<string, unknown>) : undefined;
  return new PflexError(code, message, { status, ...(details ?? {}) });
}

export class MdmClient {
  readonly url: string;
  private token: string | undefined;
  private tokenExpiresAtMs = Number.POSITIVE_INFINITY;
  private readonly componentAuth: ComponentAuth | undefined;
  private readonly timeoutMs: number;
  private readonly fetch: Fetch;
  private readonly extraHeaders: (() => Record<string, string>) | undefined;
  private loggingIn: Promise<IssuedToken> | null = null;

  constructor(options: MdmClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.token = options.token;
    this.componentAuth = options.componentAuth;
    this.timeoutMs = options.timeoutMs ?? mdmRequestTimeoutMsDefault;
    this.fetch = tlsFetch(options.ca);
    this.extraHeaders = options.headers;
  }

  get bearerToken(): string | undefined {
    return this.token;
  }

  setToken(token: string | undefined): void {
    this.token = token;
  }

  /** One HTTP exchange; resolves with the parsed JSON body (undefined for 204). */
  async raw<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(this.url + path);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: 'application/json', ...(this.extraHeaders?.() ?? {}), ...(options.headers ?? {}) };
    if (!options.anonymous && this.token) headers.authorization = `Bearer ${this.token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    const span = options.parent && startChild(options.parent, `${method} ${routeOf(path)}`, SpanKind.CLIENT, {
      'http.request.method': method, 'url.full': url.href, 'server.address': url.hostname,
      'server.port': Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
    });
    if (span) headers.traceparent = traceparentHeader(span);
    let res: Response;
    try {
      res = await this.fetch(url, { method, headers, body, signal: AbortSignal.timeout(options.timeoutMs ?? this.timeoutMs) });
    } catch (err) {
      const cause = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
      const why = cause.name === 'TimeoutError' ? 'timed out' : (cause.cause?.code ?? cause.cause?.message ?? cause.message ?? 'failed');
      const failed = new PflexError('PFLEX_ERR_UNAVAILABLE', `cannot reach the MDM at ${this.url} (${why})`);
      endSpan(span, failed);
      throw failed;
    }
    if (span) endSpan(span, res.ok ? undefined : `HTTP ${res.status}`, { 'http.response.status_code': res.status });
    const text = await res.text().catch(() => '');
    let parsed: unknown = undefined;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        if (res.ok) throw new PflexError('PFLEX_ERR_INTERNAL', `MDM answered ${method} ${path} with a body that is not JSON`);
      }
    }
    if (!res.ok) throw errorFromResponse(res.status, parsed);
    return parsed as T;
  }

  /**
   * A request with authentication: a component logs in first when it has no
   * token, and once more when the MDM answers 401 (token expired, MDM
   * restarted with a new key...).
   */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    if (this.componentAuth && !options.anonymous && (!this.token || Date.now() > this.tokenExpiresAtMs - componentTokenRenewBeforeMs)) {
      await this.relogin();
    }
    try {
      return await this.raw<T>(method, path, options);
    } catch (err) {
      if (!(err instanceof PflexError) || err.code !== 'PFLEX_ERR_UNAUTHENTICATED' || !this.componentAuth || options.anonymous) throw err;
      await this.relogin();
      return this.raw<T>(method, path, options);
    }
  }

  /** Concurrent callers share one login. */
  private async relogin(): Promise<void> {
    assertAuth(this.componentAuth);
    this.loggingIn ??= this.componentAuth(this).finally(() => {
      this.loggingIn = null;
    });
    const issued = await this.loggingIn;
    this.token = issued.token;
    this.tokenExpiresAtMs = issued.expiresAtMs;
  }

  get<T>(path: string, query?: RequestOptions['query']): Promise<T> {
    return this.request<T>('GET', path, query ? { query } : {});
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body === undefined ? {} : { body });
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body });
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body });
  }

  delete<T>(path: string, query?: RequestOptions['query']): Promise<T> {
    return this.request<T>('DELETE', path, query ? { query } : {});
  }

  // --- auth and users -------------------------------------------------------

  /** User login; the client keeps the token for its next requests. */
  async login(username: string, password: string): Promise<IssuedToken> {
    const issued = await this.raw<IssuedToken>('POST', '/auth/login', { anonymous: true, body: { username, password } });
    this.token = issued.token;
    return issued;
  }
  whoami(): Promise<WhoAmI> { return this.get('/auth/whoami'); }
  listUsers(): Promise<User[]> { return this.get('/users'); }
  createUser(name: string, password: string, role: 'admin' | 'monitor'): Promise<User> { return this.post('/users', { name, password, role }); }
  setUserPassword(id: number, password: string): Promise<User> { return this.put(`/users/${id}/password`, { password }); }
  deleteUser(id: number): Promise<Ok> { return this.delete(`/users/${id}`); }
  createBackup(): Promise<BackupInfo> { return this.post('/backups'); }
  listBackups(): Promise<BackupInfo[]> { return this.get('/backups'); }
  unlockUser(id: number): Promise<{ name: string; wasLocked: boolean }> { return this.post(`/users/${id}/unlock`); }
  audit(filter: AuditFilter = {}): Promise<AuditEntry[]> { return this.get('/audit', { ...filter }); }

  // --- protection domains, pools, fault sets --------------------------------

  listPds(): Promise<ProtectionDomain[]> { return this.get('/protection-domains'); }
  getPd(id: number): Promise<ProtectionDomain> { return this.get(`/protection-domains/${id}`); }
  createPd(name: string): Promise<ProtectionDomain> { return this.post('/protection-domains', { name }); }
  renamePd(id: number, name: string): Promise<ProtectionDomain> { return this.patch(`/protection-domains/${id}`, { name }); }
  deletePd(id: number): Promise<Ok> { return this.delete(`/protection-domains/${id}`); }

  listPools(filter: { protectionDomainId?: number; name?: string } = {}): Promise<StoragePool[]> { return this.get('/storage-pools', { ...filter }); }
  getPool(id: number): Promise<StoragePool> { return this.get(`/storage-pools/${id}`); }
  createPool(pool: NewPool): Promise<StoragePool> { return this.post('/storage-pools', pool); }
  updatePool(id: number, patch: PoolPatch): Promise<StoragePool> { return this.patch(`/storage-pools/${id}`, patch); }
  deletePool(id: number): Promise<Ok> { return this.delete(`/storage-pools/${id}`); }
  /** The whole PG map, or only the PGs changed after sinceEpoch. */
  getPgMap(poolId: number, sinceEpoch?: number, parent?: Span): Promise<PgMap> {
    return this.request('GET', `/storage-pools/${poolId}/pg-map`, { ...(sinceEpoch === undefined ? {} : { query: { sinceEpoch } }), ...(parent ? { parent } : {}) });
  }
  /** Reports a failed member of a PG routed with `epoch`; the MDM drops it (new epoch). */
  fencePgMember(poolId: number, pg: number, sdsId: number, epoch: number, parent?: Span): Promise<FenceAnswer> {
    return this.request('POST', `/storage-pools/${poolId}/pgs/${pg}/fence`, { body: { sdsId, epoch }, ...(parent ? { parent } : {}) });
  }

  listFaultSets(filter: { protectionDomainId?: number } = {}): Promise<FaultSet[]> { return this.get('/fault-sets', { ...filter }); }
  getFaultSet(id: number): Promise<FaultSet> { return this.get(`/fault-sets/${id}`); }
  createFaultSet(protectionDomainId: number, name: string): Promise<FaultSet> { return this.post('/fault-sets', { protectionDomainId, name }); }
  deleteFaultSet(id: number): Promise<Ok> { return this.delete(`/fault-sets/${id}`); }

  // --- SDS and SDC ----------------------------------------------------------

  listSds(filter: { storagePoolId?: number; protectionDomainId?: number; name?: string } = {}): Promise<Sds[]> { return this.get('/sds', { ...filter }); }
  getSds(id: number): Promise<Sds> { return this.get(`/sds/${id}`); }
  /** Idempotent by name. */
  registerSds(sds: RegisterSds): Promise<Sds> { return this.post('/sds', sds); }
  removeSds(id: number): Promise<Ok> { return this.delete(`/sds/${id}`); }
  sdsHeartbeat(id: number, beat: { usedBytes: number; capacityBytes?: number; io?: IoBeat }): Promise<Beat> { return this.post(`/sds/${id}/heartbeat`, beat); }

  listSdcs(filter: { guid?: string; name?: string } = {}): Promise<Sdc[]> { return this.get('/sdcs', { ...filter }); }
  getSdc(id: number): Promise<Sdc> { return this.get(`/sdcs/${id}`); }
  /** Idempotent by guid. */
  registerSdc(sdc: RegisterSdc): Promise<Sdc> { return this.post('/sdcs', sdc); }
  renameSdc(id: number, name: string): Promise<Sdc> { return this.patch(`/sdcs/${id}`, { name }); }
  unregisterSdc(id: number, force = false): Promise<Ok> { return this.delete(`/sdcs/${id}`, force ? { force } : undefined); }
  sdcHeartbeat(id: number, volumes?: VolumeIoBeat[]): Promise<Beat> {
    return this.post(`/sdcs/${id}/heartbeat`, volumes && volumes.length > 0 ? { volumes } : {});
  }
  /** An IO token for a volume mapped to this SDC; `bytes` is what data frames carry. */
  async issueIoToken(sdcId: number, volumeId: number, parent?: Span): Promise<IoTokenGrant> {
    const answer = await this.request<IoTokenAnswer>('POST', `/sdcs/${sdcId}/tokens`, { body: { volumeId }, ...(parent ? { parent } : {}) });
    return { ...answer, bytes: Buffer.from(answer.token, 'base64url') };
  }

  // --- volumes --------------------------------------------------------------

  listVolumes(filter: { storagePoolId?: number; name?: string; kind?: 'volume' | 'snapshot' } = {}): Promise<Volume[]> { return this.get('/volumes', { ...filter }); }
  /** space: also the bytes of its layers, asked of the SDSs (docs/snapshots.md). */
  getVolume(id: number, opts: { space?: boolean } = {}): Promise<Volume> { return this.get(`/volumes/${id}`, opts.space ? { space: true } : {}); }
  createVolume(volume: NewVolume): Promise<Volume> { return this.post('/volumes', volume); }
  renameVolume(id: number, name: string): Promise<Volume> { return this.patch(`/volumes/${id}`, { name }); }
  resizeVolume(id: number, sizeBytes: number, force = false): Promise<Volume> {
    return this.post(`/volumes/${id}/resize`, force ? { sizeBytes, force } : { sizeBytes });
  }
  /** The tree's deletion when this was its last volume or snapshot, else the layers freed. */
  deleteVolume(id: number, force = false): Promise<VolumeDeletion | LayerRelease> { return this.delete(`/volumes/${id}`, force ? { force } : undefined); }
  mapVolume(id: number, sdcId: number, options: { accessMode?: AccessMode; allowMultiMap?: boolean } = {}): Promise<Volume> {
    return this.post(`/volumes/${id}/mappings`, { sdcId, ...options });
  }
  setMappingAccess(id: number, sdcId: number, accessMode: AccessMode): Promise<Volume> {
    return this.patch(`/volumes/${id}/mappings/${sdcId}`, { accessMode });
  }
  setMappingQos(id: number, sdcId: number, qos: { iopsLimit: number; bandwidthLimitBytesPerSec: number }): Promise<Volume> {
    return this.request('PUT', `/volumes/${id}/mappings/${sdcId}/qos`, { body: qos });
  }
  unmapVolume(id: number, sdcId: number): Promise<Volume> { return this.delete(`/volumes/${id}/mappings/${sdcId}`); }
  listVolumeDeletions(filter: { state?: 'pending' | 'done'; storagePoolId?: number } = {}): Promise<VolumeDeletion[]> {
    return this.get('/volume-deletions', { ...filter });
  }
  listVolumeTrims(filter: { state?: 'pending' | 'done'; volumeId?: number } = {}): Promise<VolumeTrim[]> {
    return this.get('/volume-trims', { ...filter });
  }
  listLayerDeletions(filter: { state?: 'pending' | 'done'; volumeTreeId?: number } = {}): Promise<LayerDeletion[]> {
    return this.get('/layer-deletions', { ...filter });
  }

  // --- snapshots --------------------------------------------------------------

  listSnapshots(filter: { volumeId?: number; space?: boolean } = {}): Promise<Volume[]> { return this.get('/snapshots', { ...filter }); }
  createSnapshot(volumeId: number, name: string): Promise<Volume> { return this.post('/snapshots', { volumeId, name }); }
  snapshotGroup(snapshots: Array<{ volumeId: number; name: string }>): Promise<{ group: string | null; snapshots: Volume[] }> {
    return this.post('/consistency-group-snapshots', { snapshots });
  }
  cloneSnapshot(snapshotId: number, name: string): Promise<Volume> { return this.post(`/snapshots/${snapshotId}/clone`, { name }); }
  revertVolume(volumeId: number, snapshotId: number): Promise<Volume> { return this.post(`/volumes/${volumeId}/revert`, { snapshotId }); }
  listSnapshotPolicies(): Promise<SnapshotPolicy[]> { return this.get('/snapshot-policies'); }
  createSnapshotPolicy(p: { name: string; volumeId: number; intervalMs: number; retain: number }): Promise<SnapshotPolicy> {
    return this.post('/snapshot-policies', p);
  }
  updateSnapshotPolicy(id: number, p: { intervalMs: number; retain: number }): Promise<SnapshotPolicy> { return this.patch(`/snapshot-policies/${id}`, p); }
  deleteSnapshotPolicy(id: number): Promise<Ok> { return this.delete(`/snapshot-policies/${id}`); }

  // --- health and alerts ----------------------------------------------------

  live(): Promise<{ ok: boolean }> { return this.raw('GET', '/health/live', { anonymous: true }); }
  health(): Promise<HealthSummary> { return this.get('/health'); }
  listAlerts(filter: AlertFilter = {}): Promise<Alert[]> { return this.get('/alerts', { ...filter }); }
  getAlert(id: number): Promise<Alert> { return this.get(`/alerts/${id}`); }
  raiseAlert(alert: { severity: Severity; category: string; source: string; message: string }): Promise<Alert> { return this.post('/alerts', alert); }
  resolveAlert(id: number): Promise<Alert> { return this.post(`/alerts/${id}/resolve`); }
  topology(): Promise<unknown> { return this.get('/discovery/topology'); }
  stats(sinceMs?: number): Promise<Stats> { return this.get('/stats', sinceMs === undefined ? {} : { sinceMs }); }
}

/** A span name without ids: /storage-pools/1/pgs/7/fence -> /storage-pools/{id}/pgs/{id}/fence. */
function routeOf(path: string): string {
  return path.split('?')[0]!.replace(/\/\d+(?=\/|$)/g, '/{id}');
}

function assertAuth(fn: unknown): asserts fn is ComponentAuth {
  if (typeof fn !== 'function') throw new PflexError('PFLEX_ERR_UNAUTHENTICATED', 'this client has no way to log in');
}
