/**
 * Every limit and default of the SDC, in one place (units last in the name).
 */

/** Default listening ports (DESIGN.md): NBD, control, management. */
export const defaultNbdPort = 8005;
export const defaultControlPort = 8003;
export const defaultMgmtPort = 8004;

/** An NBD request that cannot be completed (SDS down, map not ready...) fails with EIO after this long. */
export const ioTimeoutMsDefault = 30_000;
/** One data request to one SDS: after this long the SDS is treated as not answering. */
export const sdsRequestTimeoutMs = 10_000;
/** Pause between attempts of a piece that got a retryable refusal (grows to the max). */
export const retryDelayMsMin = 5;
export const retryDelayMsMax = 500;

/** The PG map is polled this often even when no request says it is stale. */
export const mapPollIntervalMs = 2_000;
/** Heartbeat period towards the MDM (also re-reads the mapped volumes), and the timeout of one MDM call: src/shared/limits.ts. */
export { heartbeatIntervalMs, mdmCallTimeoutMs } from '../shared/limits.js';

/** An IO token is renewed when less than this fraction of its lifetime is left. */
export const tokenRenewFraction = 0.5;

/** Chunks probed (one small READ each) for one BLOCK_STATUS request. */
export const blockStatusChunksMax = 64;
/** Chunks per volume remembered as stored (so BLOCK_STATUS skips their probe); 1M entries is a 1 TiB volume at 1 MiB chunks. */
export const storedChunksCachedMax = 1 << 20;

/** QoS token buckets hold this many seconds of their rate (the burst a mapping's limit allows). */
export const qosBurstSeconds = 0.1;
