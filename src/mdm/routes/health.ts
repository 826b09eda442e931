import { Type } from '@fastify/type-provider-typebox';
import type { MdmApp } from '../app.js';
import { MDM_LIMITS } from '../config.js';
import { Alert, ERROR_ANSWERS, HealthSummary, IdParams, Ms, Severity, Stats } from '../../shared/mdm-api.js';
import type { Services } from '../services/index.js';

const obj = <T extends Parameters<typeof Type.Object>[0]>(props: T) => Type.Object(props, { additionalProperties: false });
const Label = Type.String({ minLength: 1, maxLength: 128 });

export function healthRoutes(app: MdmApp, s: Services): void {
  app.get('/health/live', {
    config: { access: 'public' },
    schema: { tags: ['health'], summary: 'Liveness probe (no authentication)', security: [], response: { 200: Type.Object({ ok: Type.Boolean() }), ...ERROR_ANSWERS } },
  }, async () => ({ ok: true }));
  app.get('/health', {
    config: { access: 'read' },
    schema: { tags: ['health'], summary: 'Cluster health summary', response: { 200: HealthSummary, ...ERROR_ANSWERS } },
  }, async () => s.health.summary());
  app.get('/stats', {
    config: { access: 'read' },
    schema: {
      tags: ['health'], summary: 'Live IO per volume and per SDS (from the heartbeats): one point per complete bucket after sinceMs',
      querystring: obj({ sinceMs: Type.Optional(Ms) }), response: { 200: Stats, ...ERROR_ANSWERS },
    },
  }, async (req) => s.stats.query(req.query.sinceMs));

  app.get('/metrics', {
    config: { access: 'metrics' },
    schema: {
      tags: ['health'], summary: 'Prometheus metrics (text format): scrape token, admin or monitor token', produces: ['text/plain'],
      response: { 200: Type.String({ description: 'Prometheus text exposition format 0.0.4' }), ...ERROR_ANSWERS },
    },
  }, async (_req, reply) => reply.type(s.metrics.contentType).send(await s.metrics.render()));

  app.get('/alerts', {
    config: { access: 'read' },
    schema: {
      tags: ['alerts'], summary: 'Alerts, newest first',
      querystring: obj({
        severity: Type.Optional(Severity), minSeverity: Type.Optional(Severity), category: Type.Optional(Label), source: Type.Optional(Label),
        state: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('resolved')])),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MDM_LIMITS.listLimitMax })),
      }),
      response: { 200: Type.Array(Alert), ...ERROR_ANSWERS },
    },
  }, async (req) => s.alerts.list({ ...req.query, limit: req.query.limit ?? 100 }));
  app.get('/alerts/:id', {
    config: { access: 'read' },
    schema: { tags: ['alerts'], params: IdParams, response: { 200: Alert, ...ERROR_ANSWERS } },
  }, async (req) => s.alerts.get(req.params.id));
  app.post('/alerts', {
    config: { access: 'admin' },
    schema: {
      tags: ['alerts'], summary: 'Raise an alert by hand',
      body: obj({ severity: Severity, category: Label, source: Label, message: Type.String({ minLength: 1, maxLength: MDM_LIMITS.messageLengthMax }) }),
      response: { 201: Alert, ...ERROR_ANSWERS },
    },
  }, async (req, reply) => reply.status(201).send(s.alerts.raise(req.body)));
  app.post('/alerts/:id/resolve', {
    config: { access: 'admin' },
    schema: { tags: ['alerts'], params: IdParams, response: { 200: Alert, ...ERROR_ANSWERS } },
  }, async (req) => s.alerts.resolve(req.params.id, req.user.sub));
}
