/**
 * The IO token of one mapped volume: fetched from the MDM on first use,
 * renewed in the background before it expires, fetched again at once when an
 * SDS refuses it. The hot path reads `current` without awaiting anything.
 * `parent`: the traced NBD request that needs the token (its MDM call is a
 * child of it; concurrent callers share the first caller's call).
 */
import { PflexError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { MdmClient } from '../shared/mdm-client.js';
import { traceFields, type Span } from '../shared/tracing.js';
import { tokenRenewFraction } from './limits.js';

export class VolumeToken {
  private bytes: Buffer | undefined;
  private expiresAtMs = 0;
  private renewAtMs = 0;
  private fetching: Promise<Buffer> | null = null;
  /** Bumped by forget(): a fetch that started before it must not bring the old rights back. */
  private generation = 0;
  rights: 'rw' | 'ro' | undefined;

  constructor(
    private readonly mdm: MdmClient,
    private readonly sdcId: () => number | undefined,
    readonly volumeId: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** A token valid now; renewal starts early so callers rarely wait. */
  get(parent?: Span): Buffer | Promise<Buffer> {
    const now = this.now();
    if (this.bytes && now < this.expiresAtMs - 1000) {
      if (now >= this.renewAtMs) void this.renew(parent).catch(() => undefined);
      return this.bytes;
    }
    return this.renew(parent);
  }

  /** Fetches a fresh token (after an SDS refused ours); concurrent callers share one call. */
  renew(parent?: Span): Promise<Buffer> {
    if (!this.fetching) {
      const p: Promise<Buffer> = this.fetch(parent).finally(() => { if (this.fetching === p) this.fetching = null; });
      this.fetching = p;
    }
    return this.fetching;
  }

  /**
   * Drops the token (the mapping's access changed): the SDSs would honour
   * its old rights until it expires, so the next IO fetches a new one.
   */
  forget(): void {
    this.generation++;
    this.bytes = undefined;
    this.rights = undefined;
    this.fetching = null;
  }

  private async fetch(parent: Span | undefined): Promise<Buffer> {
    const sdcId = this.sdcId();
    if (sdcId === undefined) throw new PflexError('PFLEX_ERR_UNAVAILABLE', 'the SDC is not registered with the MDM yet');
    const requested = this.now();
    const generation = this.generation;
    const g = await this.mdm.issueIoToken(sdcId, this.volumeId, parent);
    if (generation !== this.generation) return this.fetch(parent); // asked before the change: its rights may be the old ones
    this.bytes = g.bytes;
    this.rights = g.rights;
    this.expiresAtMs = g.expiresAtMs;
    this.renewAtMs = requested + (g.expiresAtMs - requested) * (1 - tokenRenewFraction);
    this.log.debug({ volumeId: this.volumeId, expiresAtMs: g.expiresAtMs, ...traceFields(parent) }, 'IO token renewed');
    return g.bytes;
  }
}
