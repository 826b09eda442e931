/**
 * One SDC process: the NBD server whose exports are the volumes mapped to
 * this SDC, one VolumeBackend per volume (shared by all connections to it,
 * so a flush on one connection covers writes from every connection), the
 * control and management listeners, and membership with the MDM
 * (registration, heartbeats, mapped volumes, PG maps of their pools).
 */
import type { NbdExport } from '../nbd/backend.js';
import { NbdServer } from '../nbd/server.js';
import { readClusterKey } from '../shared/component-auth.js';
import { DataClientPool } from '../dataplane/client.js';
import type { Logger } from '../shared/logger.js';
import { MdmClient, componentAuth, type Sdc, type Volume } from '../shared/mdm-client.js';
import { scrapeAuthChecker } from '../shared/scrape-auth.js';
import { buildControlServer, buildMgmtServer, type ExportView, type SdcView } from './listeners.js';
import { heartbeatIntervalMs, ioTimeoutMsDefault, mapPollIntervalMs, mdmCallTimeoutMs, sdsRequestTimeoutMs } from './limits.js';
import { PoolMap } from './pool-map.js';
import { QosLimiter } from './qos.js';
import { sdcPromMetrics } from './prom-metrics.js';
import { VolumeToken } from './tokens.js';
import { VolumeBackend } from './volume-backend.js';
import type { FastifyInstance } from 'fastify';
import { mutualTls, serverTlsOptions, type TlsMaterial } from '../shared/tls.js';

export interface SdcNodeOptions {
  name: string;
  /** Identity towards the MDM (component login name); default the name. */
  guid?: string;
  mdmUrl: string;
  clusterKeyFile: string;
  /** Address the listeners bind to. */
  host: string;
  /** Address reported to the MDM. */
  address?: string;
  port: number;
  controlPort: number;
  mgmtPort: number;
  /** Volume served for the empty export name; default the only mapped volume. */
  defaultVolume?: string;
  ioTimeoutMs?: number;
  /** TLS: HTTPS listeners, NBD STARTTLS, the MDM called over TLS trusting tls.ca. */
  tls?: TlsMaterial;
  /** Reads spread over every acting member (VolumeBackendDeps.replicaReads). */
  replicaReads?: boolean;
  /** With tls: NBD clients must STARTTLS (default) or may stay plain text. */
  nbdTls?: 'require' | 'optional';
  /** With tls: NBD clients must present a certificate of the cluster CA (tls.ca). */
  nbdTlsVerifyPeer?: boolean;
  log: Logger;
}

interface Mapped {
  volume: Volume;
  readOnly: boolean;
}

interface Served {
  exp: NbdExport;
  backend: VolumeBackend;
}

export class SdcNode {
  sdc: Sdc | undefined;
  ports = { nbd: 0, control: 0, mgmt: 0 };
  /** Data connections to the SDSs: mutual TLS when the SDC runs TLS (its certificate is its client identity). */
  readonly clients: DataClientPool;
  private readonly mdm: MdmClient;
  private readonly clusterKey: Buffer;
  private readonly log: Logger;
  private readonly guid: string;
  private readonly ioTimeoutMs: number;
  /** Mapped volumes by name, as of the last rescan. */
  private mapped = new Map<string, Mapped>();
  private readonly served = new Map<number, Served>();
  private readonly tokens = new Map<number, VolumeToken>();
  private readonly maps = new Map<number, PoolMap>();
  private readonly qos = new Map<number, QosLimiter>();
  private rescanning: Promise<void> | null = null;
  private rescansStarted = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopping = false;
  private nbd!: NbdServer;
  private control!: ReturnType<typeof buildControlServer>;
  private mgmt!: ReturnType<typeof buildMgmtServer>;

  constructor(private readonly o: SdcNodeOptions) {
    this.log = o.log;
    this.guid = o.guid ?? o.name;
    this.ioTimeoutMs = o.ioTimeoutMs ?? ioTimeoutMsDefault;
    this.clusterKey = readClusterKey(o.clusterKeyFile);
    this.clients = new DataClientPool({ requestTimeoutMs: sdsRequestTimeoutMs, tls: mutualTls(o.tls, 'the SDC data plane') });
    this.mdm = new MdmClient({ url: o.mdmUrl, componentAuth: componentAuth('sdc', this.guid, this.clusterKey), timeoutMs: mdmCallTimeoutMs, ...(o.tls?.ca ? { ca: o.tls.ca } : {}) });
  }

  async start(): Promise<void> {
    const o = this.o;
    this.nbd = new NbdServer({
      lookup: (name) => this.lookup(name),
      list: () => this.listExports(),
      logger: this.log,
      ...(o.tls ? { tls: { options: serverTlsOptions(o.tls), required: o.nbdTls !== 'optional', verifyPeer: o.nbdTlsVerifyPeer ?? false } } : {}),
    });
    const view = this.view();
    this.control = buildControlServer(this.log, this.clusterKey, o.tls, view);
    this.mgmt = buildMgmtServer(this.log, this.clusterKey, o.tls, view, { registry: sdcPromMetrics(view, { processMetrics: true }), authorized: scrapeAuthChecker(this.clusterKey) });
    this.ports.nbd = (await this.nbd.listen(o.port, o.host)).port;
    await this.control.listen({ port: o.controlPort, host: o.host });
    this.ports.control = portOf(this.control.server.address());
    await this.mgmt.listen({ port: o.mgmtPort, host: o.host });
    this.ports.mgmt = portOf(this.mgmt.server.address());
    this.log.info({ port: this.ports.nbd, controlPort: this.ports.control, mgmtPort: this.ports.mgmt, name: o.name }, 'sdc listening');
    void this.registerLoop();
  }

  /** The HTTP listeners by name (the route-walking test reads their routes). */
  httpListeners(): Record<'control' | 'mgmt', FastifyInstance> {
    return { control: this.control as unknown as FastifyInstance, mgmt: this.mgmt };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    await Promise.allSettled([this.nbd?.close(), this.control?.close(), this.mgmt?.close()]);
    for (const s of this.served.values()) await s.backend.close();
    for (const q of this.qos.values()) q.close();
    this.clients.closeAll();
  }

  private async registerLoop(): Promise<void> {
    let delayMs = 200;
    while (!this.stopping) {
      try {
        this.sdc = await this.mdm.registerSdc({ guid: this.guid, name: this.o.name, address: this.reportedAddress(), controlPort: this.ports.control });
        break;
      } catch (err) {
        this.log.warn({ err: (err as Error).message, retryInMs: delayMs }, 'registration with the MDM failed');
        await sleep(delayMs);
        delayMs = Math.min(delayMs * 2, 5000);
      }
    }
    if (this.stopping || !this.sdc) return;
    this.log.info({ sdcId: this.sdc.id, guid: this.guid }, 'sdc registered');
    await this.rescan().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'reading the mapped volumes failed'));
    this.loop(() => this.heartbeat(), heartbeatIntervalMs);
    this.loop(() => this.pollMaps(), mapPollIntervalMs);
  }

  /** Where the MDM reaches our control listener (to quiesce writes around snapshots). */
  private reportedAddress(): string {
    if (this.o.address) return this.o.address;
    return this.o.host === '0.0.0.0' || this.o.host === '::' ? '127.0.0.1' : this.o.host;
  }

  /** The MDM's quiesce for a snapshot cut: writes of these volumes wait, those in flight are answered first. */
  async quiesce(volumeIds: number[], holdMs: number): Promise<void> {
    await Promise.all([...this.served.values()].filter((s) => volumeIds.includes(s.backend.volume.id)).map((s) => s.backend.quiesce(holdMs)));
  }

  /** After the cut: the volumes' new layers; writes go on there. */
  resume(volumes: Array<{ id: number; layerId: number }>): void {
    for (const v of volumes) {
      for (const m of this.mapped.values()) if (m.volume.id === v.id) m.volume = { ...m.volume, layerId: v.layerId };
      const s = this.served.get(v.id);
      if (s) s.backend.resume(v.layerId);
    }
  }

  private async heartbeat(): Promise<void> {
    const volumes = [...this.served.entries()].map(([volumeId, sv]) => ({ volumeId, ...sv.backend.stats.io() }));
    await this.mdm.sdcHeartbeat(this.sdc!.id, volumes);
    await this.rescan();
  }

  private async pollMaps(): Promise<void> {
    await Promise.all([...this.maps.values()].map((m) => m.refresh()));
  }

  /** Re-reads which volumes are mapped here (concurrent callers share one read). */
  rescan(): Promise<void> {
    if (!this.rescanning) {
      this.rescansStarted++;
      this.rescanning = this.doRescan().finally(() => { this.rescanning = null; });
    }
    return this.rescanning;
  }

  /**
   * A rescan that started after the caller counted `started` rescans: one
   * already in flight may have read the MDM before a mapping the caller
   * depends on was made (map a volume, attach at once).
   */
  private async rescanAfter(started: number): Promise<void> {
    for (;;) {
      const inflight = this.rescanning;
      if (inflight && this.rescansStarted > started) return inflight;
      if (inflight) {
        await inflight.catch(() => undefined);
        continue;
      }
      if (this.rescansStarted > started) return;
      return this.rescan();
    }
  }

  private async doRescan(): Promise<void> {
    if (!this.sdc) return;
    const sdc = await this.mdm.getSdc(this.sdc.id);
    const modes = new Map(sdc.mappings.map((m) => [m.volumeId, m.accessMode]));
    const volumes = modes.size === 0 ? [] : await this.mdm.listVolumes();
    const mapped = new Map<string, Mapped>();
    for (const v of volumes) {
      const mode = modes.get(v.id);
      if (mode) mapped.set(v.name, { volume: v, readOnly: mode === 'readOnly' });
    }
    // QoS changes apply live: the limiter is shared by the volume's backends and connections.
    for (const m of sdc.mappings) {
      const q = this.qos.get(m.volumeId);
      if (q) q.set(m.iopsLimit ?? 0, m.bandwidthLimitBytesPerSec ?? 0);
      else if (m.iopsLimit || m.bandwidthLimitBytesPerSec) this.qosOf(m.volumeId).set(m.iopsLimit, m.bandwidthLimitBytesPerSec);
    }
    this.forgetUnmapped(new Set(sdc.mappings.map((m) => m.volumeId)));
    for (const m of mapped.values()) {
      const s = this.served.get(m.volume.id);
      if (s) this.follow(s, m);
    }
    const before = [...this.mapped.keys()].sort().join(',');
    this.mapped = mapped;
    this.sdc = sdc;
    const after = [...mapped.keys()].sort().join(',');
    if (before !== after) this.log.info({ volumes: [...mapped.keys()] }, 'mapped volumes changed');
  }

  /**
   * Drops what this SDC kept for volumes no longer mapped to it. Their
   * backends are closed, so IO still arriving on an NBD connection opened
   * before the unmap fails at once instead of retrying until the IO timeout;
   * a later map starts afresh (new limits, new token).
   */
  private forgetUnmapped(mappedIds: Set<number>): void {
    for (const [id, s] of this.served) {
      if (mappedIds.has(id)) continue;
      this.served.delete(id);
      void s.backend.close();
      this.log.info({ volume: s.backend.volume.name }, 'volume unmapped from this SDC: no longer served');
    }
    for (const [id, q] of this.qos) {
      if (mappedIds.has(id)) continue;
      this.qos.delete(id);
      q.close();
    }
    for (const id of this.tokens.keys()) if (!mappedIds.has(id)) this.tokens.delete(id);
  }

  private qosOf(volumeId: number): QosLimiter {
    let q = this.qos.get(volumeId);
    if (!q) this.qos.set(volumeId, (q = new QosLimiter()));
    return q;
  }

  private defaultName(): string | undefined {
    if (this.o.defaultVolume !== undefined) return this.o.defaultVolume;
    return this.mapped.size === 1 ? [...this.mapped.keys()][0] : undefined;
  }

  /** The export for a name ('' = the default volume); undefined refuses it (not mapped here). */
  private async lookup(name: string): Promise<NbdExport | undefined> {
    if (!this.mapped.has(name === '' ? (this.defaultName() ?? '') : name)) {
      // Unknown here: ask the MDM (lookups share one read at a time, so a flood of bad names costs one request at a time).
      await this.rescanAfter(this.rescansStarted).catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'reading the mapped volumes failed'));
    }
    const wanted = name === '' ? this.defaultName() : name;
    const m = wanted === undefined ? undefined : this.mapped.get(wanted);
    return m ? this.serve(m).exp : undefined;
  }

  private async listExports(): Promise<NbdExport[]> {
    await this.rescanAfter(this.rescansStarted).catch(() => undefined);
    return [...this.mapped.values()].map((m) => this.serve(m).exp);
  }

  /**
   * One backend per volume for as long as it stays mapped: a resize, a
   * rename or an access change updates it in place, so connections opened
   * before the change see it too (and a snapshot's quiesce reaches them all).
   */
  private serve(m: Mapped): Served {
    const v = m.volume;
    const known = this.served.get(v.id);
    if (known) return known; // kept up to date by follow() at each rescan
    let map = this.maps.get(v.storagePoolId);
    if (!map) this.maps.set(v.storagePoolId, (map = new PoolMap(v.storagePoolId, this.mdm, this.log)));
    let token = this.tokens.get(v.id);
    if (!token) this.tokens.set(v.id, (token = new VolumeToken(this.mdm, () => this.sdc?.id, v.id, this.log)));
    const backend = new VolumeBackend(
      {
        id: v.id, name: v.name, treeId: v.volumeTreeId, layerId: v.layerId, poolId: v.storagePoolId, sizeBytes: v.sizeBytes,
        chunkBytes: v.layout.chunkBytes, readOnly: m.readOnly,
      },
      {
        map, token, clients: this.clients, log: this.log.child({ volume: v.name }), ioTimeoutMs: this.ioTimeoutMs,
        replicaReads: this.o.replicaReads ?? false,
        currentLayer: async () => (await this.mdm.getVolume(v.id)).layerId,
        qos: this.qosOf(v.id),
      },
    );
    const served: Served = { backend, exp: exportOf(m, backend) };
    this.served.set(v.id, served);
    return served;
  }

  /** Brings a served volume up to its mapping as read by a rescan. */
  private follow(s: Served, m: Mapped): void {
    const b = s.backend;
    if (b.size === m.volume.sizeBytes && b.volume.readOnly === m.readOnly && b.volume.name === m.volume.name) return;
    // A token fetched under the old access keeps its rights at the SDSs until it expires.
    if (b.volume.readOnly !== m.readOnly) this.tokens.get(m.volume.id)?.forget();
    b.update({ name: m.volume.name, sizeBytes: m.volume.sizeBytes, readOnly: m.readOnly });
    s.exp = exportOf(m, b);
  }

  private view(): SdcView {
    const self = this; // eslint-disable-line @typescript-eslint/no-this-alias -- a getter needs the node
    return {
      name: this.o.name,
      get sdcId() { return self.sdc?.id; },
      exports: () => this.exportViews(),
      problems: () => {
        const p: string[] = [];
        if (!this.sdc) p.push('not registered with the MDM');
        for (const [poolId, m] of this.maps) if (m.epoch === undefined || m.pgCount === 0) p.push(`no PG map for storage pool ${poolId}`);
        return p;
      },
      rescan: () => this.rescan(),
      quiesce: (ids, holdMs) => this.quiesce(ids, holdMs),
      resume: (volumes) => this.resume(volumes),
    };
  }

  private exportViews(): ExportView[] {
    const def = this.defaultName();
    return [...this.mapped.values()].map((m) => ({
      name: m.volume.name, volumeId: m.volume.id, sizeBytes: m.volume.sizeBytes, readOnly: m.readOnly, isDefault: m.volume.name === def,
      mapEpoch: this.maps.get(m.volume.storagePoolId)?.epoch ?? null, stats: this.served.get(m.volume.id)?.backend.stats, qos: this.qos.get(m.volume.id),
    }));
  }

  private loop(fn: () => Promise<void>, intervalMs: number): void {
    const tick = (): void => {
      if (this.stopping) return;
      fn().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'periodic MDM call failed')).finally(() => {
        if (!this.stopping) this.schedule(tick, intervalMs);
      });
    };
    this.schedule(tick, intervalMs);
  }

  private schedule(fn: () => void, ms: number): void {
    const timer = setTimeout(() => { this.timers.delete(timer); fn(); }, ms);
    this.timers.add(timer);
  }
}

function exportOf(m: Mapped, backend: VolumeBackend): NbdExport {
  return { name: m.volume.name, description: `pflex volume ${m.volume.name}`, readOnly: m.readOnly, backend };
}

function portOf(addr: ReturnType<import('node:net').Server['address']>): number {
  return typeof addr === 'object' && addr ? addr.port : 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
