/**
 * Commands accept objects by name or by numeric id; these turn a reference
 * into an id with a clear NOT_FOUND (or an ambiguity CONFLICT) otherwise.
 */
import { PflexError } from '../shared/errors.js';
import type { MdmClient } from '../shared/mdm-client.js';

function asId(ref: string | number): number | null {
  const text = String(ref);
  return /^[1-9]\d{0,15}$/.test(text) ? Number(text) : null;
}

function one<T extends { id: number }>(found: T[], what: string, ref: string, hint: string): number {
  if (found.length === 1) return found[0]!.id;
  if (found.length === 0) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no ${what} named "${ref}"`);
  throw new PflexError('PFLEX_ERR_CONFLICT', `${found.length} ${what}s are named "${ref}" (${hint})`);
}

export async function pdId(client: MdmClient, ref: string | number): Promise<number> {
  const id = asId(ref);
  if (id !== null) return id;
  const pds = await client.listPds();
  return one(pds.filter((p) => p.name === ref), 'protection domain', String(ref), 'use its id');
}

export async function poolId(client: MdmClient, ref: string | number, pd?: string | number): Promise<number> {
  const id = asId(ref);
  if (id !== null) return id;
  const pools = await client.listPools({ name: String(ref), ...(pd !== undefined ? { protectionDomainId: await pdId(client, pd) } : {}) });
  return one(pools, 'storage pool', String(ref), 'name the protection domain with --pd, or use its id');
}

export async function faultSetId(client: MdmClient, ref: string | number, pd?: string | number): Promise<number> {
  const id = asId(ref);
  if (id !== null) return id;
  const sets = await client.listFaultSets(pd !== undefined ? { protectionDomainId: await pdId(client, pd) } : {});
  return one(sets.filter((f) => f.name === ref), 'fault set', String(ref), 'name the protection domain with --pd, or use its id');
}

export async function sdsId(client: MdmClient, ref: string | number): Promise<number> {
  const id = asId(ref);
  if (id !== null) return id;
  return one(await client.listSds({ name: String(ref) }), 'SDS', String(ref), 'use its id');
}

/** An SDC by id, name or guid. */
export async function sdcId(client: MdmClient, ref: string | number): Promise<number> {
  const id = asId(ref);
  if (id !== null) return id;
  const sdcs = await client.listSdcs();
  const byName = sdcs.filter((s) => s.name === ref);
  if (byName.length > 0) return one(byName, 'SDC', String(ref), 'use its id');
  return one(sdcs.filter((s) => s.guid === ref), 'SDC', String(ref), 'use its id');
}

export async function volumeId(client: MdmClient, ref: string | number): Promise<number> {
  const id = asId(ref);
  if (id !== null) return id;
  return one(await client.listVolumes({ name: String(ref) }), 'volume', String(ref), 'use its id');
}
