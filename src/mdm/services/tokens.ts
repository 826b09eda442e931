import { PflexError } from '../../shared/errors.js';
import { issueIoToken, type IoRights } from '../../shared/iotoken.js';
import { deriveKey } from '../../shared/keys.js';
import type { MdmConfig } from '../config.js';
import type { TopologyRepo } from '../repos/topology-repo.js';
import type { VolumeRepo } from '../repos/volume-repo.js';
import type { Clock } from './events.js';

export interface IssuedIoToken { token: string; sdcId: number; volumeId: number; rights: IoRights; expiresAtMs: number }

/** IO tokens: only for volumes mapped to the asking SDC, with the mapping's rights. */
export class TokenService {
  private readonly key: Buffer;

  constructor(
    clusterKey: Buffer,
    private readonly topology: TopologyRepo,
    private readonly volumes: VolumeRepo,
    private readonly config: MdmConfig,
    private readonly clock: Clock,
  ) {
    this.key = deriveKey(clusterKey, 'io-token');
  }

  issue(sdcId: number, volumeId: number): IssuedIoToken {
    if (!this.topology.getSdc(sdcId)) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no SDC ${sdcId}`);
    if (!this.volumes.get(volumeId)) throw new PflexError('PFLEX_ERR_CONFLICT', `no volume ${volumeId}`);
    const mapping = this.volumes.getMapping(volumeId, sdcId);
    if (!mapping) throw new PflexError('PFLEX_ERR_FORBIDDEN', `volume ${volumeId} is not mapped to SDC ${sdcId}`);
    const rights: IoRights = mapping.accessMode === 'readOnly' ? 'ro' : 'rw';
    const expiresAtMs = this.clock() + this.config.ioTokenTtlMs;
    const token = issueIoToken(this.key, { sdcId, volumeId, rights, expiresAtMs }).toString('base64url');
    return { token, sdcId, volumeId, rights, expiresAtMs };
  }
}
