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
/** Finished copies remembered for GET /rebuilds. */
export const rebuildHistoryMax = 512;
