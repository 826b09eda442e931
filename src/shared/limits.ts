/**
 * The timings every component shares with the MDM, in one place: the MDM's
 * defaults (src/mdm/config.ts) and the SDS and SDC limits take them from here.
 */

/** Heartbeat period of SDS and SDC towards the MDM (the MDM's default expectation). */
export const heartbeatIntervalMs = 2_000;
/** Timeout of one call between the MDM and a component (either way). */
export const mdmCallTimeoutMs = 5_000;
/** Accepted distance between the timestamp of a cluster-key proof (component login, control call) and the clock checking it. */
export const componentAuthSkewMs = 5 * 60_000;
