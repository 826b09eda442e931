import type { Socket } from 'node:net';
import { Server as TlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { ByteQueue } from './byte-queue.js';
import { ConnectionClosedError, ProtocolError, TlsHandshakeError } from './errors.js';

/**
 * The only place that touches a client socket: framed reads with
 * backpressure (the socket is paused while enough bytes wait unparsed) and
 * corked multi-buffer writes.
 */
export class Wire {
  private readonly queue = new ByteQueue();
  private want = 0;
  private waiter: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private ended: Error | undefined;
  private paused = false;
  private drainWaiters: Array<() => void> = [];
  private corked = false;
  private tls = false;

  private readonly handlers = {
    data: (chunk: Buffer) => this.onData(chunk),
    end: () => this.fail(new ConnectionClosedError('client closed its side')),
    close: () => {
      this.fail(new ConnectionClosedError());
      this.wakeDrain();
    },
    error: (err: Error) => this.fail(new ConnectionClosedError(`socket error: ${err.message}`)),
    drain: () => this.wakeDrain(),
  };

  constructor(
    private socket: Socket,
    private readonly readBufferBytesMax: number,
  ) {
    this.listen(socket);
  }

  private listen(socket: Socket): void {
    for (const [event, fn] of Object.entries(this.handlers)) socket.on(event, fn);
  }

  /** Whether the connection was upgraded with startTls. */
  get secure(): boolean {
    return this.tls;
  }

  /**
   * NBD_OPT_STARTTLS (its ACK already queued): flushes the ACK, then runs
   * the TLS handshake as the server on the same socket; every later read and
   * write goes through TLS. Nothing may arrive in between (the client waits
   * for the ACK), so bytes already received are a protocol violation.
   *
   * The handshake runs in a tls.Server of its own that never listens (it is
   * handed this one socket): only a server checks a client certificate
   * (options.requestCert and rejectUnauthorized) and sets `authorized`; a
   * bare server-side TLSSocket does neither.
   */
  async startTls(options: TlsOptions): Promise<void> {
    if (this.queue.length > 0) throw new ProtocolError('client sent data between NBD_OPT_STARTTLS and the TLS handshake');
    if (this.corked) this.uncork();
    const raw = this.socket;
    for (const [event, fn] of Object.entries(this.handlers)) raw.off(event, fn);
    const engine = new TlsServer(options);
    const secured = new Promise<TLSSocket>((resolve, reject) => {
      engine.once('secureConnection', resolve);
      engine.once('tlsClientError', (err: Error) => reject(new TlsHandshakeError(`TLS handshake failed: ${err.message}`)));
      raw.once('close', () => reject(options.rejectUnauthorized
        ? new TlsHandshakeError('TLS handshake failed: the client certificate is missing or not of the CA')
        : new ConnectionClosedError('closed during the TLS handshake')));
    });
    engine.emit('connection', raw);
    if (this.paused) {
      this.paused = false;
      raw.resume();
    }
    const secure = await secured;
    this.socket = secure;
    this.tls = true;
    this.listen(secure);
  }

  get remote(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  /** Bytes already received, not yet taken (tests and logs). */
  get buffered(): number {
    return this.queue.length;
  }

  /** n bytes if they are already buffered, without waiting (the hot path). */
  tryRead(n: number): Buffer | undefined {
    if (this.queue.length < n) return undefined;
    const out = this.queue.take(n);
    this.maybeResume();
    return out;
  }

  /** Like tryRead, as views of the received chunks (no copy). */
  tryReadChunks(n: number): Buffer[] | undefined {
    if (this.queue.length < n) return undefined;
    const out = this.queue.takeChunks(n);
    this.maybeResume();
    return out;
  }

  async readChunks(n: number): Promise<Buffer[]> {
    const ready = this.tryReadChunks(n);
    if (ready) return ready;
    await this.waitFor(n);
    return this.tryReadChunks(n)!;
  }

  /** Exactly n bytes; rejects with ConnectionClosedError when the peer goes away first. */
  async readExact(n: number): Promise<Buffer> {
    const ready = this.tryRead(n);
    if (ready) return ready;
    await this.waitFor(n);
    return this.tryRead(n)!;
  }

  /** Reads and drops n bytes without keeping more than one socket chunk at a time. */
  async skip(n: number): Promise<void> {
    let left = n;
    for (;;) {
      left -= this.queue.skip(left);
      this.maybeResume();
      if (left === 0) return;
      await this.waitFor(1);
    }
  }

  /** Stops reading: a pending read fails with ConnectionClosedError (used on shutdown and DISC). */
  stopReading(reason = 'server shutting down'): void {
    this.fail(new ConnectionClosedError(reason));
    this.socket.pause();
    this.paused = true;
  }

  /**
   * Queues buffers for the peer. Everything written in one turn of the event
   * loop (e.g. the replies to all requests that arrived in one socket chunk)
   * leaves in one writev when the turn ends. Ignored once the socket is gone.
   */
  write(...buffers: Buffer[]): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    for (const b of buffers) this.socket.write(b);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  get writableBytes(): number {
    return this.socket.writableLength;
  }

  get closed(): boolean {
    return this.socket.destroyed;
  }

  /** Resolves when queued reply bytes drain (or the socket closes). */
  waitDrain(): Promise<void> {
    if (this.socket.destroyed || this.socket.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Graceful close: flush queued replies, then FIN. */
  end(): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end();
      // A peer that never reads must not hold the connection open forever.
      setTimeout(() => this.socket.destroy(), 5000).unref();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    this.queue.push(chunk);
    if (this.waiter && this.queue.length >= this.want) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve();
    }
    if (!this.paused && this.queue.length >= this.readBufferBytesMax && this.queue.length >= this.want) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private waitFor(n: number): Promise<void> {
    if (this.ended) return Promise.reject(this.ended);
    this.want = n;
    const p = new Promise<void>((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    return p;
  }

  private maybeResume(): void {
    if (this.paused && !this.ended && this.queue.length < this.readBufferBytesMax) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private fail(err: Error): void {
    if (!this.ended) this.ended = err;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(err);
    }
  }

  private wakeDrain(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
