import { MDM_LIMITS } from '../config.js';
import { peerHttp, type PeerHttp } from '../../shared/tls.js';
import { controlCall, type ControlEndpoint } from './rebuild-control.js';

/** A volume's new layer, as an SDC resumes writing it. */
export interface VolumeLayer { id: number; layerId: number }

/**
 * What a snapshot, clone or revert asks of the components (an interface, so
 * the service can be tested with a fake): SDCs that map the volumes pause
 * their writes and drain the ones in flight (quiesce), then resume on the new
 * layers; SDSs forget the volume -> layer answers they cached.
 */
export interface LayerControl {
  quiesce(sdc: ControlEndpoint, volumeIds: number[], holdMs: number): Promise<void>;
  resume(sdc: ControlEndpoint, volumes: VolumeLayer[]): Promise<void>;
  forget(sds: ControlEndpoint, volumeIds: number[]): Promise<void>;
  /** Bytes of a tree's chunks on one SDS, by PG and layer (one replica's view). */
  treeLayers(sds: ControlEndpoint, treeId: number): Promise<TreeLayerBytes[]>;
}

export interface TreeLayerBytes { pg: number; layerId: number; chunks: number; bytes: number }

export class HttpLayerControl implements LayerControl {
  constructor(private readonly clusterKey: Buffer, private readonly peer: PeerHttp = peerHttp(undefined)) {}

  async quiesce(sdc: ControlEndpoint, volumeIds: number[], holdMs: number): Promise<void> {
    await controlCall(this.clusterKey, sdc, 'POST', '/quiesce', { volumeIds, holdMs }, MDM_LIMITS.controlCallTimeoutMs, this.peer);
  }
  async resume(sdc: ControlEndpoint, volumes: VolumeLayer[]): Promise<void> {
    await controlCall(this.clusterKey, sdc, 'POST', '/resume', { volumes }, MDM_LIMITS.controlCallTimeoutMs, this.peer);
  }
  async forget(sds: ControlEndpoint, volumeIds: number[]): Promise<void> {
    await controlCall(this.clusterKey, sds, 'POST', '/volumes/forget', { volumeIds }, MDM_LIMITS.controlCallTimeoutMs, this.peer);
  }
  async treeLayers(sds: ControlEndpoint, treeId: number): Promise<TreeLayerBytes[]> {
    return await controlCall(this.clusterKey, sds, 'GET', `/trees/${treeId}/layers`, undefined, MDM_LIMITS.controlCallTimeoutMs, this.peer) as TreeLayerBytes[];
  }
}
