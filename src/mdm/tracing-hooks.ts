/**
 * Server spans of the MDM (docs/observability.md): a request whose
 * traceparent header names a sampled trace (an SDC's or SDS's call made for
 * a traced IO) gets a server span under the caller's client span, and its
 * log lines carry trace_id/span_id. Requests without one (heartbeats, map
 * polls, the CLI) are not traced. Registered only when tracing is on.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { MdmApp } from './app.js';
import { endSpan, SpanKind, startFromTraceparent, traceFields, tracingEnabled, type Span } from '../shared/tracing.js';

export function addTracingHooks(app: MdmApp): void {
  if (!tracingEnabled()) return;
  const spans = new WeakMap<FastifyRequest, Span>();
  app.addHook('onRequest', async (req: FastifyRequest) => {
    const route = req.routeOptions.url ?? 'unknown route';
    const span = startFromTraceparent(req.headers.traceparent, `${req.method} ${route}`, SpanKind.SERVER, {
      'http.request.method': req.method, 'http.route': route, 'url.path': req.url.split('?')[0]!,
    });
    if (!span) return;
    spans.set(req, span);
    req.log = req.log.child(traceFields(span));
  });
  app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
    const span = spans.get(req);
    if (!span) return;
    spans.delete(req);
    const status = reply.statusCode;
    endSpan(span, status >= 400 ? (req.pflexErrorCode ?? `HTTP ${status}`) : undefined, { 'http.response.status_code': status });
  });
}
