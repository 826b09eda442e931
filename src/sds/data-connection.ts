import type net from 'node:net';
import { encodeHead, FrameDecoder, MsgType, replyHeader, Status, type Frame, type StatusValue } from '../dataplane/proto.js';
import type { DataServer } from './data-server.js';
import {
  connectionIdleMs, connectionInflightBytesMax, connectionInflightRequestsMax, serverBufferedBytesMax, serverInflightBytesMax,
} from './limits.js';

const EMPTY = Buffer.alloc(0);

/**
 * One data connection: decodes frames, bounds the requests and bytes in
 * flight (stops reading the socket beyond them: TCP backpressure rather than
 * errors), writes replies corked so a burst of replies leaves in few packets.
 */
export class DataConnection {
  private readonly decoder = new FrameDecoder();
  private inflight = 0;
  private inflightBytes = 0;
  private paused = false;
  private corked = false;
  private dead = false;

  constructor(private readonly server: DataServer, private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.destroy());
    socket.on('drain', () => this.maybeResume());
    socket.setTimeout(connectionIdleMs, () => { if (this.inflight === 0) this.destroy(); });
  }

  private readonly onData = (data: Buffer): void => {
    const before = this.decoder.bufferedBytes;
    try {
      this.decoder.push(data, this.onFrame);
    } catch (err) {
      this.protocolError((err as Error).message);
      return;
    }
    const after = this.decoder.bufferedBytes;
    this.server.bufferedBytes += after - before;
    if (after > 0 && this.server.bufferedBytes > serverBufferedBytesMax) {
      this.server.opts.log.warn({ remote: this.socket.remoteAddress, bufferedBytes: after }, 'partial frames across connections exceed the server limit: closing this connection');
      this.destroy();
    }
  };

  private readonly onFrame = (f: Frame): void => {
    if (this.dead) return;
    const bytes = costOf(f);
    this.inflight++;
    this.inflightBytes += bytes;
    this.server.inflightBytes += bytes;
    if (!this.paused && this.overLimit()) {
      this.paused = true;
      this.socket.pause();
      if (this.server.inflightBytes >= serverInflightBytesMax) this.server.waiting.add(this);
    }
    this.server.dispatch(this, f);
  };

  /** Beyond a limit we stop reading this socket: TCP pushes back on the client. */
  private overLimit(): boolean {
    return this.inflight >= connectionInflightRequestsMax || this.inflightBytes >= connectionInflightBytesMax
      || this.socket.writableLength >= connectionInflightBytesMax || this.server.inflightBytes >= serverInflightBytesMax;
  }

  maybeResume(): void {
    if (!this.paused || this.dead) return;
    if (this.inflight < connectionInflightRequestsMax / 2 && this.inflightBytes < connectionInflightBytesMax / 2
      && this.socket.writableLength < connectionInflightBytesMax / 2 && this.server.inflightBytes < serverInflightBytesMax / 2) {
      this.paused = false;
      this.server.waiting.delete(this);
      this.socket.resume();
    }
  }

  protocolError(message: string): void {
    if (this.dead) return;
    this.server.metrics.protocolErrors++;
    this.server.opts.log.warn({ remote: this.socket.remoteAddress, err: message }, 'malformed data frame: closing the connection');
    this.destroy();
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    this.server.bufferedBytes -= this.decoder.bufferedBytes;
    this.server.waiting.delete(this);
    this.socket.destroy();
  }

  reply(req: Frame, status: StatusValue, message: Buffer | string = EMPTY, epoch?: number): void {
    this.server.spans.end(req, status);
    const payload = typeof message === 'string' ? Buffer.from(message) : message;
    if (status !== Status.OK) this.server.metrics.errorReplies++;
    this.send(req, replyHeader(req, status, 0, epoch ?? this.server.opts.pgs.get(req.pgId)?.epoch ?? req.epoch), payload);
  }

  /** crc: the CRC32 of data when the store already has it. */
  replyData(req: Frame, data: Buffer, crc?: number): void {
    this.server.spans.end(req, Status.OK);
    this.send(req, replyHeader(req, Status.OK, data.length), data, crc);
  }

  private send(req: Frame, h: ReturnType<typeof replyHeader>, payload: Buffer, crc?: number): void {
    const bytes = costOf(req);
    this.inflight--;
    this.inflightBytes -= bytes;
    this.server.inflightBytes -= bytes;
    if (this.server.waiting.size > 0 && this.server.inflightBytes < serverInflightBytesMax / 2) {
      for (const c of [...this.server.waiting]) c.maybeResume();
    }
    if (this.dead || this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(uncork, this);
    }
    this.socket.write(encodeHead(h, EMPTY, EMPTY, payload, crc));
    if (payload.length > 0) this.socket.write(payload);
    this.maybeResume();
  }

  /** @internal */
  uncorkNow(): void {
    this.corked = false;
    if (!this.socket.destroyed) this.socket.uncork();
  }
}

/** Memory a request holds while served: its payload, or the data a READ will return. */
function costOf(f: Frame): number {
  return f.payload.length + (f.type === MsgType.READ ? f.length : 0);
}

function uncork(conn: DataConnection): void {
  conn.uncorkNow();
}
