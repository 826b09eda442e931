/**
 * Every limit and default of the SDS and of its data protocol, in one place.
 * Names carry their unit last (TigerBeetle style).
 */
const MiB = 1024 * 1024;

/** Largest payload one data frame may carry (a WRITE body or a READ reply). */
export const framePayloadBytesMax = 32 * MiB;
/** IO tokens are small HMAC capabilities; anything larger is malformed. */
export const frameTokenBytesMax = 1024;
/** W3C trace context in binary form (traceparent is 26 bytes); u8 length. */
export const frameTraceBytesMax = 255;

/** A chunk is at most this large; offset + length beyond it is a bad request. */
export const chunkBytesMax = 256 * MiB;
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

/** A client (SDC or a forwarding primary) gives up on a request after this long. */
export const clientRequestTimeoutMs = 30_000;
/** Connection attempt timeout of the data client. */
export const clientConnectTimeoutMs = 3_000;
/**
 * Liveness of a data connection (src/shared/dataclient.ts): with requests
 * outstanding and nothing received for livenessSilenceMs, the client PINGs
 * the peer on a side connection; when nothing at all (no byte on the data
 * connection, no PING reply) comes for livenessTimeoutMs more, the peer is
 * declared unreachable and every pending request fails as on a connection
 * loss. A silent peer is so detected in about 3.5-3.75 s; the request
 * timeouts stay as the backstop.
 */
export const clientLivenessSilenceMs = 1_500;
export const clientLivenessTimeoutMs = 2_000;
/** A gap this much longer than the sweep period means the client itself stalled: the peer is not blamed for it. */
export const clientStallMs = 1_000;

/** Open chunk files (data + checksum pairs) kept cached. */
export const openChunksMax = 256;

/**
 * A caller of refresh() shares the fetch in flight only if it started less
 * than this long ago: an older one may have been lost (an MDM partition that
 * has healed since) and would hold the caller until its timeout.
 */
export const refreshShareMsMax = 1_000;
/** How often the SDS polls the MDM for PG map changes. */
export const pgMapPollIntervalMs = 1_000;
/** Heartbeat period towards the MDM. */
export const heartbeatIntervalMs = 2_000;
/** Timeout of one MDM call from the SDS. */
export const mdmCallTimeoutMs = 5_000;

/** Default listening ports. */
export const defaultDataPort = 9700;
export const defaultControlPort = 9100;
export const defaultMgmtPort = 9200;
