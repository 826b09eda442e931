import type { SecureContextOptions } from 'node:tls';
import type { BlockBackend, NbdExport } from './backend.js';
import {
  CLIENT_FLAGS_KNOWN,
  FLAG_C_NO_ZEROES,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  INFO,
  META_BASE_ALLOCATION,
  META_BASE_ALLOCATION_ID,
  OPT,
  OPTION_HEADER_BYTES,
  REP,
  TFLAG,
} from './constants.js';
import {
  decodeOptionHeader,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoString,
  encodeMetaContext,
  encodeOptionReply,
  encodeServerReplyData,
} from './codec.js';
import { ProtocolError } from './errors.js';
import { BLOCK_SIZE_MIN, BLOCK_SIZE_PREFERRED, type NbdLimits } from './limits.js';
import type { Wire } from './wire.js';

/** What the handshake needs from the server. */
export interface HandshakeContext {
  readonly limits: NbdLimits;
  /** Resolves a client-given name (the empty name already mapped to the default export). */
  findExport(name: string): Promise<NbdExport | undefined>;
  listExports(): Promise<readonly NbdExport[]>;
  /**
   * NBD_OPT_STARTTLS offered with these options (certificate, key, CA, versions); required: every option but
   * STARTTLS and ABORT is refused before it; verifyPeer: the client must present a certificate of options.ca.
   */
  readonly tls?: { readonly options: SecureContextOptions; readonly required: boolean; readonly verifyPeer?: boolean };
}

/** The outcome of option haggling: what transmission serves and how. */
export interface Session {
  readonly export: NbdExport;
  readonly backend: BlockBackend;
  readonly size: number;
  readonly readOnly: boolean;
  readonly transmissionFlags: number;
  readonly structured: boolean;
  /** base:allocation was selected with SET_META_CONTEXT for this export. */
  readonly baseAllocation: boolean;
}

/** Transmission flags for an export: each advertised only when the backend supports it. */
export function transmissionFlags(exp: NbdExport, structured: boolean): number {
  const caps = exp.backend.capabilities;
  const readOnly = isReadOnly(exp);
  let flags = TFLAG.HAS_FLAGS;
  if (readOnly) flags |= TFLAG.READ_ONLY;
  if (caps.flush) flags |= TFLAG.SEND_FLUSH;
  if (!readOnly) {
    if (caps.fua) flags |= TFLAG.SEND_FUA;
    if (caps.trim) flags |= TFLAG.SEND_TRIM;
    if (caps.zero) flags |= TFLAG.SEND_WRITE_ZEROES;
    if (caps.zero && caps.fastZero) flags |= TFLAG.SEND_FAST_ZERO;
  }
  if (structured) flags |= TFLAG.SEND_DF;
  if (caps.multiConn) flags |= TFLAG.CAN_MULTI_CONN;
  if (caps.cache) flags |= TFLAG.SEND_CACHE;
  return flags;
}

export function isReadOnly(exp: NbdExport): boolean {
  return exp.readOnly === true || exp.backend.capabilities.readOnly;
}

/** The current option fails with an error reply; the handshake goes on. */
class OptionRefused extends Error {
  constructor(
    readonly reply: number,
    message: string,
  ) {
    super(message);
  }
}

class OptionInvalid extends OptionRefused {
  constructor(message: string) {
    super(REP.ERR_INVALID, message);
  }
}

/** A lookup that throws (e.g. the SDC cannot reach its MDM) refuses the option instead of killing the connection. */
async function lookup(ctx: HandshakeContext, name: string): Promise<NbdExport | undefined> {
  try {
    return await ctx.findExport(name);
  } catch (err) {
    throw new OptionRefused(REP.ERR_UNKNOWN, `export lookup failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Reads a big-endian length-prefixed field of an option payload, checking bounds. */
class OptionReader {
  private at = 0;
  constructor(private readonly data: Buffer) {}
  u16(): number {
    if (this.at + 2 > this.data.length) throw new OptionInvalid('option data too short');
    const v = this.data.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }
  u32(): number {
    if (this.at + 4 > this.data.length) throw new OptionInvalid('option data too short');
    const v = this.data.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  string(length: number, max: number): string {
    if (length > max) throw new OptionInvalid(`string of ${length} bytes exceeds ${max}`);
    if (this.at + length > this.data.length) throw new OptionInvalid('option data too short');
    const s = this.data.toString('utf8', this.at, this.at + length);
    this.at += length;
    return s;
  }
  end(): void {
    if (this.at !== this.data.length) throw new OptionInvalid('option data has trailing bytes');
  }
}

/**
 * Fixed-newstyle option haggling. Resolves with a Session when the client
 * enters transmission, or undefined when it aborts. A ProtocolError means
 * the connection must be closed.
 */
export async function negotiate(wire: Wire, ctx: HandshakeContext): Promise<Session | undefined> {
  const { limits } = ctx;
  wire.write(encodeGreeting(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES));
  const clientFlags = (await wire.readExact(4)).readUInt32BE(0);
  if ((clientFlags & ~CLIENT_FLAGS_KNOWN) !== 0) throw new ProtocolError(`unknown client flags 0x${clientFlags.toString(16)}`);
  const noZeroes = (clientFlags & FLAG_C_NO_ZEROES) !== 0;

  const state: Haggle = { structured: false, metaExportName: undefined };
  let options = 0;

  for (;;) {
    const header = decodeOptionHeader(await wire.readExact(OPTION_HEADER_BYTES));
    if (!header.magicOk) throw new ProtocolError('bad option magic');
    if (header.length > limits.optionBytesMax) throw new ProtocolError(`option length ${header.length} exceeds ${limits.optionBytesMax}`);
    if (++options > limits.optionCountMax) throw new ProtocolError(`more than ${limits.optionCountMax} options`);
    const data = await wire.readExact(header.length);
    const opt = header.option;
    const reply = (type: number, payload?: Buffer): void => wire.write(encodeOptionReply(opt, type, payload));
    const replyError = (type: number, message: string): void => reply(type, Buffer.from(message, 'utf8'));

    try {
      if (ctx.tls?.required && !wire.secure && opt !== OPT.STARTTLS && opt !== OPT.ABORT) {
        // EXPORT_NAME cannot carry an error: the spec says close.
        if (opt === OPT.EXPORT_NAME) throw new ProtocolError('NBD_OPT_EXPORT_NAME before STARTTLS on a TLS-only server');
        throw new OptionRefused(REP.ERR_TLS_REQD, 'this server requires TLS: send NBD_OPT_STARTTLS first');
      }
      switch (opt) {
        case OPT.STARTTLS: {
          if (data.length !== 0) throw new OptionInvalid('NBD_OPT_STARTTLS takes no data');
          if (!ctx.tls) throw new OptionRefused(REP.ERR_UNSUP, 'TLS is not configured on this server');
          if (wire.secure) throw new OptionInvalid('TLS is already negotiated');
          reply(REP.ACK);
          const verifyPeer = ctx.tls.verifyPeer ?? false;
          await wire.startTls({ ...ctx.tls.options, requestCert: verifyPeer, rejectUnauthorized: verifyPeer });
          // The spec: what was negotiated in plain text does not carry over.
          state.structured = false;
          state.metaExportName = undefined;
          break;
        }
        case OPT.EXPORT_NAME: {
          const exp = await ctx.findExport(data.toString('utf8')).catch(() => undefined);
          // EXPORT_NAME cannot carry an error: the spec says close.
          if (!exp) throw new ProtocolError(`unknown export "${data.toString('utf8').slice(0, 64)}" in EXPORT_NAME`);
          const session = makeSession(exp, state.structured, state.structured && state.metaExportName === exp.name);
          wire.write(encodeExportNameReply(session.size, session.transmissionFlags, noZeroes));
          return session;
        }
        case OPT.ABORT:
          reply(REP.ACK);
          return undefined;
        case OPT.LIST: {
          if (data.length !== 0) throw new OptionInvalid('NBD_OPT_LIST takes no data');
          const exports = await ctx.listExports().catch((err: unknown) => {
            throw new OptionRefused(REP.ERR_POLICY, `export list unavailable: ${err instanceof Error ? err.message : String(err)}`);
          });
          for (const exp of exports) reply(REP.SERVER, encodeServerReplyData(exp.name, exp.description));
          reply(REP.ACK);
          break;
        }
        case OPT.INFO:
        case OPT.GO: {
          const session = await infoOrGo(ctx, state, data, reply, replyError);
          if (opt === OPT.GO && session) return session;
          break;
        }
        case OPT.STRUCTURED_REPLY:
          if (data.length !== 0) throw new OptionInvalid('NBD_OPT_STRUCTURED_REPLY takes no data');
          state.structured = true;
          reply(REP.ACK);
          break;
        case OPT.LIST_META_CONTEXT:
        case OPT.SET_META_CONTEXT:
          await metaContext(ctx, state, opt === OPT.SET_META_CONTEXT, data, reply, replyError);
          break;
        default:
          replyError(REP.ERR_UNSUP, `option ${opt} is not supported`);
      }
    } catch (err) {
      if (!(err instanceof OptionRefused)) throw err;
      replyError(err.reply, err.message);
    }
  }
}

/** What the options so far selected. */
interface Haggle {
  structured: boolean;
  /** The export for which base:allocation was selected. */
  metaExportName: string | undefined;
}

type Reply = (type: number, payload?: Buffer) => void;
type ReplyError = (type: number, message: string) => void;

/** NBD_OPT_INFO / NBD_OPT_GO: the export's info replies; the session (GO enters transmission with it), or undefined for an unknown export. */
async function infoOrGo(ctx: HandshakeContext, state: Haggle, data: Buffer, reply: Reply, replyError: ReplyError): Promise<Session | undefined> {
  const { limits } = ctx;
  const r = new OptionReader(data);
  const name = r.string(r.u32(), limits.stringBytesMax);
  const count = r.u16();
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(r.u16());
  r.end();
  const exp = await lookup(ctx, name);
  if (!exp) {
    replyError(REP.ERR_UNKNOWN, `no export named "${name.slice(0, 256)}"`);
    return undefined;
  }
  const session = makeSession(exp, state.structured, state.structured && state.metaExportName === exp.name);
  reply(REP.INFO, encodeInfoExport(session.size, session.transmissionFlags));
  if (requests.includes(INFO.NAME)) reply(REP.INFO, encodeInfoString(INFO.NAME, exp.name));
  if (requests.includes(INFO.DESCRIPTION) && exp.description) reply(REP.INFO, encodeInfoString(INFO.DESCRIPTION, exp.description));
  reply(REP.INFO, encodeInfoBlockSize(BLOCK_SIZE_MIN, BLOCK_SIZE_PREFERRED, limits.requestBytesMax));
  reply(REP.ACK);
  return session;
}

/** NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT: only base:allocation exists. */
async function metaContext(ctx: HandshakeContext, state: Haggle, set: boolean, data: Buffer, reply: Reply, replyError: ReplyError): Promise<void> {
  const { limits } = ctx;
  const r = new OptionReader(data);
  const name = r.string(r.u32(), limits.stringBytesMax);
  const count = r.u32();
  if (count > limits.metaQueryCountMax) throw new OptionInvalid(`more than ${limits.metaQueryCountMax} queries`);
  const queries: string[] = [];
  for (let i = 0; i < count; i++) queries.push(r.string(r.u32(), limits.stringBytesMax));
  r.end();
  if (set && !state.structured) throw new OptionInvalid('NBD_OPT_SET_META_CONTEXT needs structured replies first');
  const exp = await lookup(ctx, name);
  if (!exp) {
    replyError(REP.ERR_UNKNOWN, `no export named "${name.slice(0, 256)}"`);
    return;
  }
  const matches = matchBaseAllocation(queries, set);
  if (set) state.metaExportName = matches ? exp.name : undefined;
  if (matches) reply(REP.META_CONTEXT, encodeMetaContext(set ? META_BASE_ALLOCATION_ID : 0, META_BASE_ALLOCATION));
  reply(REP.ACK);
}

/** Does a meta-context query list select base:allocation? (LIST with no query lists everything.) */
function matchBaseAllocation(queries: readonly string[], set: boolean): boolean {
  if (queries.length === 0) return !set;
  return queries.some((q) => q === META_BASE_ALLOCATION || (!set && q === 'base:'));
}

function makeSession(exp: NbdExport, structured: boolean, baseAllocation: boolean): Session {
  return {
    export: exp,
    backend: exp.backend,
    size: exp.backend.size,
    readOnly: isReadOnly(exp),
    transmissionFlags: transmissionFlags(exp, structured),
    structured,
    baseAllocation,
  };
}
