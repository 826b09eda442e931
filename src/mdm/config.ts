/**
 * Limits and defaults of the MDM, in one place. Units come last in the
 * names. Every value can be overridden through build({config}) and the
 * `pflex mdm start` flags / PFLEX_MDM_* environment variables.
 */
import { componentAuthSkewMs, heartbeatIntervalMs, mdmCallTimeoutMs } from '../shared/limits.js';
import { API_LIMITS } from '../shared/mdm-api.js';

export interface MdmConfig {
  /** How often SDS and SDC are expected to beat. */
  heartbeatIntervalMs: number;
  /** A component that missed this many beats in a row is STALE. */
  staleAfterMissedBeats: number;
  /** A component silent for this long is DOWN. */
  downAfterMs: number;
  /** How often the MDM re-evaluates component states (server only; tests call tick()). */
  healthTickMs: number;
  /** Lifetime of an IO token issued to an SDC. */
  ioTokenTtlMs: number;
  /** Lifetime of the bearer token returned by POST /auth/login. */
  userTokenTtlS: number;
  /** Lifetime of the bearer token returned by POST /auth/component. */
  componentTokenTtlS: number;
  /** Accepted distance between a component's proof timestamp and the MDM clock. */
  componentAuthSkewMs: number;
  /** Largest accepted request body. */
  requestBodyBytesMax: number;
  /** Storage pool defaults. */
  poolChunkBytesDefault: number;
  poolPgCountDefault: number;
  poolCapacityHighPctDefault: number;
  poolCapacityCriticalPctDefault: number;
  /** Rebuild, rebalance and drain copy at most this many bytes per second per source SDS (token bucket on the SDS). */
  rebuildBandwidthBytesPerS: number;
  /** PG copies running at once in the whole cluster (the rest wait; degraded PGs go first). */
  rebuildConcurrentPgsMax: number;
  /** How often the MDM plans and drives rebuilds (server only; tests may call rebuild.tick()). */
  rebuildTickMs: number;
  /** A PG whose copy failed waits this long before the next attempt. */
  rebuildRetryDelayMs: number;
  /** How often the MDM runs due snapshot policies and reclaims freed layers (server only; tests call snapshots.tick()). */
  snapshotTickMs: number;
  /** How long a quiesced SDC holds writes at most before resuming by itself (the MDM resumes it sooner). */
  snapshotQuiesceHoldMs: number;
  /** How often the MDM asks SDSs to remove deleted volumes and shrunk tails (server only; tests may call reclaim.tick()). */
  reclaimTickMs: number;
  /** Window of the request rate limits below. */
  rateLimitWindowMs: number;
  /** POST /auth/login calls per client address per window (0: no limit). */
  rateLimitLoginMax: number;
  /** Mutations (POST/PUT/PATCH/DELETE) per user per window (0: no limit); components are not limited (heartbeats, IO tokens). */
  rateLimitMutationsMax: number;
  /** This many failed logins in a row lock the user name (0: never). */
  loginFailuresMax: number;
  /** How long a locked user name stays locked (an admin can unlock it earlier). */
  loginLockoutMs: number;
  /** Scheduled backups of mdm.db and the cluster key into the backup directory (0: off). */
  backupIntervalMs: number;
  /** Backups kept in the backup directory (the oldest go). */
  backupKeep: number;
}

export const MDM_CONFIG_DEFAULTS: Readonly<MdmConfig> = Object.freeze({
  heartbeatIntervalMs,
  staleAfterMissedBeats: 3,
  downAfterMs: 10_000,
  healthTickMs: 1000,
  ioTokenTtlMs: 5 * 60_000,
  userTokenTtlS: 3600,
  componentTokenTtlS: 3600,
  componentAuthSkewMs,
  requestBodyBytesMax: 1024 * 1024,
  poolChunkBytesDefault: 1024 * 1024,
  poolPgCountDefault: 128,
  poolCapacityHighPctDefault: 80,
  poolCapacityCriticalPctDefault: 90,
  rebuildBandwidthBytesPerS: 64 * 1024 * 1024,
  rebuildConcurrentPgsMax: 4,
  rebuildTickMs: 500,
  rebuildRetryDelayMs: 2000,
  snapshotTickMs: 1000,
  snapshotQuiesceHoldMs: 10_000,
  reclaimTickMs: 2000,
  rateLimitWindowMs: 60_000,
  rateLimitLoginMax: 30,
  rateLimitMutationsMax: 1200,
  loginFailuresMax: 5,
  loginLockoutMs: 15 * 60_000,
  backupIntervalMs: 24 * 3600_000,
  backupKeep: 7,
});

/** Fixed limits (not configurable: they shape the schema). */
export const MDM_LIMITS = Object.freeze({
  /** nameLengthMax, sizeBytesMax: they shape the API schemas. */
  ...API_LIMITS,
  /** Layer ids travel as u16 in data frames: a tree gets at most this many layers in its life. */
  layerIdMax: 0xffff,
  /** Largest page of /alerts and /audit. */
  listLimitMax: 1000,
  /** Highest QoS limits a mapping may set (0 = unlimited). */
  qosIopsMax: 10_000_000,
  qosBandwidthBytesPerSecMax: 1024 ** 4,
  passwordLengthMin: 8,
  passwordLengthMax: 256,
  messageLengthMax: 1024,
  pgCountMax: 65_536,
  chunkBytesMin: 64 * 1024,
  chunkBytesMax: 64 * 1024 * 1024,
  /** How long a verified bearer token is trusted without checking its signature again (never past its expiry). */
  verifiedTokenCacheMs: 60_000,
  /** Timeout of one MDM -> SDS control call. */
  controlCallTimeoutMs: mdmCallTimeoutMs,
  /** A rebuild job that could not be started for this long is given up (and retried later). */
  rebuildStartGiveUpMs: 30_000,
  /** Finished rebuild jobs kept in rebuild_jobs (history for status). */
  rebuildJobHistoryMax: 2000,
  /** Bound of that cache (11,000 components of the benchmark fit). */
  verifiedTokenCacheEntriesMax: 50_000,
  /** Live IO figures (GET /stats): bucket length, how long buckets are kept, and how many per volume/SDS at most. */
  statsBucketMs: 2000,
  statsRetentionMs: 5 * 60_000,
  statsBucketsMax: 160,
  /** A bucket is reported once this long has passed after its end (beats come up to an interval late). */
  statsSettleMs: 2500,
  /** Counters of two beats further apart than this are not turned into rates (the source was away). */
  statsBeatGapMsMax: 30_000,
  /** Sources (SDSs, SDC x volume pairs) followed at once. */
  statsSourcesMax: 100_000,
});

/** Settings where 0 switches the feature off (every other setting is a positive integer). */
export const MDM_CONFIG_ZERO_MEANS_OFF: ReadonlySet<keyof MdmConfig> = new Set<keyof MdmConfig>(['rateLimitLoginMax', 'rateLimitMutationsMax', 'loginFailuresMax', 'backupIntervalMs']);

export const MDM_DEFAULT_PORT = 8001;
export const MDM_DB_FILE = 'mdm.db';
export const CLUSTER_KEY_FILE = 'cluster.key';

export function resolveConfig(overrides: Partial<MdmConfig> = {}): MdmConfig {
  const config = { ...MDM_CONFIG_DEFAULTS, ...overrides };
  return config;
}

/** A component that has not beaten for this long is STALE. */
export function staleAfterMs(config: MdmConfig): number {
  return config.heartbeatIntervalMs * config.staleAfterMissedBeats;
}
