/**
 * Every limit of the data protocol (frames, chunk ranges) and of its client,
 * in one place: shared by the SDS that serves it and the SDC and forwarding
 * primaries that speak it. Names carry their unit last (TigerBeetle style).
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

/** A client (SDC or a forwarding primary) gives up on a request after this long. */
export const clientRequestTimeoutMs = 30_000;
/** Connection attempt timeout of the data client. */
export const clientConnectTimeoutMs = 3_000;
/**
 * Liveness of a data connection (src/dataplane/client.ts): with requests
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
