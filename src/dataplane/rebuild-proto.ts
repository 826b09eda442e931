/**
 * The rebuild commands of the SDS control listener (JSON over HTTP, cluster-key
 * authorization as every control call), shared by the MDM that sends them and
 * the SDS that serves them.
 *
 *   POST /rebuilds                              (to the PG's primary) start pushing a PG to a joining member
 *   GET  /rebuilds                              (primary) the copies it runs or ran lately, with progress
 *   POST /pgs/:pg/join-reset       {epoch}      (primary -> joining member) forget the PG's data before a whole copy
 *   POST /pgs/:pg/join-keep        {epoch, keys} (primary -> joining member) delta copy: keep only the chunks listed
 *                                               (keys: [tree, index, layer, ...] flat) -> {keys: the ones it kept, removed}
 *   GET  /pgs/:pg/digests/:tree/:index/:layer   (primary -> joining member) its copy: ChunkDigest
 *   PUT  /pgs/:pg/images/:tree/:index/:layer    (primary -> joining member) the whole chunk, raw bytes (replaces its copy)
 *   DELETE /pgs/:pg/images/:tree/:index/:layer  (primary -> joining member) remove its copy (the primary has none)
 *   POST /pgs/:pg/join-flush                    (primary -> joining member) make every image durable
 *   POST /pgs/:pg/release          {}           (MDM -> former member) drop the PG's data if no longer a member
 *
 * digests, images and join-flush take ?epoch=<the copy's epoch>: refused unless
 * the SDS is joining the PG at exactly that epoch (omitted by older primaries).
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

/** A joining member's copy of one chunk: SHA-256 over its bytes (0..sizeBytes); nulls when it has no readable copy. */
export interface ChunkDigest {
  sizeBytes: number | null;
  sha256: string | null;
}

/** full: join-reset, every chunk pushed; delta: old chunks kept where their digest matches (docs/rebuild.md). */
export type RebuildMode = 'full' | 'delta';

export type SdsRebuildState = 'running' | 'done' | 'failed';

export interface SdsRebuildStatus {
  jobId: number;
  pg: number;
  targetSdsId: number;
  state: SdsRebuildState;
  /** Progress over the primary's listing: chunks (and their bytes) done, whether pushed or found identical. */
  chunksDone: number;
  chunksTotal: number;
  bytesDone: number;
  bytesTotal: number;
  mode: RebuildMode;
  /** Chunks sent as images, and their bytes. */
  chunksPushed: number;
  bytesPushed: number;
  /** Chunks the joining member already had byte for byte (delta): not sent; bytesSkipped is the bytes saved. */
  chunksSkipped: number;
  bytesSkipped: number;
  /** Old chunks the joining member removed: the primary no longer has them (deleted or trimmed while it was away, or since the listing). */
  chunksRemoved: number;
  error: string | null;
}
