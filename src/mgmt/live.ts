/**
 * Live figures for the browsers (server-sent events, GET /api/events):
 * each stream asks the MDM, with its user's token, for new IO points
 * (GET /stats?sinceMs=) and the health summary every statsPollMs, and
 * pushes them as `stats` and `health` events. The first `stats` event
 * carries the MDM's whole recent history, so charts start filled.
 */
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { MGMT_LIMITS } from './limits.js';
import type { MdmGateway } from './mdm.js';
import type { Session } from './session.js';

interface StatsBody { nowMs: number; volumes: Array<{ points: Array<{ atMs: number }> }>; sds: Array<{ points: Array<{ atMs: number }> }> }

export class LiveStreams {
  private readonly open = new Set<() => void>();

  constructor(private readonly mdm: MdmGateway, private readonly log: FastifyBaseLogger) {}

  async serve(req: FastifyRequest, reply: FastifyReply, session: Session): Promise<void> {
    if (this.open.size >= MGMT_LIMITS.sseClientsMax) {
      return reply.code(503).send({ error: { code: 'PFLEX_ERR_UNAVAILABLE', message: `too many live streams (${MGMT_LIMITS.sseClientsMax}); close a dashboard tab` } });
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive',
      'x-content-type-options': 'nosniff',
    });
    let sinceMs: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    let closed = false;
    const stop = (): void => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      this.open.delete(stop);
      res.end();
    };
    this.open.add(stop);
    req.raw.on('close', stop);
    const send = (event: string, data: unknown): void => {
      if (!closed) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const tick = async (): Promise<void> => {
      const [stats, health] = await Promise.all([
        this.mdm.call('GET', sinceMs === undefined ? '/stats' : `/stats?sinceMs=${sinceMs}`, session.token),
        this.mdm.call('GET', '/health', session.token),
      ]);
      if (stats.status === 401 || health.status === 401) {
        send('expired', { message: 'the session has expired: log in again' });
        stop();
        return;
      }
      if (stats.status === 200) {
        const body = stats.body as StatsBody;
        for (const e of [...body.volumes, ...body.sds]) for (const p of e.points) sinceMs = Math.max(sinceMs ?? 0, p.atMs);
        send('stats', body);
      } else {
        send('problem', stats.body);
      }
      if (health.status === 200) send('health', health.body);
    };
    const loop = (): void => {
      if (closed) return;
      tick().catch((err: unknown) => this.log.warn({ err }, 'live stream poll failed')).finally(() => {
        if (!closed) timer = setTimeout(loop, MGMT_LIMITS.statsPollMs);
      });
    };
    loop();
  }

  close(): void {
    for (const stop of [...this.open]) stop();
  }
}
