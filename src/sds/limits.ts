/**
 * Every limit and default of the SDS, in one place (the data protocol's own
 * limits are in src/dataplane/limits.ts). Names carry their unit last
 * (TigerBeetle style).
 */
const MiB = 1024 * 1024;

/** Checksum granularity: one CRC32 word per block of this size. */
export const checksumBlockBytes = 4096;

/** Per data connection: requests being served at once before we stop reading from the socket. */
export const connectionInflightRequestsMax = 256;
/** Per data connection: payload bytes being served at once before we stop reading. */
export const connectionInflightBytesMax = 128 * MiB;
/** All connections together: payload bytes being served before connections stop being read. */
export const serverInflightBytesMax = 1024 * MiB;
/** All connections together: bytes of partial frames buffered; beyond it the connection adding more is closed. */
export const serverBufferedBytesMax = 1024 * MiB;
/** Data connections accepted at once; further ones are closed at accept. */
export const connectionsMax = 1024;
/** With TLS: a data connection must finish its handshake within this long. */
export const tlsHandshakeTimeoutMs = 10_000;
/** A connection that sends nothing for this long (and has nothing in flight) is closed. */
export const connectionIdleMs = 10 * 60_000;

/** The primary waits this long for a secondary before declaring it failed. */
export const forwardTimeoutMs = 5_000;
/**
 * Backoff between forwards to a secondary that answered EPOCH_AHEAD or
 * UNKNOWN_PG (its map lags ours; it refreshes on seeing the newer epoch):
 * doubling from min to max, within DataServerOptions.forwardCatchUpMs (default forwardTimeoutMs).
 */
export const forwardCatchUpDelayMsMin = 20;
export const forwardCatchUpDelayMsMax = 500;

/**
 * Replica reads: an acting secondary serves a read only while its PG map was
 * confirmed by the MDM less than this long ago (it polls every
 * pgMapPollIntervalMs), and a primary that learns of a member's removal holds
 * the PG's write acknowledgements this long (docs/sds.md "Replica reads").
 */
export const replicaReadLeaseMs = 3_000;

/** Open chunk files kept cached. */
export const openChunksMax = 256;

/**
 * A caller of refresh() shares the fetch in flight only if it started less
 * than this long ago: an older one may have been lost (an MDM partition that
 * has healed since) and would hold the caller until its timeout.
 */
export const refreshShareMsMax = 1_000;
/** How often the SDS polls the MDM for PG map changes. */
export const pgMapPollIntervalMs = 1_000;
/** Heartbeat period towards the MDM and the timeout of one MDM call: src/shared/limits.ts. */
export { heartbeatIntervalMs, mdmCallTimeoutMs } from '../shared/limits.js';

/** Default listening ports. */
export const defaultDataPort = 9700;
export const defaultControlPort = 9100;
export const defaultMgmtPort = 9200;
