/**
 * TypeBox schemas of the MDM API: request validation, response
 * serialization and the OpenAPI document all come from these, and the MDM
 * client (src/shared/mdm-client.ts) takes its types from them.
 */
import { Type, type Static } from '@fastify/type-provider-typebox';

/** Limits that shape the API's schemas (the MDM's MDM_LIMITS includes them). */
export const API_LIMITS = Object.freeze({
  nameLengthMax: 64,
  /** 2^53 - 1: sizes travel as JSON numbers. */
  sizeBytesMax: Number.MAX_SAFE_INTEGER,
  /** Volumes one SDC heartbeat may report IO counters for. */
  statsVolumesPerBeatMax: 4096,
});

export const Id = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });
export const Name = Type.String({ minLength: 1, maxLength: API_LIMITS.nameLengthMax, pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]*$' });
export const Bytes = Type.Integer({ minimum: 0, maximum: API_LIMITS.sizeBytesMax });
export const Port = Type.Integer({ minimum: 1, maximum: 65535 });
export const Ms = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
export const NullableInt = Type.Union([Type.Integer(), Type.Null()]);
export const ComponentState = Type.Union([Type.Literal('ACTIVE'), Type.Literal('STALE'), Type.Literal('DOWN')]);
export const Provisioning = Type.Union([Type.Literal('thin'), Type.Literal('thick')]);
export const AccessMode = Type.Union([Type.Literal('readWrite'), Type.Literal('readOnly')]);
export const Severity = Type.Union([Type.Literal('INFO'), Type.Literal('WARNING'), Type.Literal('ERROR'), Type.Literal('CRITICAL')]);
export const Pct = Type.Integer({ minimum: 1, maximum: 100 });

export const IdParams = Type.Object({ id: Id }, { additionalProperties: false });
export type IdParamsT = Static<typeof IdParams>;
export const ForceQuery = Type.Object({ force: Type.Optional(Type.Boolean()) }, { additionalProperties: false });

export const ErrorBody = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String(), details: Type.Optional(Type.Record(Type.String(), Type.Unknown())) }),
});

export const Ok = Type.Object({ ok: Type.Boolean() });

export const ProtectionDomain = Type.Object({ id: Type.Integer(), name: Type.String(), createdAtMs: Type.Integer() });

export const PoolCapacity = Type.Object({
  totalBytes: Type.Integer(), usableBytes: Type.Integer(), reservedBytes: Type.Integer(), usedBytes: Type.Integer(),
  provisionedBytes: Type.Integer(), overProvisioningRatio: Type.Number(), utilizationPct: Type.Number(),
});
const poolFields = {
  id: Type.Integer(), protectionDomainId: Type.Integer(), name: Type.String(),
  replicationFactor: Type.Union([Type.Literal(2), Type.Literal(3)]), chunkBytes: Type.Integer(), pgCount: Type.Integer(),
  defaultProvisioning: Provisioning, capacityHighPct: Type.Integer(), capacityCriticalPct: Type.Integer(), mapEpoch: Type.Integer(),
  createdAtMs: Type.Integer(), capacity: PoolCapacity, sdsCount: Type.Integer(), volumeCount: Type.Integer(),
  pgMapReady: Type.Boolean(), degradedPgs: Type.Integer(),
};
export const StoragePool = Type.Object(poolFields);

export const FaultSet = Type.Object({ id: Type.Integer(), protectionDomainId: Type.Integer(), name: Type.String(), createdAtMs: Type.Integer() });

export const Sds = Type.Object({
  id: Type.Integer(), name: Type.String(), protectionDomainId: Type.Integer(), storagePoolId: Type.Integer(), faultSetId: NullableInt,
  address: Type.String(), dataPort: Type.Integer(), controlPort: NullableInt, mgmtPort: NullableInt, capacityBytes: Type.Integer(),
  usedBytes: Type.Integer(), state: ComponentState, lastHeartbeatMs: Type.Integer(), createdAtMs: Type.Integer(),
});

export const Mapping = Type.Object({
  volumeId: Type.Integer(), sdcId: Type.Integer(), accessMode: AccessMode, createdAtMs: Type.Integer(),
  /** QoS the SDC enforces for this mapping; 0 = unlimited. */
  iopsLimit: Type.Integer(), bandwidthLimitBytesPerSec: Type.Integer(),
});

export const Sdc = Type.Object({
  id: Type.Integer(), guid: Type.String(), name: Type.String(), address: Type.Union([Type.String(), Type.Null()]), state: ComponentState,
  lastHeartbeatMs: Type.Integer(), createdAtMs: Type.Integer(), mappings: Type.Array(Mapping), controlPort: NullableInt,
});

export const VolumeKind = Type.Union([Type.Literal('volume'), Type.Literal('snapshot')]);
/** Space of a volume row's layers (docs/snapshots.md "Space accounting"): one copy's logical bytes. */
export const VolumeSpace = Type.Object({ layerBytes: Type.Integer(), reclaimableBytes: Type.Integer(), partial: Type.Boolean() });

export const Volume = Type.Object({
  id: Type.Integer(), name: Type.String(), storagePoolId: Type.Integer(), volumeTreeId: Type.Integer(), sizeBytes: Type.Integer(),
  provisioning: Provisioning, createdAtMs: Type.Integer(), reservedBytes: Type.Integer(), mappings: Type.Array(Mapping),
  layout: Type.Object({ chunkBytes: Type.Integer(), pgCount: Type.Integer(), replicationFactor: Type.Integer() }),
  kind: VolumeKind, layerId: Type.Integer(), layerChain: Type.Array(Type.Integer()), sourceVolumeId: NullableInt,
  snapshotGroup: Type.Union([Type.String(), Type.Null()]), policyId: NullableInt,
  /** Only with ?space=true (asked of the SDSs). */
  space: Type.Optional(VolumeSpace),
});

/** Deleting a volume row that was not its tree's last: the layers nothing needs any more (their chunks are reclaimed). */
export const LayerRelease = Type.Object({ volumeId: Type.Integer(), volumeName: Type.String(), freedLayers: Type.Array(Type.Integer()) });

export const SnapshotPolicy = Type.Object({
  id: Type.Integer(), name: Type.String(), volumeId: Type.Integer(), intervalMs: Type.Integer(), retain: Type.Integer(),
  lastRunMs: NullableInt, lastError: Type.Union([Type.String(), Type.Null()]), createdAtMs: Type.Integer(),
});

const ReclaimState = Type.Union([Type.Literal('pending'), Type.Literal('done')]);
/** Progress of a reclaim task over the SDSs of its pool (src/mdm/services/reclaim.ts). */
const reclaimProgress = {
  sdsConfirmed: Type.Integer(), sdsTotal: Type.Integer(), chunksFreed: Type.Integer(), bytesFreed: Type.Integer(),
  lastError: Type.Union([Type.String(), Type.Null()]),
};

export const VolumeDeletion = Type.Object({
  id: Type.Integer(), volumeId: Type.Integer(), volumeName: Type.String(), volumeTreeId: Type.Integer(), storagePoolId: Type.Integer(),
  sizeBytes: Type.Integer(), state: ReclaimState, createdAtMs: Type.Integer(),
  doneAtMs: NullableInt, ...reclaimProgress,
});

export const VolumeTrim = Type.Object({
  id: Type.Integer(), volumeId: Type.Integer(), volumeTreeId: Type.Integer(), storagePoolId: Type.Integer(),
  fromBytes: Type.Integer(), chunkBytes: Type.Integer(), state: ReclaimState, createdAtMs: Type.Integer(),
  doneAtMs: NullableInt, ...reclaimProgress,
});

export const LayerDeletion = Type.Object({
  id: Type.Integer(), volumeTreeId: Type.Integer(), layerId: Type.Integer(), storagePoolId: Type.Integer(),
  state: ReclaimState, createdAtMs: Type.Integer(), doneAtMs: NullableInt, ...reclaimProgress,
});

export const PgEntry = Type.Object({
  pg: Type.Integer(), members: Type.Array(Type.Integer()), epoch: Type.Integer(),
  /** Members being rebuilt: they take forwarded writes but are neither read from nor waited for. */
  joining: Type.Optional(Type.Array(Type.Integer())),
});
export const PgMap = Type.Object({
  storagePoolId: Type.Integer(), epoch: Type.Integer(), pgCount: Type.Integer(), replicationFactor: Type.Integer(), chunkBytes: Type.Integer(),
  ready: Type.Boolean(), pgs: Type.Array(PgEntry),
  sds: Type.Array(Type.Object({ id: Type.Integer(), name: Type.String(), address: Type.String(), dataPort: Type.Integer(), state: Type.String() })),
});

export const Beat = Type.Object({ state: ComponentState, heartbeatIntervalMs: Type.Integer() });

/** Cumulative IO counters a component reports with its heartbeat (since it started). */
const Count = Type.Number({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
export const IoCounters = Type.Object({ ops: Count, bytes: Count, latencyMsTotal: Count }, { additionalProperties: false });
export const IoBeat = Type.Object({ read: IoCounters, write: IoCounters }, { additionalProperties: false });
export const SdsBeatBody = Type.Object({ usedBytes: Bytes, capacityBytes: Type.Optional(Bytes), io: Type.Optional(IoBeat) }, { additionalProperties: false });
export const SdcBeatBody = Type.Object({
  volumes: Type.Optional(Type.Array(
    Type.Object({ volumeId: Id, read: IoCounters, write: IoCounters }, { additionalProperties: false }),
    { maxItems: API_LIMITS.statsVolumesPerBeatMax },
  )),
}, { additionalProperties: false });

export const StatsPoint = Type.Object({
  atMs: Type.Integer(), readIops: Type.Number(), writeIops: Type.Number(), readBytesPerS: Type.Integer(), writeBytesPerS: Type.Integer(),
  readLatencyMsAvg: Type.Number(), writeLatencyMsAvg: Type.Number(),
});
const EntityStats = Type.Object({ id: Type.Integer(), name: Type.String(), current: Type.Union([StatsPoint, Type.Null()]), points: Type.Array(StatsPoint) });
export const Stats = Type.Object({ nowMs: Type.Integer(), bucketMs: Type.Integer(), volumes: Type.Array(EntityStats), sds: Type.Array(EntityStats) });

export const StateCounts = Type.Object({ total: Type.Integer(), active: Type.Integer(), stale: Type.Integer(), down: Type.Integer() });
export const SeverityCounts = Type.Object({ INFO: Type.Integer(), WARNING: Type.Integer(), ERROR: Type.Integer(), CRITICAL: Type.Integer() });
export const HealthSummary = Type.Object({
  status: Type.Union([Type.Literal('OK'), Type.Literal('DEGRADED'), Type.Literal('ERROR')]), nowMs: Type.Integer(),
  sds: StateCounts, sdcs: StateCounts,
  storagePools: Type.Array(Type.Object({
    id: Type.Integer(), name: Type.String(), utilizationPct: Type.Number(), pgMapReady: Type.Boolean(), degradedPgs: Type.Integer(),
  })),
  openAlerts: SeverityCounts,
});

export const Alert = Type.Object({
  id: Type.Integer(), dedupKey: Type.Union([Type.String(), Type.Null()]), severity: Severity, category: Type.String(), source: Type.String(),
  message: Type.String(), state: Type.Union([Type.Literal('open'), Type.Literal('resolved')]), raisedAtMs: Type.Integer(),
  updatedAtMs: Type.Integer(), resolvedAtMs: NullableInt, resolvedBy: Type.Union([Type.String(), Type.Null()]),
});

export const User = Type.Object({
  id: Type.Integer(), name: Type.String(), role: Type.Union([Type.Literal('admin'), Type.Literal('monitor')]), createdAtMs: Type.Integer(),
});

export const AuditEntry = Type.Object({
  id: Type.Integer(), atMs: Type.Integer(), actor: Type.String(), role: Type.Union([Type.String(), Type.Null()]), action: Type.String(),
  target: Type.String(), status: Type.Integer(), result: Type.Union([Type.Literal('success'), Type.Literal('failure')]),
  errorCode: Type.Union([Type.String(), Type.Null()]), ip: Type.Union([Type.String(), Type.Null()]),
});

export const IssuedToken = Type.Object({
  token: Type.String(), expiresAtMs: Type.Integer(),
  role: Type.Union([Type.Literal('admin'), Type.Literal('monitor'), Type.Literal('component')]),
});

export const IoToken = Type.Object({
  token: Type.String(), sdcId: Type.Integer(), volumeId: Type.Integer(), rights: Type.Union([Type.Literal('rw'), Type.Literal('ro')]),
  expiresAtMs: Type.Integer(),
});


/** The error answers every route may give (merged into each route's response schemas). */
export const ERROR_ANSWERS = { '4xx': ErrorBody, '5xx': ErrorBody } as const;

export const BackupInfo = Type.Object({
  name: Type.String(), path: Type.String(), createdAtMs: Type.Integer(), schemaVersion: Type.Integer(), bytes: Type.Integer(),
});
