/**
 * One SDS process: the chunk store, the data, control and management
 * listeners, and membership with the MDM (registration, heartbeats with
 * capacity, PG map polling, fencing through the MDM).
 */
import { join } from 'node:path';
import { readClusterKey } from '../shared/component-auth.js';
import { DataClientPool } from '../dataplane/client.js';
import { PflexError, isPflexError } from '../shared/errors.js';
import { IoTokenVerifier } from '../shared/iotoken.js';
import { deriveKey } from '../shared/keys.js';
import { scrapeAuthChecker } from '../shared/scrape-auth.js';
import type { Logger } from '../shared/logger.js';
import { MdmClient, componentAuth, type Sds } from '../shared/mdm-client.js';
import type { Span } from '../shared/tracing.js';
import { DataServer } from './data-server.js';
import { buildControlServer } from './control-server.js';
import { buildMgmtServer, type MgmtView } from './mgmt-server.js';
import { sdsPromMetrics } from './prom-metrics.js';
import { SdsMetrics } from './metrics.js';
import { PgTable, type FenceResult, type PgEntry, type PgMapSource, type PgMapUpdate } from './pg-table.js';
import { RebuildRunner } from './rebuild.js';
import { dropIfNotMember, rebuildRoutes } from './rebuild-routes.js';
import { FileChunkStore } from './store/file-store.js';
import { CachedVolumeTrees } from './volume-trees.js';
import { DeadTrees } from './dead-trees.js';
import { reclaimRoutes } from './reclaim-routes.js';
import { currentBootId, previousStop, readRunState, writeRunState, type PreviousStop } from './clean-stop.js';
import { forwardTimeoutMs, heartbeatIntervalMs, mdmCallTimeoutMs, pgMapPollIntervalMs } from './limits.js';
import type { FastifyInstance } from 'fastify';
import { mutualTls, peerHttp, type MutualTls, type TlsMaterial } from '../shared/tls.js';

export interface SdsNodeOptions {
  name: string;
  dataDir: string;
  mdmUrl: string;
  clusterKeyFile: string;
  protectionDomain: string;
  storagePool: string;
  faultSet?: string;
  /** Address peers and SDCs use to reach this SDS. */
  address: string;
  /** Address the listeners bind to. */
  host: string;
  dataPort: number;
  controlPort: number;
  mgmtPort: number;
  /** Capacity offered to the pool; default the size of the file system. */
  capacityBytes?: number;
  /** TLS: HTTPS listeners, peers and the MDM called over TLS trusting tls.ca. */
  tls?: TlsMaterial;
  log: Logger;
}

/** The PG map of our pool, from the MDM; usable once registration told us the pool. */
class MdmPgMapSource implements PgMapSource {
  poolId: number | undefined;

  constructor(private readonly client: MdmClient) {}

  async fetch(sinceEpoch: number | undefined): Promise<PgMapUpdate> {
    const poolId = this.pool();
    const m = await this.client.getPgMap(poolId, sinceEpoch);
    return { epoch: m.epoch, pgs: m.pgs, sds: m.sds.map((s) => ({ id: s.id, address: s.address, dataPort: s.dataPort })) };
  }

  async fence(pg: number, sdsId: number, epoch: number, parent?: Span): Promise<FenceResult> {
    const a = await this.client.fencePgMember(this.pool(), pg, sdsId, epoch, parent);
    return { entry: a.pg, fenced: a.fenced };
  }

  private pool(): number {
    if (this.poolId === undefined) throw new PflexError('PFLEX_ERR_UNAVAILABLE', 'the SDS is not registered with the MDM yet');
    return this.poolId;
  }
}

export class SdsNode {
  readonly metrics = new SdsMetrics();
  sds: Sds | undefined;
  ports = { data: 0, control: 0, mgmt: 0 };
  /** The pending timer of each periodic loop (one per loop: a timer leaves the set when it fires). */
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopping = false;
  private store!: FileChunkStore;
  private data!: DataServer;
  private control!: ReturnType<typeof buildControlServer>;
  private mgmt!: ReturnType<typeof buildMgmtServer>;
  private rebuild!: RebuildRunner;
  /** Mutual TLS of the data port and of forwards to peers (on with the SDS's TLS). */
  private readonly dataTls: MutualTls | undefined;
  private readonly peers: DataClientPool;
  private readonly mdm: MdmClient;
  private readonly source: MdmPgMapSource;
  readonly pgs: PgTable;
  private readonly clusterKey: Buffer;
  private readonly log: Logger;
  private readonly bootId = currentBootId();
  /** How the previous run ended (src/sds/clean-stop.ts); an unclean one is reported at registration. */
  previous: PreviousStop | undefined;
  /** The unclean stop is not yet reported to the MDM (kept in the run-state file until it is). */
  private uncleanPending = false;

  constructor(private readonly o: SdsNodeOptions) {
    this.log = o.log;
    this.clusterKey = readClusterKey(o.clusterKeyFile);
    this.dataTls = mutualTls(o.tls, 'the SDS data plane');
    this.peers = new DataClientPool({ requestTimeoutMs: forwardTimeoutMs, tls: this.dataTls });
    this.mdm = new MdmClient({ url: o.mdmUrl, componentAuth: componentAuth('sds', o.name, this.clusterKey), timeoutMs: mdmCallTimeoutMs, ...(o.tls?.ca ? { ca: o.tls.ca } : {}) });
    this.source = new MdmPgMapSource(this.mdm);
    this.pgs = new PgTable(this.source);
  }

  /** Opens the store and listens; registration and the loops continue in the background. */
  async start(): Promise<void> {
    const o = this.o;
    this.store = await FileChunkStore.open({
      root: join(o.dataDir, 'chunks'),
      ...(o.capacityBytes !== undefined ? { capacityBytes: o.capacityBytes } : {}),
      onChecksumError: (a) => {
        this.metrics.checksumErrors++;
        this.log.error({ alert: 'checksum', pg: a.pgId, chunk: a.key, blockOffset: a.blockOffset }, 'stored block failed its checksum: refusing to return it');
      },
      onConverted: (c) => this.log.info({ pg: c.pgId, chunks: c.chunks, ms: c.ms }, 'chunk store: PG converted from the two-file layout (.dat + .crc) to one file per chunk'),
    });
    // Before any write is accepted: judge the previous run, then mark this one running.
    this.previous = previousStop(await readRunState(o.dataDir), this.bootId, (await this.store.pgs()).length > 0);
    this.uncleanPending = !this.previous.clean;
    await this.writeRunState('running');
    if (!this.previous.clean) this.log.warn({ reason: this.previous.reason }, 'previous run did not stop cleanly: un-flushed writes may be lost; the MDM will fence this SDS out of its PGs (they are rebuilt)');
    const deadTrees = await DeadTrees.open(o.dataDir);
    const trees = new CachedVolumeTrees(async (volumeId) => {
      try {
        const v = await this.mdm.getVolume(volumeId);
        return { treeId: v.volumeTreeId, layerId: v.layerId, chain: v.layerChain };
      } catch (err) {
        if (isPflexError(err) && err.code === 'PFLEX_ERR_NOT_FOUND') return undefined;
        throw err;
      }
    });
    this.data = new DataServer({
      selfId: () => this.sds?.id, store: this.store, pgs: this.pgs, tokens: new IoTokenVerifier(deriveKey(this.clusterKey, 'io-token')),
      trees, deadTrees, peers: this.peers, log: this.log, metrics: this.metrics, tls: this.dataTls,
      onJoinerFailure: (pg, sdsId) => this.rebuild.onJoinerFailure(pg, sdsId),
    });
    const peer = peerHttp(o.tls);
    this.control = buildControlServer({ store: this.store, clusterKey: this.clusterKey, caller: `sds:${o.name}`, log: this.log, tls: o.tls, peer, trees, deadTrees });
    this.rebuild = new RebuildRunner({
      selfId: () => this.sds?.id, store: this.store, pgs: this.pgs, server: this.data, clusterKey: this.clusterKey, caller: `sds:${o.name}`, peer, log: this.log,
      join: async (poolId, pg, sdsId, epoch, progress) => (await this.mdm.request<{ pg: PgEntry }>('POST', `/storage-pools/${poolId}/pgs/${pg}/join`, { body: { sdsId, epoch, progress } })).pg,
    });
    await this.control.register(rebuildRoutes({ selfId: () => this.sds?.id, store: this.store, pgs: this.pgs, server: this.data, runner: this.rebuild, deadTrees, log: this.log }));
    await this.control.register(reclaimRoutes({ store: this.store, server: this.data, deadTrees, log: this.log }));
    const view = (): MgmtView => this.view();
    this.mgmt = buildMgmtServer(this.clusterKey, this.log, o.tls, view, { registry: sdsPromMetrics(view, { processMetrics: true }), authorized: scrapeAuthChecker(this.clusterKey) });
    this.ports.data = await this.data.listen(o.dataPort, o.host);
    await this.control.listen({ port: o.controlPort, host: o.host });
    this.ports.control = portOf(this.control.server.address());
    await this.mgmt.listen({ port: o.mgmtPort, host: o.host });
    this.ports.mgmt = portOf(this.mgmt.server.address());
    this.log.info({ port: this.ports.data, controlPort: this.ports.control, mgmtPort: this.ports.mgmt, name: o.name }, 'sds listening');
    void this.registerLoop();
  }

  /** The HTTP listeners by name (the route-walking test reads their routes). */
  httpListeners(): Record<'control' | 'mgmt', FastifyInstance> {
    return { control: this.control as unknown as FastifyInstance, mgmt: this.mgmt };
  }

  /** Graceful stop: listeners closed, every write flushed, then the run is marked stopped (a clean stop). */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    // The data server first: requests still being forwarded keep their peer
    // connections (closing those first would fail the forwards), and a
    // closing server never fences a peer (DataServer.fence).
    await Promise.allSettled([this.data?.close(), this.control?.close(), this.mgmt?.close()]);
    this.peers.closeAll();
    if (!this.store) return;
    let flushed = true;
    await this.store.flush().catch((err: unknown) => {
      flushed = false;
      this.log.error({ err: (err as Error).message }, 'final flush failed: this stop counts as unclean');
    });
    await this.store.close();
    if (flushed) await this.writeRunState('stopped').catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'could not record the clean stop'));
  }

  private writeRunState(state: 'running' | 'stopped'): Promise<void> {
    return writeRunState(this.o.dataDir, {
      state, atMs: Date.now(), ...(this.bootId !== undefined ? { bootId: this.bootId } : {}), ...(this.uncleanPending ? { unclean: true } : {}),
    });
  }

  /** Registers (retrying while the MDM is unreachable), then starts heartbeats and map polling. */
  private async registerLoop(): Promise<void> {
    let delayMs = 200;
    while (!this.stopping) {
      try {
        const capacity = await this.store.capacity();
        const o = this.o;
        this.sds = await this.mdm.registerSds({
          name: o.name, protectionDomainName: o.protectionDomain, storagePoolName: o.storagePool,
          ...(o.faultSet !== undefined ? { faultSetName: o.faultSet } : {}),
          address: o.address, dataPort: this.ports.data, controlPort: this.ports.control, mgmtPort: this.ports.mgmt,
          capacityBytes: capacity.totalBytes, cleanStop: !this.uncleanPending,
        });
        if (this.uncleanPending) {
          // The MDM has fenced us out of our PGs: the report need not survive another restart.
          this.uncleanPending = false;
          await this.writeRunState('running');
        }
        break;
      } catch (err) {
        this.log.warn({ err: (err as Error).message, retryInMs: delayMs }, 'registration with the MDM failed');
        await sleep(delayMs);
        delayMs = Math.min(delayMs * 2, 5000);
      }
    }
    if (this.stopping || !this.sds) return;
    this.source.poolId = this.sds.storagePoolId;
    this.log.info({ sdsId: this.sds.id, storagePoolId: this.sds.storagePoolId }, 'sds registered');
    await this.pgs.refresh().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'PG map fetch failed'));
    await this.reconcile();
    this.loop(() => this.heartbeat(), heartbeatIntervalMs);
    this.loop(() => this.poll(), pgMapPollIntervalMs);
  }

  private async heartbeat(): Promise<void> {
    const cap = await this.store.capacity();
    await this.mdm.sdsHeartbeat(this.sds!.id, { usedBytes: cap.usedBytes, capacityBytes: cap.totalBytes, io: this.metrics.io() });
  }

  private async poll(): Promise<void> {
    const before = this.pgs.epoch;
    await this.pgs.refresh();
    if (this.pgs.epoch !== before) {
      this.log.info({ epoch: this.pgs.epoch, previous: before }, 'PG map changed');
      await this.data.secureSolePgs();
      await this.reconcile();
    }
  }

  /**
   * Drops the data of PGs this SDS holds but no longer belongs to (it was
   * DOWN and evicted, or a rebalance moved the PG away): a returning SDS never
   * keeps a stale copy; if the PG comes back to it, it joins with a full copy.
   */
  private async reconcile(): Promise<void> {
    if (this.pgs.epoch === undefined) return;
    for (const pg of await this.store.pgs()) {
      const e = this.pgs.get(pg);
      const self = this.sds?.id;
      if (!e || self === undefined || e.members.includes(self) || e.joining?.includes(self)) continue;
      await dropIfNotMember({ selfId: () => this.sds?.id, store: this.store, pgs: this.pgs, server: this.data, log: this.log }, pg, false);
    }
  }

  /** Runs fn every intervalMs (after it finishes), logging failures. */
  private loop(fn: () => Promise<void>, intervalMs: number): void {
    const schedule = (): void => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (this.stopping) return;
        fn().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'periodic MDM call failed')).finally(() => {
          if (!this.stopping) schedule();
        });
      }, intervalMs);
      this.timers.add(timer);
    };
    schedule();
  }

  private view(): MgmtView {
    const id = this.sds?.id;
    let primary = 0;
    let secondary = 0;
    if (id !== undefined) {
      for (const e of this.pgs.pgsOf(id)) {
        if (e.members[0] === id) primary++;
        else secondary++;
      }
    }
    return {
      name: this.o.name, sdsId: id, storagePoolId: this.sds?.storagePoolId, mapEpoch: this.pgs.epoch,
      pgs: { primary, secondary }, capacity: () => this.store.capacity(), metrics: this.metrics,
      problems: () => [
        ...(id === undefined ? ['not registered with the MDM'] : []),
        ...(this.metrics.checksumErrors > 0 ? [`${this.metrics.checksumErrors} stored blocks failed their checksum`] : []),
      ],
    };
  }
}

function portOf(addr: ReturnType<import('node:net').Server['address']>): number {
  return typeof addr === 'object' && addr ? addr.port : 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
