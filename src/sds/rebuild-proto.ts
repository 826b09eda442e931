/**
 * The rebuild commands of the SDS control listener (JSON over HTTP, cluster-key
 * authorization as every control call), shared by the MDM that sends them and
 * the SDS that serves them.
 *
 *   POST /rebuilds                              (to the PG's primary) start pushing a PG to a joining member
 *   GET  /rebuilds                              (primary) the copies it runs or ran lately, with progress
 *   POST /pgs/:pg/join-reset       {epoch}      (primary -> joining member) forget the PG's data before the copy
 *   PUT  /pgs/:pg/images/:tree/:index/:layer    (primary -> joining member) the whole chunk, raw bytes
 *   POST /pgs/:pg/join-flush                    (primary -> joining member) make every image durable
 *   POST /pgs/:pg/release          {}           (MDM -> former member) drop the PG's data if no longer a member
 */

export interface PeerControl {
  sdsId: number;
  address: string;
  controlPort: number;
}

export interface StartRebuild {
  /** MDM job id (idempotency key: a repeated start of a running job is a no-op). */
  jobId: number;
  poolId: number;
  pg: number;
  /** PG epoch at which the target became a joining member. */
  epoch: number;
  target: PeerControl;
  /** Copy bandwidth of this SDS (token bucket shared by all its copies). */
  bandwidthBytesPerS: number;
}

export type SdsRebuildState = 'running' | 'done' | 'failed';

export interface SdsRebuildStatus {
  jobId: number;
  pg: number;
  targetSdsId: number;
  state: SdsRebuildState;
  chunksDone: number;
  chunksTotal: number;
  bytesDone: number;
  bytesTotal: number;
  error: string | null;
}
