/**
 * Every limit of the NBD server, in one place. A server may override any of
 * them (tests shorten the handshake timeout); units are last in the name.
 */
export interface NbdLimits {
  /** Largest READ/WRITE payload we accept (advertised as the maximum block size). */
  readonly requestBytesMax: number;
  /** Oversized WRITE payloads up to this size are read and discarded (EOVERFLOW); larger ones close the connection. */
  readonly writeDiscardBytesMax: number;
  /** Largest option payload during the handshake; larger closes the connection. */
  readonly optionBytesMax: number;
  /** Options accepted per handshake before we call it a denial of service. */
  readonly optionCountMax: number;
  /** Strings (export names, queries) in options (proto.md: MUST be no longer than 4096). */
  readonly stringBytesMax: number;
  /** Meta-context queries in one LIST/SET_META_CONTEXT option. */
  readonly metaQueryCountMax: number;
  /** Simultaneous connections per server; more are closed at accept. */
  readonly connectionsMax: number;
  /** Time from accept to the end of option haggling. */
  readonly handshakeTimeoutMs: number;
  /** Requests executing at once on one connection. */
  readonly inflightRequestsMax: number;
  /** Payload + reply bytes of the requests executing at once on one connection. */
  readonly inflightBytesMax: number;
  /** Reply bytes queued in the socket before we stop taking new requests. */
  readonly writeBufferBytesMax: number;
  /** Received bytes buffered ahead of the parser before we pause the socket. */
  readonly readBufferBytesMax: number;
  /** Descriptors in one BLOCK_STATUS reply. */
  readonly blockStatusExtentsMax: number;
  /** Requests parsed from already-received bytes before yielding to other connections. */
  readonly requestsPerTurnMax: number;
  /** On shutdown, how long in-flight requests may take before connections are cut. */
  readonly shutdownDrainMs: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_LIMITS: NbdLimits = {
  requestBytesMax: 32 * MiB,
  writeDiscardBytesMax: 128 * MiB,
  optionBytesMax: 64 * 1024,
  optionCountMax: 256,
  stringBytesMax: 4096,
  metaQueryCountMax: 128,
  connectionsMax: 1024,
  handshakeTimeoutMs: 10_000,
  inflightRequestsMax: 256,
  inflightBytesMax: 64 * MiB,
  writeBufferBytesMax: 16 * MiB,
  readBufferBytesMax: 2 * MiB,
  blockStatusExtentsMax: 4096,
  requestsPerTurnMax: 1024,
  shutdownDrainMs: 5_000,
};

/** Block sizes advertised with NBD_INFO_BLOCK_SIZE. */
export const BLOCK_SIZE_MIN = 1;
export const BLOCK_SIZE_PREFERRED = 4096;

export function resolveLimits(overrides: Partial<NbdLimits> = {}): NbdLimits {
  return { ...DEFAULT_LIMITS, ...overrides };
}
