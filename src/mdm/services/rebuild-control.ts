import { MDM_LIMITS } from '../config.js';
import { PflexError } from '../../shared/errors.js';
import { controlAuthorization } from '../../shared/control-auth.js';
import { peerHttp, type PeerHttp } from '../../shared/tls.js';
import type { SdsRebuildStatus, StartRebuild } from '../../dataplane/rebuild-proto.js';

export interface ControlEndpoint { address: string; controlPort: number }

/** What the rebuild service asks of SDS control listeners (an interface, so services can be tested with a fake). */
export interface SdsControl {
  startRebuild(primary: ControlEndpoint, cmd: StartRebuild): Promise<void>;
  listRebuilds(primary: ControlEndpoint): Promise<SdsRebuildStatus[]>;
  releasePg(former: ControlEndpoint, pg: number): Promise<void>;
}

/** What one SDS freed for a reclaim call (logical chunk bytes). */
export interface ReclaimResult { chunks: number; bytes: number }

/** What the reclaim service asks of SDS control listeners (src/sds/reclaim-routes.ts). */
export interface SdsReclaim {
  /** The tree is dead on that SDS and its chunks are gone. */
  reclaimTree(ep: ControlEndpoint, treeId: number): Promise<ReclaimResult>;
  /** The tree's data from fromBytes on is gone. */
  trimTree(ep: ControlEndpoint, treeId: number, fromBytes: number, chunkBytes: number): Promise<ReclaimResult>;
  /** The layer (freed: no volume row or child layer needs it) is dead on that SDS and its chunks are gone. */
  dropLayer(ep: ControlEndpoint, treeId: number, layerId: number): Promise<ReclaimResult>;
}

/** SdsControl over HTTP with the cluster-key authorization of src/shared/control-auth.ts. */
export class HttpSdsControl implements SdsControl, SdsReclaim {
  constructor(private readonly clusterKey: Buffer, private readonly peer: PeerHttp = peerHttp(undefined)) {}

  async startRebuild(primary: ControlEndpoint, cmd: StartRebuild): Promise<void> {
    await this.call(primary, 'POST', '/rebuilds', cmd);
  }
  listRebuilds(primary: ControlEndpoint): Promise<SdsRebuildStatus[]> {
    return this.call(primary, 'GET', '/rebuilds') as Promise<SdsRebuildStatus[]>;
  }
  async releasePg(former: ControlEndpoint, pg: number): Promise<void> {
    await this.call(former, 'POST', `/pgs/${pg}/release`, {});
  }

  reclaimTree(ep: ControlEndpoint, treeId: number): Promise<ReclaimResult> {
    return this.call(ep, 'DELETE', `/trees/${treeId}`) as Promise<ReclaimResult>;
  }
  trimTree(ep: ControlEndpoint, treeId: number, fromBytes: number, chunkBytes: number): Promise<ReclaimResult> {
    return this.call(ep, 'POST', `/trees/${treeId}/trim`, { fromBytes, chunkBytes }) as Promise<ReclaimResult>;
  }
  dropLayer(ep: ControlEndpoint, treeId: number, layerId: number): Promise<ReclaimResult> {
    return this.call(ep, 'DELETE', `/trees/${treeId}/layers/${layerId}`) as Promise<ReclaimResult>;
  }

  private call(ep: ControlEndpoint, method: string, path: string, body?: unknown): Promise<unknown> {
    return controlCall(this.clusterKey, ep, method, path, body, MDM_LIMITS.controlCallTimeoutMs, this.peer);
  }
}

/** One authenticated MDM -> component control call (SDS and SDC control listeners); failures are PFLEX_ERR_UNAVAILABLE. */
export async function controlCall(clusterKey: Buffer, ep: ControlEndpoint, method: string, path: string, body?: unknown, timeoutMs = MDM_LIMITS.controlCallTimeoutMs, peer: PeerHttp = peerHttp(undefined)): Promise<unknown> {
  let res: Response;
  try {
    res = await peer.fetch(`${peer.scheme}://${ep.address}:${ep.controlPort}${path}`, {
      method,
      headers: { authorization: controlAuthorization(clusterKey, 'mdm'), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new PflexError('PFLEX_ERR_UNAVAILABLE', `control ${ep.address}:${ep.controlPort} unreachable: ${(err as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) throw new PflexError('PFLEX_ERR_UNAVAILABLE', `control ${method} ${path} answered ${res.status}: ${text.slice(0, 200)}`);
  return text ? JSON.parse(text) as unknown : undefined;
}
