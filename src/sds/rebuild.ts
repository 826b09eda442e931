/**
 * The copy side of rebuild, run by a PG's primary (the MDM starts it through
 * the control listener, src/sds/rebuild-routes.ts): push every chunk of the
 * PG to a joining member, then have the MDM make it a member.
 *
 * Consistency with racing writes: the joining member is in the PG entry, so
 * every client write is forwarded to it, and client writes hold their chunk's
 * lock (DataServer.locks) shared from routing until every replica answered.
 * The push of a chunk holds that lock exclusive while it reads the chunk and
 * until the joining member stored it: a racing write is either wholly before
 * the push (included in the image) or forwarded after it (applied on top).
 * The start (reset + listing) and the end (join at the MDM) hold the PG lock
 * exclusive, so no write routed with an older entry is still in flight and
 * chunks created later are forwarded ones. A forward that fails marks the
 * copy poisoned: it fails and the MDM retries it from scratch.
 *
 * Delta copy: the joining member may still hold old chunks of the PG (it
 * was a member before). They are untrusted: at the start (PG lock) it keeps
 * only the chunks the primary lists (join-keep), and under each chunk's lock
 * the primary compares its SHA-256 with the joining member's and pushes the
 * image only when they differ. A peer without join-keep gets a whole copy.
 */
import { createHash } from 'node:crypto';
import { PflexError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { DataServer } from './data-server.js';
import { controlAuthorization } from '../shared/control-auth.js';
import type { PgEntry, PgTable } from './pg-table.js';
import type { ChunkDigest, RebuildMode, SdsRebuildStatus, StartRebuild } from '../dataplane/rebuild-proto.js';
import {
  rebuildBurstBytesMax, rebuildDeltaChunksMax, rebuildEpochWaitMs, rebuildHistoryMax, rebuildPushTimeoutMs, rebuildRelistPassesMax,
  rebuildStartLockedTimeoutMs, rebuildYieldInflightBytes, rebuildYieldMs,
} from './rebuild-limits.js';
import { chunkName, type ChunkInfo, type ChunkKey, type ChunkStore } from './store/chunk-store.js';
import { peerHttp, type PeerHttp } from '../shared/tls.js';

export const pgLockKey = (pg: number): string => `p${pg}`;
export const chunkLockKey = (pg: number, k: ChunkKey): string => `c${pg}/${k.treeId}-${k.chunkIndex}-${k.layerId}`;

/** The digest both sides compare: SHA-256 (a CRC's collisions could keep a stale chunk). */
export function chunkSha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Bytes per second with a bounded burst; take() waits for its share. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(private rate: number, private readonly now: () => number = () => performance.now()) {
    this.tokens = Math.min(rate, rebuildBurstBytesMax);
    this.last = now();
  }

  setRate(rate: number): void {
    this.refill();
    this.rate = rate;
  }

  async take(bytes: number): Promise<void> {
    this.refill();
    this.tokens -= bytes; // may go negative: a chunk larger than the burst waits for its whole cost
    if (this.tokens < 0) await sleep((-this.tokens / this.rate) * 1000);
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(Math.min(this.rate, rebuildBurstBytesMax), this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
  }
}

export interface RebuildRunnerOptions {
  selfId: () => number | undefined;
  store: ChunkStore;
  pgs: PgTable;
  server: DataServer;
  clusterKey: Buffer;
  /** Our name as a caller of peers' control listeners ("sds:<name>"). */
  caller: string;
  /** How the joining member's control listener is called; default plain HTTP. */
  peer?: PeerHttp;
  /** Makes the joining member a member at the MDM (POST .../pgs/:pg/join); resolves with the new entry. */
  join: (poolId: number, pg: number, sdsId: number, epoch: number, progress: Progress) => Promise<PgEntry>;
  log: Logger;
  /** Delta copies (default true); false pushes every chunk whole, as before delta existed (benchmarks compare the two). */
  delta?: boolean;
}

interface Progress { chunksDone: number; chunksTotal: number; bytesDone: number; bytesTotal: number; mode: RebuildMode; bytesSkipped: number }
interface Job extends SdsRebuildStatus { cmd: StartRebuild; poisoned: boolean }

/** What became of one chunk of the listing. */
type ChunkOutcome = { kind: 'pushed'; bytes: number } | { kind: 'same' } | { kind: 'gone'; removed: boolean };

export class RebuildRunner {
  private readonly jobs = new Map<number, Job>();
  private readonly bucket: TokenBucket;
  private readonly peer: PeerHttp;

  constructor(private readonly o: RebuildRunnerOptions) {
    this.bucket = new TokenBucket(64 * 1024 * 1024);
    this.peer = o.peer ?? peerHttp(undefined);
  }

  /** Starts a copy (a repeated start of a known job is a no-op). */
  start(cmd: StartRebuild): SdsRebuildStatus {
    const known = this.jobs.get(cmd.jobId);
    if (known) return view(known);
    this.bucket.setRate(cmd.bandwidthBytesPerS);
    const job: Job = {
      cmd, jobId: cmd.jobId, pg: cmd.pg, targetSdsId: cmd.target.sdsId, state: 'running', poisoned: false,
      chunksDone: 0, chunksTotal: 0, bytesDone: 0, bytesTotal: 0, mode: 'full',
      chunksPushed: 0, bytesPushed: 0, chunksSkipped: 0, bytesSkipped: 0, chunksRemoved: 0, error: null,
    };
    this.jobs.set(cmd.jobId, job);
    this.prune();
    void this.run(job).then(
      () => {
        job.state = 'done';
        this.o.log.info({
          pg: job.pg, target: job.targetSdsId, mode: job.mode, chunks: job.chunksDone, pushed: job.chunksPushed, bytesPushed: job.bytesPushed,
          skipped: job.chunksSkipped, bytesSkipped: job.bytesSkipped, removed: job.chunksRemoved,
        }, 'rebuild copy done: member joined');
      },
      (err: unknown) => {
        job.state = 'failed';
        job.error = (err as Error).message;
        this.o.log.warn({ pg: job.pg, target: job.targetSdsId, err: job.error }, 'rebuild copy failed');
      },
    );
    return view(job);
  }

  list(): SdsRebuildStatus[] {
    return [...this.jobs.values()].map(view);
  }

  /** The data server could not forward a write to a joining member: its copy can no longer be trusted. */
  onJoinerFailure(pg: number, sdsId: number): void {
    for (const j of this.jobs.values()) if (j.pg === pg && j.targetSdsId === sdsId && j.state === 'running') j.poisoned = true;
  }

  private async run(job: Job): Promise<void> {
    const { cmd } = job;
    const entry = await this.entryAt(cmd.pg, cmd.epoch);
    const self = this.o.selfId();
    if (entry.members[0] !== self) throw new PflexError('PFLEX_ERR_CONFLICT', `not the primary of PG ${cmd.pg} at epoch ${cmd.epoch}`);
    if (!entry.joining?.includes(cmd.target.sdsId)) throw new PflexError('PFLEX_ERR_CONFLICT', `SDS ${cmd.target.sdsId} is not joining PG ${cmd.pg}`);
    const locks = this.o.server.locks;
    let chunks: ChunkInfo[];
    let kept = new Set<string>();
    // A first start outside the PG lock does the bulk of the joining member's work and proves it
    // answers: the start under the lock, which client writes to the PG wait for, is then quick,
    // and bounded by a short timeout (a silent member fails the copy instead of stalling IO).
    const warm = await this.begin(cmd, await this.o.store.list(cmd.pg), rebuildPushTimeoutMs);
    await locks.acquire(pgLockKey(cmd.pg), true);
    try {
      // Writes routed without the joining member have drained; every later one is forwarded to it,
      // so a chunk created after this listing reaches the joining member by forwarding.
      chunks = await this.o.store.list(cmd.pg);
      const begun = await this.begin(cmd, chunks, rebuildStartLockedTimeoutMs);
      job.mode = begun.mode;
      job.chunksRemoved = warm.removed + begun.removed;
      kept = begun.kept;
    } finally {
      locks.release(pgLockKey(cmd.pg), true);
    }
    job.chunksTotal = chunks.length;
    job.bytesTotal = chunks.reduce((a, c) => a + c.sizeBytes, 0);
    // Chunks whose pushed image the joining member holds (see pushNew).
    const imaged = new Set<string>();
    for (const c of chunks) {
      if (job.poisoned) throw new PflexError('PFLEX_ERR_UNAVAILABLE', 'a write could not be forwarded to the joining member');
      if (this.o.server.inflightBytes > rebuildYieldInflightBytes) await this.yieldToClients();
      if (job.mode === 'full') await this.bucket.take(c.sizeBytes);
      // Only a chunk the joining member kept is compared; any other one is pushed.
      const r = await this.copyChunk(cmd, c, kept.has(chunkName(c)));
      if (r.kind === 'pushed') {
        job.chunksPushed++;
        job.bytesPushed += r.bytes;
        this.o.server.metrics.rebuildChunksPushed++;
        this.o.server.metrics.rebuildBytesPushed += r.bytes;
        // Delta: charged after the fact (outside the chunk lock), so only what is sent is throttled.
        if (job.mode === 'delta') await this.bucket.take(r.bytes);
      } else if (r.kind === 'same') {
        job.chunksSkipped++;
        job.bytesSkipped += c.sizeBytes;
        this.o.server.metrics.rebuildBytesSkipped += c.sizeBytes;
      } else if (r.removed) {
        job.chunksRemoved++;
      }
      if (r.kind !== 'gone') imaged.add(chunkName(c));
      job.bytesDone += c.sizeBytes;
      job.chunksDone++;
    }
    for (let pass = 0; pass < rebuildRelistPassesMax && (await this.pushNew(cmd, job, imaged)) > 0; pass++);
    // Every image durable on the joining member before it becomes a member (later writes follow client FLUSH/FUA).
    await this.call(cmd.target, 'POST', `/pgs/${cmd.pg}/join-flush?epoch=${cmd.epoch}`, '{}', 'application/json');
    await locks.acquire(pgLockKey(cmd.pg), true);
    try {
      // No write is in flight: what appeared since the last pass is pushed now, and is durable before the join.
      if ((await this.pushNew(cmd, job, imaged)) > 0) {
        await this.call(cmd.target, 'POST', `/pgs/${cmd.pg}/join-flush?epoch=${cmd.epoch}`, '{}', 'application/json');
      }
      if (job.poisoned) throw new PflexError('PFLEX_ERR_UNAVAILABLE', 'a write could not be forwarded to the joining member');
      const now = this.o.pgs.get(cmd.pg);
      if (!now || now.epoch !== cmd.epoch) throw new PflexError('PFLEX_ERR_STALE_EPOCH', `PG ${cmd.pg} moved on from epoch ${cmd.epoch} during the copy`);
      const joined = await this.o.join(cmd.poolId, cmd.pg, cmd.target.sdsId, cmd.epoch, progressOf(job));
      this.o.pgs.setEntry(joined);
    } finally {
      locks.release(pgLockKey(cmd.pg), true);
    }
  }

  /**
   * Start of a copy, under the PG lock: a delta (the joining member keeps
   * only its old chunks that we list) where possible, else a whole copy
   * (it forgets the PG). Resolves with the mode used.
   */
  private async begin(cmd: StartRebuild, chunks: ChunkInfo[], timeoutMs: number): Promise<{ mode: 'full' | 'delta'; removed: number; kept: Set<string> }> {
    if ((this.o.delta ?? true) && chunks.length <= rebuildDeltaChunksMax) {
      const keys: number[] = [];
      for (const c of chunks) keys.push(c.treeId, c.chunkIndex, c.layerId);
      const r = await this.request(cmd.target, 'POST', `/pgs/${cmd.pg}/join-keep`, JSON.stringify({ epoch: cmd.epoch, keys }), 'application/json', timeoutMs);
      if (r.status !== 404) {
        const a = expectOk(r, 'POST join-keep') as { removed?: unknown; keys?: unknown };
        if (!Array.isArray(a.keys) || a.keys.length % 3 !== 0 || !a.keys.every((k) => Number.isSafeInteger(k))) {
          throw new PflexError('PFLEX_ERR_UNAVAILABLE', 'joining member answered join-keep with a malformed key list');
        }
        const keys = a.keys as number[];
        const kept = new Set<string>();
        for (let i = 0; i < keys.length; i += 3) kept.add(chunkName({ treeId: keys[i]!, chunkIndex: keys[i + 1]!, layerId: keys[i + 2]! }));
        return { mode: 'delta', removed: typeof a.removed === 'number' ? a.removed : 0, kept };
      }
      // A joining member without delta support (older version): whole copy.
    }
    expectOk(await this.request(cmd.target, 'POST', `/pgs/${cmd.pg}/join-reset`, JSON.stringify({ epoch: cmd.epoch }), 'application/json', timeoutMs), 'POST join-reset');
    return { mode: 'full', removed: 0, kept: new Set() };
  }

  /**
   * One chunk under its lock, so no client write to it is half-applied on
   * either side meanwhile. compare (the joining member kept an old copy): its
   * digest is compared with ours; the image is pushed only when they differ,
   * and its copy is removed when ours is gone (trimmed since the listing).
   */
  private async copyChunk(cmd: StartRebuild, c: ChunkInfo, compare: boolean): Promise<ChunkOutcome> {
    const key: ChunkKey = { treeId: c.treeId, chunkIndex: c.chunkIndex, layerId: c.layerId };
    const path = `/pgs/${cmd.pg}/images/${key.treeId}/${key.chunkIndex}/${key.layerId}?epoch=${cmd.epoch}`;
    const lockKey = chunkLockKey(cmd.pg, key);
    const locks = this.o.server.locks;
    await locks.acquire(lockKey, true);
    try {
      // Our read and the joining member's digest run at once (both sides are quiescent under the lock).
      const [data, theirs] = await Promise.all([
        this.readWhole(cmd.pg, key),
        compare ? this.request(cmd.target, 'GET', `/pgs/${cmd.pg}/digests/${key.treeId}/${key.chunkIndex}/${key.layerId}?epoch=${cmd.epoch}`).then((r) => asDigest(expectOk(r, 'GET digest'))) : undefined,
      ]);
      if (!data) {
        // Trimmed away since the listing; a copy the joining member still has would be stale.
        if (!theirs || theirs.sizeBytes === null) return { kind: 'gone', removed: false };
        await this.call(cmd.target, 'DELETE', path);
        return { kind: 'gone', removed: true };
      }
      if (theirs && ((theirs.sizeBytes === data.length && theirs.sha256 === chunkSha256(data)) || (data.length === 0 && theirs.sizeBytes === null))) {
        return { kind: 'same' };
      }
      await this.call(cmd.target, 'PUT', path, data, 'application/octet-stream');
      return { kind: 'pushed', bytes: data.length };
    } finally {
      locks.release(lockKey, true);
    }
  }

  /**
   * Pushes, whole, every chunk of the PG that appeared since the listing and
   * was not pushed yet; resolves with how many it pushed. Such a chunk was
   * created on the joining member by a forwarded write, and the first write
   * of a chunk into a layer with ancestors copies the nearest ancestor's
   * chunk there (src/sds/layered.ts): on the joining member that ancestor
   * may not have been copied yet (or was an old, stale copy kept for the
   * delta), so its copy-on-write had the wrong base. A pushed image is the
   * primary's whole chunk, and every later write applies on both sides to
   * the same bytes, so a chunk is pushed once. Layer 0 is a tree's root
   * (the MDM numbers layers from 1 after it): its chunks have no ancestor
   * and are right by forwarding alone.
   */
  private async pushNew(cmd: StartRebuild, job: Job, imaged: Set<string>): Promise<number> {
    const fresh = (await this.o.store.list(cmd.pg)).filter((c) => c.layerId !== 0 && !imaged.has(chunkName(c)));
    let pushed = 0;
    for (const c of fresh) {
      if (job.poisoned) throw new PflexError('PFLEX_ERR_UNAVAILABLE', 'a write could not be forwarded to the joining member');
      const r = await this.copyChunk(cmd, c, false);
      if (r.kind !== 'pushed') continue;
      imaged.add(chunkName(c));
      pushed++;
      job.chunksPushed++;
      job.bytesPushed += r.bytes;
      this.o.server.metrics.rebuildChunksPushed++;
      this.o.server.metrics.rebuildBytesPushed += r.bytes;
    }
    return pushed;
  }

  /** The chunk's bytes up to its size, or null when it does not exist. */
  private async readWhole(pg: number, key: ChunkKey): Promise<Buffer | null> {
    const info = await this.o.store.stat(pg, key);
    if (!info) return null;
    return info.sizeBytes === 0 ? Buffer.alloc(0) : this.o.store.read(pg, key, 0, info.sizeBytes);
  }

  private async yieldToClients(): Promise<void> {
    const until = performance.now() + rebuildYieldMs;
    while (this.o.server.inflightBytes > rebuildYieldInflightBytes && performance.now() < until) await sleep(2);
  }

  /** The PG entry at the epoch the MDM started the copy at (refreshing until we know it). */
  private async entryAt(pg: number, epoch: number): Promise<PgEntry> {
    const deadline = Date.now() + rebuildEpochWaitMs;
    for (;;) {
      const e = this.o.pgs.get(pg);
      if (e && e.epoch >= epoch) {
        if (e.epoch !== epoch) throw new PflexError('PFLEX_ERR_STALE_EPOCH', `PG ${pg} is at epoch ${e.epoch}, the copy was started at ${epoch}`);
        return e;
      }
      if (Date.now() > deadline) throw new PflexError('PFLEX_ERR_UNAVAILABLE', `PG ${pg} epoch ${epoch} not learned in time`);
      await this.o.pgs.refresh().catch(() => undefined);
      if ((this.o.pgs.get(pg)?.epoch ?? -1) < epoch) await sleep(100);
    }
  }

  private async call(target: StartRebuild['target'], method: string, path: string, body?: Buffer | string, type?: string): Promise<void> {
    expectOk(await this.request(target, method, path, body, type), `${method} ${path}`);
  }

  /** One control call to the joining member; rejects only when it cannot be reached. */
  private async request(target: StartRebuild['target'], method: string, path: string, body?: Buffer | string, type?: string, timeoutMs = rebuildPushTimeoutMs): Promise<Answer> {
    try {
      const res = await this.peer.fetch(`${this.peer.scheme}://${target.address}:${target.controlPort}${path}`, {
        method, ...(body !== undefined ? { body } : {}),
        headers: { authorization: controlAuthorization(this.o.clusterKey, this.o.caller), ...(type ? { 'content-type': type } : {}) },
        signal: AbortSignal.timeout(timeoutMs),
      });
      return { status: res.status, text: await res.text() };
    } catch (err) {
      throw new PflexError('PFLEX_ERR_UNAVAILABLE', `joining member ${target.address}:${target.controlPort} unreachable: ${(err as Error).message}`);
    }
  }

  private prune(): void {
    if (this.jobs.size <= rebuildHistoryMax) return;
    for (const [id, j] of this.jobs) {
      if (this.jobs.size <= rebuildHistoryMax) break;
      if (j.state !== 'running') this.jobs.delete(id);
    }
  }
}

interface Answer { status: number; text: string }

/** The parsed JSON body of a 2xx answer, else the joining member's refusal as an error. */
function expectOk(a: Answer, what: string): unknown {
  if (a.status < 200 || a.status > 299) throw new PflexError('PFLEX_ERR_UNAVAILABLE', `joining member answered ${what} with ${a.status}: ${a.text.slice(0, 200)}`);
  try {
    return a.text ? JSON.parse(a.text) as unknown : undefined;
  } catch {
    throw new PflexError('PFLEX_ERR_UNAVAILABLE', `joining member answered ${what} with a body that is not JSON`);
  }
}

function asDigest(v: unknown): ChunkDigest {
  const d = v as Partial<ChunkDigest> | undefined;
  const ok = d !== undefined && d !== null && (d.sizeBytes === null || Number.isSafeInteger(d.sizeBytes)) && (d.sha256 === null || typeof d.sha256 === 'string');
  if (!ok) throw new PflexError('PFLEX_ERR_UNAVAILABLE', 'joining member answered a digest request with a malformed body');
  return { sizeBytes: d.sizeBytes ?? null, sha256: d.sha256 ?? null };
}

function view(j: Job): SdsRebuildStatus {
  return {
    jobId: j.jobId, pg: j.pg, targetSdsId: j.targetSdsId, state: j.state,
    chunksDone: j.chunksDone, chunksTotal: j.chunksTotal, bytesDone: j.bytesDone, bytesTotal: j.bytesTotal, mode: j.mode,
    chunksPushed: j.chunksPushed, bytesPushed: j.bytesPushed, chunksSkipped: j.chunksSkipped, bytesSkipped: j.bytesSkipped, chunksRemoved: j.chunksRemoved,
    error: j.error,
  };
}

function progressOf(j: Job): Progress {
  return { chunksDone: j.chunksDone, chunksTotal: j.chunksTotal, bytesDone: j.bytesDone, bytesTotal: j.bytesTotal, mode: j.mode, bytesSkipped: j.bytesSkipped };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
