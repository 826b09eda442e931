/**
 * Limits of the SDS side of rebuild (the MDM side is in src/mdm/config.ts:
 * rebuildBandwidthBytesPerS, rebuildConcurrentPgsMax). Units come last.
 */

/** Token bucket burst: at most this many bytes may be sent at once after an idle spell. */
export const rebuildBurstBytesMax = 4 * 1024 * 1024;
/** Client IO first: while client requests hold more than this many bytes in flight, the copy waits... */
export const rebuildYieldInflightBytes = 8 * 1024 * 1024;
/** ...but never longer than this per chunk (the copy must progress under constant load). */
export const rebuildYieldMs = 200;
/** How long a copy waits to learn the PG epoch the MDM started it at. */
export const rebuildEpochWaitMs = 5_000;
/** Timeout of one chunk push to the joining member. */
export const rebuildPushTimeoutMs = 30_000;
/**
 * Timeout of the start call (join-keep / join-reset) made under the PG lock,
 * which client writes to the PG wait for; it follows the same call made
 * outside the lock, so the joining member has just shown it answers.
 */
export const rebuildStartLockedTimeoutMs = 3_000;
/** Finished copies remembered for GET /rebuilds. */
export const rebuildHistoryMax = 512;
/**
 * Delta copy: a PG with more chunks than this is copied whole (the key list
 * the joining member checks its old chunks against is one request).
 */
export const rebuildDeltaChunksMax = 262_144;
/** Body limit of that key list (JSON, three integers per chunk). */
export const rebuildKeyListBytesMax = 16 * 1024 * 1024;
/**
 * How long an SDS keeps the data of a PG it left while that PG is degraded
 * (it may be planned back here and copied as a delta). Never served; after
 * this, or as soon as the PG is whole or copied elsewhere, it is dropped.
 */
export const rebuildStaleKeepMs = 10 * 60_000;
/**
 * After the pass over the listing, the copy re-lists the PG and pushes the
 * chunks that appeared meanwhile (docs/rebuild.md, "Layers created during a
 * copy"), until a listing brings nothing new or after this many passes; one
 * last listing is then done under the PG lock.
 */
export const rebuildRelistPassesMax = 4;
