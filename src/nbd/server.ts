import net, { type AddressInfo, type Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { NbdExport } from './backend.js';
import { ConnectionClosedError, ProtocolError, TlsHandshakeError } from './errors.js';
import { negotiate, type HandshakeContext } from './handshake.js';
import { resolveLimits, type NbdLimits } from './limits.js';
import { Transmission } from './transmission.js';
import { Wire } from './wire.js';

export interface NbdServerOptions {
  /** name -> export (or undefined: unknown). Called for every name a client sends. */
  lookup(name: string): NbdExport | undefined | Promise<NbdExport | undefined>;
  /** Exports listed by NBD_OPT_LIST (default: just the default export, if any). */
  list?(): readonly NbdExport[] | Promise<readonly NbdExport[]>;
  /** The export served for the empty name (what the stock nbd-client asks for). */
  defaultExport?: string;
  logger: Logger;
  limits?: Partial<NbdLimits>;
  /**
   * TLS by NBD_OPT_STARTTLS with these options (the caller's; TLS 1.3
   * is its choice); required: a client that does not upgrade is refused
   * (NBD_REP_ERR_TLS_REQD), else plain text stays allowed; verifyPeer: the
   * client must present a certificate signed by options.ca (mutual
   * TLS), else the handshake fails and the connection is closed.
   */
  tls?: { options: SecureContextOptions; required: boolean; verifyPeer?: boolean };
}

/** A server holding one export for every name its lookup knows. */
export function singleExportOptions(exp: NbdExport, logger: Logger, limits?: Partial<NbdLimits>): NbdServerOptions {
  return {
    lookup: (name) => (name === exp.name ? exp : undefined),
    list: () => [exp],
    defaultExport: exp.name,
    logger,
    ...(limits ? { limits } : {}),
  };
}

/**
 * NBD fixed-newstyle server: accepts connections, runs the handshake then
 * transmission for each, and shuts down cleanly (stop accepting, let
 * in-flight requests finish, close connections).
 */
export class NbdServer {
  readonly limits: NbdLimits;
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  private readonly log: Logger;
  private closing = false;
  private readonly ctx: HandshakeContext;

  constructor(options: NbdServerOptions) {
    this.limits = resolveLimits(options.limits);
    this.log = options.logger;
    // Half-open: a client that shuts its side after its last request still gets the replies.
    this.server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(socket));
    this.server.on('error', (err) => this.log.error({ err }, 'nbd listener error'));
    this.ctx = {
      limits: this.limits,
      findExport: async (name) => {
        const wanted = name === '' && options.defaultExport !== undefined ? options.defaultExport : name;
        return (await options.lookup(wanted)) ?? undefined;
      },
      listExports: async () => {
        if (options.list) return options.list();
        const def = options.defaultExport !== undefined ? await options.lookup(options.defaultExport) : undefined;
        return def ? [def] : [];
      },
      ...(options.tls ? { tls: options.tls } : {}),
    };
  }

  /** Listens; resolves with the bound address (port 0 picks a free port). */
  async listen(port: number, host?: string): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Stops accepting, lets in-flight requests finish (bounded by shutdownDrainMs), closes every connection. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const listenerClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const conns = [...this.connections];
    for (const c of conns) c.shutdown();
    const all = Promise.all(conns.map((c) => c.done));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        for (const c of this.connections) c.destroy();
        resolve();
      }, this.limits.shutdownDrainMs);
    });
    await Promise.race([all, timeout]);
    clearTimeout(timer);
    await listenerClosed;
  }

  private accept(socket: Socket): void {
    if (this.closing || this.connections.size >= this.limits.connectionsMax) {
      this.log.warn({ remote: socket.remoteAddress, connections: this.connections.size }, 'nbd connection refused: too many connections');
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, this.ctx, this.limits, this.log);
    this.connections.add(conn);
    void conn.done.then(() => this.connections.delete(conn));
  }
}

/** One client connection: handshake (under a timeout), then transmission. */
class Connection {
  readonly done: Promise<void>;
  private readonly wire: Wire;
  private transmission: Transmission | undefined;
  private shuttingDown = false;

  constructor(
    socket: Socket,
    private readonly ctx: HandshakeContext,
    private readonly limits: NbdLimits,
    private readonly log: Logger,
  ) {
    socket.setNoDelay(true);
    this.wire = new Wire(socket, limits.readBufferBytesMax);
    this.done = this.run();
  }

  shutdown(): void {
    this.shuttingDown = true;
    if (this.transmission) this.transmission.stop();
    else this.wire.destroy();
  }

  destroy(): void {
    this.wire.destroy();
  }

  private async run(): Promise<void> {
    const remote = this.wire.remote;
    const timer = setTimeout(() => {
      this.log.info({ remote }, 'nbd handshake timed out');
      this.wire.destroy();
    }, this.limits.handshakeTimeoutMs);
    try {
      const session = await negotiate(this.wire, this.ctx);
      clearTimeout(timer);
      if (!session) {
        await this.wire.end();
        return;
      }
      this.log.debug({ remote, export: session.export.name, structured: session.structured }, 'nbd client attached');
      this.transmission = new Transmission(this.wire, session, this.limits, this.log);
      if (this.shuttingDown) this.transmission.stop();
      await this.transmission.run();
      await this.wire.end();
      this.log.debug({ remote }, 'nbd client detached');
    } catch (err) {
      if (err instanceof ProtocolError) this.log.info({ remote, reason: err.message }, 'nbd protocol violation, closing connection');
      else if (err instanceof TlsHandshakeError) this.log.warn({ remote, reason: err.message }, 'nbd client refused: TLS handshake failed');
      else if (!(err instanceof ConnectionClosedError)) this.log.error({ remote, err }, 'nbd connection failed');
      this.wire.destroy();
    } finally {
      clearTimeout(timer);
    }
  }
}
