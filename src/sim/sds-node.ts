/**
 * One simulated SDS: the real DataServer (routing, epoch and role checks,
 * forwarding, fencing, flush bookkeeping) and the real PgTable, over a
 * MemoryChunkStore; only the socket layer is replaced. Requests arrive as
 * frames through DataServer.dispatch with a stand-in connection; forwards
 * and MDM calls leave through the simulated network.
 */
import { crc32 } from '../shared/crc32.js';
import { pino } from 'pino';
import { replyHeader, Status, type ChunkRequest, type Frame, type FrameHeader, type MsgTypeValue, type StatusValue } from '../dataplane/proto.js';
import type { DataClientPool } from '../dataplane/client.js';
import { DataServer, type DataConnection } from '../sds/data-server.js';
import { forwardTimeoutMs, mdmCallTimeoutMs, pgMapPollIntervalMs } from '../sds/limits.js';
import { PgTable, type FenceResult, type PgMapSource, type PgMapUpdate } from '../sds/pg-table.js';
import { previousStop, type RunState } from '../sds/clean-stop.js';
import type { ChunkInfo, ChunkKey, ChunkStore, StoreCapacity, TreeChunk } from '../sds/store/chunk-store.js';
import { MemoryChunkStore } from '../sds/store/memory-store.js';
import { IdentityVolumeTrees } from '../sds/volume-trees.js';
import type { Network } from './network.js';
import type { Scheduler } from './scheduler.js';
import { tableEntry, type SimMdm } from './mdm.js';

const EMPTY = Buffer.alloc(0);
const silent = pino({ level: 'silent' });

/** One write (WRITE or ZERO) a store applied: who, which PG, at which epoch it believed. */
export interface AcceptedWrite {
  node: number;
  pg: number;
  epoch: number | undefined;
  atMs: number;
  /** The MDM had already taken this SDS out of the PG (a late write at an old epoch: harmless, its copy no longer counts). */
  afterFence?: boolean;
}

export interface SdsNodeOptions {
  /** Mutant for checker tests: forwarded writes are "answered" OK without being sent. */
  lyingForwards?: boolean;
  /** DataServerOptions.forwardCatchUpMs (default the real one). */
  forwardCatchUpMs?: number;
}

export class SimSds {
  readonly name: string;
  readonly store = new MemoryChunkStore();
  server!: DataServer;
  table!: PgTable;
  /** Forwards a secondary answered EPOCH_AHEAD (its map lags the primary's). */
  readonly epochAhead: Array<{ pg: number; sdsId: number }> = [];
  /** Fences this node asked for whose secondary's last answer was EPOCH_AHEAD / UNKNOWN_PG (a lagging map, not a failure). */
  readonly laggingFences: Array<{ pg: number; sdsId: number }> = [];
  /** Unclean restarts (after a power loss) this node reported at registration. */
  uncleanReports = 0;
  /** Last status of a forward to a secondary, by "pg/sdsId". */
  private readonly lastForward = new Map<string, number>();
  /** What survives a crash besides the store: the run-state file (src/sds/clean-stop.ts) and the machine's boot id. */
  private runState: RunState | undefined;
  private bootId = 'boot0';
  private boots = 0;
  /** Registered with the MDM in this incarnation (the real SDS has no id before). */
  private registered = false;

  get isRegistered(): boolean {
    return this.registered;
  }

  constructor(
    readonly id: number,
    private readonly sched: Scheduler,
    private readonly net: Network,
    private readonly mdm: SimMdm,
    private readonly peers: (name: string) => SimSds,
    private readonly accepted: AcceptedWrite[],
    private readonly o: SdsNodeOptions = {},
  ) {
    this.name = `sds${id}`;
    this.boot(true);
  }

  /** The process dies; with powerLoss the machine too (the store keeps only durable writes, a new boot id). */
  crash(powerLoss: boolean): void {
    if (!powerLoss) return;
    this.store.crash();
    this.bootId = `boot${++this.boots}`;
  }

  /**
   * A fresh process, as SdsNode.start runs it: empty map, no connections,
   * nothing in flight, the store is what survived. It judges its previous
   * run (previousStop), registers with the MDM (reporting an unclean stop),
   * and only then has an id to serve with; then it fetches the map and polls.
   * `running`: the cluster was up before the run, this SDS registered long ago.
   */
  boot(running = false): void {
    this.registered = false;
    this.table = new PgTable(this.mapSource(), this.sched.now);
    this.server = new DataServer({
      selfId: () => (this.registered ? this.id : undefined),
      store: new RecordingStore(this.store, (pg) => this.accepted.push({
        node: this.id, pg, epoch: this.table.get(pg)?.epoch, atMs: this.sched.nowMs, afterFence: !this.mdm.entry(pg).members.includes(this.id),
      })),
      pgs: this.table,
      tokens: { verify: () => undefined },
      trees: new IdentityVolumeTrees(),
      peers: this.peerPool(),
      log: silent,
      now: this.sched.now,
      sleep: (ms) => this.sched.sleep(ms, `fwd retry ${this.name}`),
      ...(this.o.forwardCatchUpMs !== undefined ? { forwardCatchUpMs: this.o.forwardCatchUpMs } : {}),
      // The simulated SDC sends no replica reads: without the acknowledgement hold they need, the seeds keep their schedules.
      replicaReadLeaseMs: 0,
    });
    void this.start(this.net.incarnation(this.name), running);
  }

  private async start(inc: number, running: boolean): Promise<void> {
    const alive = (): boolean => this.net.incarnation(this.name) === inc;
    if (running) {
      this.runState = { state: 'running', bootId: this.bootId, atMs: 0 };
      this.registered = true;
      this.pollMap(inc);
      return;
    }
    const prev = previousStop(this.runState, this.bootId, (await this.store.pgs()).length > 0);
    let unclean = !prev.clean;
    this.runState = { state: 'running', bootId: this.bootId, atMs: this.sched.nowMs, ...(unclean ? { unclean } : {}) };
    let delay = 200;
    for (;;) {
      if (!alive()) return;
      try {
        await this.net.call(this.name, 'mdm', `register${unclean ? ' unclean' : ''}`, mdmCallTimeoutMs, async () => this.mdm.register(this.id, !unclean));
        break;
      } catch {
        await this.sched.sleep(delay, `register retry ${this.name}`);
        delay = Math.min(delay * 2, 5_000);
      }
    }
    if (!alive()) return;
    if (unclean) {
      this.uncleanReports++;
      unclean = false;
      this.runState = { state: 'running', bootId: this.bootId, atMs: this.sched.nowMs };
    }
    this.registered = true;
    this.pollMap(inc);
  }

  private pollMap(inc: number): void {
    const table = this.table;
    const server = this.server;
    const poll = (): void => {
      if (this.net.incarnation(this.name) !== inc) return;
      const before = table.epoch;
      // As SdsNode.poll: a map change may leave this SDS alone in a PG.
      table.refresh().then(() => (table.epoch !== before ? server.secureSolePgs() : undefined)).catch(() => undefined);
      this.sched.at(pgMapPollIntervalMs, `poll ${this.name}`, poll);
    };
    poll();
  }

  /** Serves one request frame; resolves with the reply frame. */
  handle(f: Frame): Promise<Frame> {
    return new Promise((resolve) => {
      const table = this.table;
      const answer = (h: FrameHeader, payload: Buffer): void => resolve({ ...h, crc: 0, token: EMPTY, trace: EMPTY, payload });
      const conn = {
        reply(req: Frame, status: StatusValue, message: Buffer | string = EMPTY, epoch?: number): void {
          answer(replyHeader(req, status, 0, epoch ?? table.get(req.pgId)?.epoch ?? req.epoch), typeof message === 'string' ? Buffer.from(message) : message);
        },
        replyData(req: Frame, data: Buffer): void {
          answer(replyHeader(req, Status.OK, data.length), data);
        },
        protocolError(message: string): void {
          throw new Error(`simulated frame rejected as malformed: ${message}`);
        },
      };
      this.server.dispatch(conn as unknown as DataConnection, f);
    });
  }

  private mapSource(): PgMapSource {
    const call = <T>(label: string, fn: () => T): Promise<T> => this.net.call(this.name, 'mdm', label, mdmCallTimeoutMs, async () => fn());
    return {
      fetch: (since): Promise<PgMapUpdate> => call('map', () => this.mdm.update(since)),
      fence: (pg, sdsId, epoch): Promise<FenceResult> => call(`fence pg${pg} sds${sdsId}`, () => {
        const last = this.lastForward.get(`${pg}/${sdsId}`);
        if (last === Status.EPOCH_AHEAD || last === Status.UNKNOWN_PG) this.laggingFences.push({ pg, sdsId });
        const r = this.mdm.fence(pg, sdsId, epoch);
        return { entry: tableEntry(r.entry), fenced: r.fenced };
      }),
    };
  }

  private peerPool(): DataClientPool {
    const client = (address: string) => ({
      request: (type: MsgTypeValue, req: Omit<ChunkRequest, 'requestId'>, token: Buffer, payload: Buffer = EMPTY, trace: Buffer = EMPTY, crc?: number): Promise<Frame> => {
        const f = frameOf(type, req, token, payload, trace, crc);
        if (this.o.lyingForwards) return Promise.resolve({ ...replyHeader(f, Status.OK), crc: 0, token: EMPTY, trace: EMPTY, payload: EMPTY });
        return this.net.call(this.name, address, `fwd t${type} pg${req.pgId} e${req.epoch}`, forwardTimeoutMs, () => this.peers(address).handle(f))
          .then((reply) => {
            const sdsId = this.peers(address).id;
            if (reply.status === Status.EPOCH_AHEAD) this.epochAhead.push({ pg: req.pgId, sdsId });
            this.lastForward.set(`${req.pgId}/${sdsId}`, reply.status);
            return reply;
          }, (err: unknown) => {
            this.lastForward.delete(`${req.pgId}/${this.peers(address).id}`);
            throw err;
          });
      },
    });
    return { get: (address: string) => client(address) } as unknown as DataClientPool;
  }
}

let requestIds = 0;

export function frameOf(type: number, req: Omit<ChunkRequest, 'requestId'>, token: Buffer, payload: Buffer, trace: Buffer = EMPTY, crc?: number): Frame {
  return {
    type, flags: req.flags, requestId: (requestIds = (requestIds + 1) >>> 0), pgId: req.pgId, epoch: req.epoch, volumeId: req.volumeId,
    treeId: req.treeId, chunkIndex: req.chunkIndex, layerId: req.layerId, status: 0, offset: req.offset, length: req.length,
    crc: crc ?? (payload.length > 0 ? crc32(payload) : 0), token, trace, payload,
  };
}

/** The node's store, noting every write it applies (invariant: only acting members accept writes). */
class RecordingStore implements ChunkStore {
  constructor(private readonly inner: ChunkStore, private readonly onWrite: (pg: number) => void) {}
  write(pgId: number, key: ChunkKey, offset: number, data: Buffer, durable?: boolean, blockCrcs?: Uint32Array): Promise<void> {
    this.onWrite(pgId);
    return this.inner.write(pgId, key, offset, data, durable, blockCrcs);
  }
  read(pgId: number, key: ChunkKey, offset: number, length: number, crcOut?: { crc?: number }): Promise<Buffer | null> {
    return this.inner.read(pgId, key, offset, length, crcOut);
  }
  zero(pgId: number, key: ChunkKey, offset: number, length: number, durable?: boolean): Promise<void> {
    this.onWrite(pgId);
    return this.inner.zero(pgId, key, offset, length, durable);
  }
  flush(): Promise<void> { return this.inner.flush(); }
  stat(pgId: number, key: ChunkKey): Promise<ChunkInfo | null> { return this.inner.stat(pgId, key); }
  list(pgId: number): Promise<ChunkInfo[]> { return this.inner.list(pgId); }
  treeChunks(treeId: number): Promise<TreeChunk[]> { return this.inner.treeChunks(treeId); }
  pgs(): Promise<number[]> { return this.inner.pgs(); }
  dropPg(pgId: number): Promise<void> { return this.inner.dropPg(pgId); }
  capacity(): Promise<StoreCapacity> { return this.inner.capacity(); }
  close(): Promise<void> { return this.inner.close(); }
}
