/**
 * The handlers of the SDS data server, one per message type (bound in
 * HANDLERS), and the mapping of operating errors to reply statuses.
 */
import { isPflexError } from '../shared/errors.js';
import { Flag, MsgType, Status, type Frame, type StatusValue } from '../dataplane/proto.js';
import type { DataConnection } from './data-connection.js';
import type { DataServer } from './data-server.js';

const EMPTY = Buffer.alloc(0);

/** crcs: CRC32 per 4 KiB block of a block-aligned WRITE payload (computed once on arrival). */
export type Handler = (server: DataServer, conn: DataConnection, f: Frame, crcs: Uint32Array | undefined) => Promise<void>;

/** Client requests (not forwarded ones) run under the rebuild ordering locks (DataServer.locks). */
async function handleWrite(s: DataServer, conn: DataConnection, f: Frame, crcs: Uint32Array | undefined): Promise<void> {
  if ((f.flags & Flag.FORWARDED) !== 0) return handleWriteLocked(s, conn, f, crcs);
  const pgKey = `p${f.pgId}`;
  const chunkKey = `c${f.pgId}/${f.treeId}-${f.chunkIndex}-${f.layerId}`;
  await s.locks.acquire(pgKey, false);
  try {
    await s.locks.acquire(chunkKey, false);
    try {
      await handleWriteLocked(s, conn, f, crcs);
    } finally {
      s.locks.release(chunkKey, false);
    }
  } finally {
    s.locks.release(pgKey, false);
  }
}

async function handleWriteLocked(s: DataServer, conn: DataConnection, f: Frame, crcs: Uint32Array | undefined): Promise<void> {
  s.checkToken(f, true);
  const route = await s.route(f);
  if (typeof route === 'number') { conn.reply(f, route); return; }
  const started = performance.now();
  const forwarded = (f.flags & Flag.FORWARDED) !== 0;
  // The only member of a PG writes through: no other copy would survive its power loss (secureSole).
  const fua = (f.flags & Flag.FUA) !== 0 || (!forwarded && route.members.length === 1);
  const ancestors = await s.ancestors(f);
  if (!ancestors) { conn.reply(f, Status.LAYER_CHANGED); return; }
  const local = f.type === MsgType.WRITE
    ? s.layered.write(f.pgId, s.key(f), ancestors, f.offset, f.payload, fua, crcs)
    : s.layered.zero(f.pgId, s.key(f), ancestors, f.offset, f.length, fua);
  if (forwarded) {
    await local;
  } else {
    // Forwarding starts before awaiting the local write so both run in parallel.
    const replicated = s.replication.replicate(f, route);
    const [localResult, status] = await Promise.allSettled([local, replicated]);
    if (localResult.status === 'rejected') throw localResult.reason;
    if (status.status === 'rejected') throw status.reason;
    if (status.value !== Status.OK) {
      if (status.value === Status.LAYER_CHANGED) s.opts.trees.forget(f.volumeId); // a secondary knows the volume's newer layer
      conn.reply(f, status.value, EMPTY, s.opts.pgs.get(f.pgId)?.epoch ?? f.epoch);
      return;
    }
    // Fencing a secondary may just have left us alone: then flush before acknowledging.
    if (!fua) await s.replication.secureSole(f.pgId, true);
    // A member that just left the acting set may still serve replica reads until its lease runs out.
    await s.replication.holdForRemoval(f.pgId, s.leaseMs);
  }
  s.metrics.record(f.type, f.length, performance.now() - started);
  conn.reply(f, Status.OK, EMPTY, s.opts.pgs.get(f.pgId)?.epoch ?? f.epoch);
}

async function handleRead(s: DataServer, conn: DataConnection, f: Frame): Promise<void> {
  // Shared on the PG: a PG's data is never dropped under a read that routed to it.
  const pgKey = `p${f.pgId}`;
  await s.locks.acquire(pgKey, false);
  try {
    await handleReadLocked(s, conn, f);
  } finally {
    s.locks.release(pgKey, false);
  }
}

async function handleReadLocked(s: DataServer, conn: DataConnection, f: Frame): Promise<void> {
  s.checkToken(f, false);
  if ((f.flags & Flag.FORWARDED) !== 0) { conn.reply(f, Status.BAD_REQUEST, 'reads are not forwarded'); return; }
  const route = await s.route(f);
  if (typeof route === 'number') { conn.reply(f, route); return; }
  const started = performance.now();
  const crcOut: { crc?: number } = {};
  const ancestors = await s.ancestors(f);
  if (!ancestors) { conn.reply(f, Status.LAYER_CHANGED); return; }
  const data = await s.layered.read(f.pgId, s.key(f), ancestors, f.offset, f.length, crcOut);
  s.metrics.record(f.type, f.length, performance.now() - started);
  if (!data) conn.reply(f, Status.NO_CHUNK);
  else conn.replyData(f, data, crcOut.crc);
}

async function handleFlush(s: DataServer, conn: DataConnection, f: Frame): Promise<void> {
  s.checkToken(f, false);
  const started = performance.now();
  const forwarded = (f.flags & Flag.FORWARDED) !== 0;
  const [local, peers] = await Promise.allSettled([s.opts.store.flush(), forwarded ? Status.OK : s.replication.flushPeers(f)]);
  if (local.status === 'rejected') throw local.reason;
  if (peers.status === 'rejected') throw peers.reason;
  s.metrics.record(f.type, 0, performance.now() - started);
  conn.reply(f, peers.value);
}

async function handlePing(_s: DataServer, conn: DataConnection, f: Frame): Promise<void> {
  conn.reply(f, Status.OK);
}

export const HANDLERS: Record<number, Handler | undefined> = {
  [MsgType.WRITE]: handleWrite,
  [MsgType.ZERO]: handleWrite,
  [MsgType.TRIM]: handleWrite,
  [MsgType.READ]: handleRead,
  [MsgType.FLUSH]: handleFlush,
  [MsgType.PING]: handlePing,
};

export function statusOf(err: unknown): StatusValue {
  if (!isPflexError(err)) return Status.IO_ERROR;
  switch (err.code) {
    case 'PFLEX_ERR_TOKEN_INVALID': return Status.BAD_TOKEN;
    case 'PFLEX_ERR_TOKEN_EXPIRED': return Status.TOKEN_EXPIRED;
    case 'PFLEX_ERR_TOKEN_SCOPE': return Status.TOKEN_SCOPE;
    case 'PFLEX_ERR_BAD_REQUEST': return Status.BAD_REQUEST;
    case 'PFLEX_ERR_STALE_EPOCH': return Status.STALE_EPOCH;
    case 'PFLEX_ERR_IO': return err.details?.noSpace ? Status.NO_SPACE : Status.IO_ERROR;
    default: return Status.IO_ERROR;
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
