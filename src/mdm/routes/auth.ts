import { Type } from '@fastify/type-provider-typebox';
import type { MdmApp } from '../app.js';
import { MDM_LIMITS } from '../config.js';
import { AuditEntry, ERROR_ANSWERS, IdParams, IssuedToken, Name, Ok, User } from '../../shared/mdm-api.js';
import type { Services } from '../services/index.js';

const Password = Type.String({ minLength: 1, maxLength: MDM_LIMITS.passwordLengthMax });
const Role = Type.Union([Type.Literal('admin'), Type.Literal('monitor')]);

/** 0 in the config: no limit (the rate-limit plugin counts to max; a huge max never trips). */
function loginLimit(app: MdmApp): number {
  return app.mdm.config.rateLimitLoginMax > 0 ? app.mdm.config.rateLimitLoginMax : Number.MAX_SAFE_INTEGER;
}

export function authRoutes(app: MdmApp, s: Services): void {
  app.post('/auth/login', {
    // Limited per client address (rateLimitLoginMax per rateLimitWindowMs), on top of the per-user lockout.
    config: { access: 'public', rateLimit: { max: loginLimit(app), keyGenerator: (req) => `ip:${req.ip}` } },
    schema: {
      tags: ['auth'], summary: 'User login: a bearer token with an expiry',
      body: Type.Object({ username: Type.String({ minLength: 1, maxLength: MDM_LIMITS.nameLengthMax }), password: Password }, { additionalProperties: false }),
      response: { 200: IssuedToken, ...ERROR_ANSWERS },
    },
  }, async (req) => s.auth.login(req.body.username, req.body.password, req.ip));

  app.post('/auth/component', {
    // A forged proof gets nowhere (HMAC with the cluster key), and thousands of components may log in at once after an MDM restart.
    config: { access: 'public', rateLimit: false },
    schema: {
      tags: ['auth'], summary: 'SDS/SDC login with a proof made from the cluster key',
      body: Type.Object({
        kind: Type.Union([Type.Literal('sds'), Type.Literal('sdc')]),
        name: Type.String({ minLength: 1, maxLength: MDM_LIMITS.nameLengthMax }),
        tsMs: Type.Integer({ minimum: 0 }),
        proof: Type.String({ pattern: '^[0-9a-f]{64}$' }),
      }, { additionalProperties: false }),
      response: { 200: IssuedToken, ...ERROR_ANSWERS },
    },
  }, async (req) => s.auth.componentLogin(req.body.kind, req.body.name, req.body.tsMs, req.body.proof));

  app.get('/auth/whoami', {
    config: { access: 'read' },
    schema: {
      tags: ['auth'], summary: 'The claims of the caller\'s token',
      response: {
        200: Type.Object({ sub: Type.String(), role: Type.String(), kind: Type.Optional(Type.String()), uid: Type.Optional(Type.Integer()) }),
        ...ERROR_ANSWERS,
      },
    },
  }, async (req) => ({ sub: req.user.sub, role: req.user.role, ...(req.user.kind ? { kind: req.user.kind } : {}), ...(req.user.uid ? { uid: req.user.uid } : {}) }));

  app.get('/users', {
    config: { access: 'admin' },
    schema: { tags: ['users'], response: { 200: Type.Array(User), ...ERROR_ANSWERS } },
  }, async () => s.auth.listUsers());

  app.post('/users', {
    config: { access: 'admin' },
    schema: {
      tags: ['users'],
      body: Type.Object({ name: Name, password: Password, role: Role }, { additionalProperties: false }),
      response: { 201: User, ...ERROR_ANSWERS },
    },
  }, async (req, reply) => reply.status(201).send(await s.auth.createUser(req.body.name, req.body.password, req.body.role)));

  app.put('/users/:id/password', {
    config: { access: 'admin' },
    schema: {
      tags: ['users'], params: IdParams,
      body: Type.Object({ password: Password }, { additionalProperties: false }),
      response: { 200: User, ...ERROR_ANSWERS },
    },
  }, async (req) => s.auth.setPassword(req.params.id, req.body.password));

  app.post('/users/:id/unlock', {
    config: { access: 'admin' },
    schema: {
      tags: ['users'], summary: 'Lift the lockout of a user after failed logins',
      params: IdParams, response: { 200: Type.Object({ name: Type.String(), wasLocked: Type.Boolean() }), ...ERROR_ANSWERS },
    },
  }, async (req) => s.auth.unlock(req.params.id));

  app.delete('/users/:id', {
    config: { access: 'admin' },
    schema: { tags: ['users'], params: IdParams, response: { 200: Ok, ...ERROR_ANSWERS } },
  }, async (req) => {
    s.auth.deleteUser(req.params.id);
    return { ok: true };
  });

  app.get('/audit', {
    config: { access: 'admin' },
    schema: {
      tags: ['audit'], summary: 'The audit log, newest first',
      querystring: Type.Object({
        actor: Type.Optional(Type.String({ maxLength: 128 })),
        action: Type.Optional(Type.String({ maxLength: 256 })),
        result: Type.Optional(Type.Union([Type.Literal('success'), Type.Literal('failure')])),
        sinceMs: Type.Optional(Type.Integer({ minimum: 0 })),
        untilMs: Type.Optional(Type.Integer({ minimum: 0 })),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MDM_LIMITS.listLimitMax })),
      }, { additionalProperties: false }),
      response: { 200: Type.Array(AuditEntry), ...ERROR_ANSWERS },
    },
  }, async (req) => s.audit.query({ ...req.query, limit: req.query.limit ?? 100 }));
}
