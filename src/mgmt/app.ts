/**
 * MGMT: the web dashboard. A fastify app that serves the pages and a small
 * JSON API to them; every figure and every change goes to the MDM over its
 * HTTP API with the logged-in user's own token (src/mgmt/mdm.ts), so the
 * MDM enforces roles and audits. build() does not listen (tests inject).
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { serverTlsOptions, type TlsMaterial } from '../shared/tls.js';
import { MGMT_LIMITS, SESSION_COOKIE } from './limits.js';
import { MdmGateway } from './mdm.js';
import { PAGES, loginHtml, pageHtml } from './pages.js';
import { isProxied } from './proxy.js';
import { SessionCodec, clearCookie, readCookie, type Session } from './session.js';
import { loadStatic } from './static.js';
import { LiveStreams } from './live.js';

export interface MgmtOptions {
  mdmUrl: string;
  /** PEM CA of an https MDM (the cluster CA, docs/security.md). */
  mdmCa?: Buffer;
  /** 32-byte key sealing the session cookies; default a random one (a restart logs users out). */
  sessionKey?: Buffer;
  /** The dashboard is served over HTTPS (behind a TLS proxy): cookies get the Secure flag. */
  secureCookies?: boolean;
  /** Serve HTTPS (TLS 1.3) with this certificate; cookies are then Secure whatever secureCookies says. */
  https?: TlsMaterial;
  loggerInstance?: FastifyBaseLogger;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without a session (the login page, static files). */
    public?: boolean;
  }
  interface FastifyRequest {
    session?: Session;
  }
}

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

function apiError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).send({ error: { code, message } });
}

/** A redirect target after login: a path of this site only. */
function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/(?![/\\])[\x21-\x7e]*$/.test(next) ? next : '/';
}

export async function buildMgmt(o: MgmtOptions): Promise<FastifyInstance> {
  const serverOptions: FastifyServerOptions = {
    ...(o.loggerInstance ? { loggerInstance: o.loggerInstance } : { logger: false }),
    bodyLimit: MGMT_LIMITS.requestBodyBytesMax,
    logController: new Fastify.LogController({ disableRequestLogging: true }),
  };
  // With TLS the raw server is an https.Server; routes and hooks do not care, so one app type serves both.
  if (o.https) Object.assign(serverOptions, { https: serverTlsOptions(o.https) });
  const app = Fastify(serverOptions);
  const codec = new SessionCodec(o.sessionKey);
  const mdm = new MdmGateway(o.mdmUrl, o.mdmCa);
  const files = loadStatic();
  const secure = (o.secureCookies ?? false) || o.https !== undefined;
  const live = new LiveStreams(mdm, app.log);

  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.addHook('onSend', async (_req, reply, payload) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    return payload;
  });

  // Every route needs a session unless it is marked public: pages redirect to the login, the API answers 401.
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.config.public) return;
    const session = codec.open(readCookie(req.headers.cookie, SESSION_COOKIE));
    if (session) {
      req.session = session;
      return;
    }
    if (req.url.startsWith('/api/')) return apiError(reply, 401, 'PFLEX_ERR_UNAUTHENTICATED', 'log in first (POST /login)');
    return reply.redirect(`/login?next=${encodeURIComponent(req.url)}`, 303);
  });

  app.get('/login', { config: { public: true } }, async (req, reply) => {
    const next = safeNext((req.query as { next?: unknown }).next);
    if (codec.open(readCookie(req.headers.cookie, SESSION_COOKIE))) return reply.redirect(next, 303);
    return reply.type('text/html; charset=utf-8').send(loginHtml({ next }));
  });

  app.post('/login', { config: { public: true } }, async (req, reply) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const next = safeNext(b.next);
    const user = typeof b.username === 'string' ? b.username.trim() : '';
    const password = typeof b.password === 'string' ? b.password : '';
    const page = (status: number, error: string) => reply.code(status).type('text/html; charset=utf-8').send(loginHtml({ error, user, next }));
    if (!user || !password) return page(400, 'Enter a user name and a password.');
    if (user.length > MGMT_LIMITS.credentialLengthMax || password.length > MGMT_LIMITS.credentialLengthMax) return page(400, 'User name or password too long.');
    const a = await mdm.call('POST', '/auth/login', undefined, { username: user, password });
    if (a.status === 401 || a.status === 400) return page(401, 'Wrong user name or password.');
    if (a.status !== 200) return page(503, messageOf(a.body) ?? `The MDM answered HTTP ${a.status}.`);
    const t = a.body as { token: string; expiresAtMs: number; role: string };
    reply.header('set-cookie', codec.cookie({ token: t.token, user, role: t.role, expiresAtMs: t.expiresAtMs }, secure));
    return reply.redirect(next, 303);
  });

  app.post('/logout', { config: { public: true } }, async (_req, reply) => {
    reply.header('set-cookie', clearCookie(secure));
    return reply.redirect('/login', 303);
  });

  app.get('/static/*', { config: { public: true } }, async (req, reply) => {
    const f = files.get(req.url.split('?')[0]!);
    if (!f) return apiError(reply, 404, 'PFLEX_ERR_NOT_FOUND', `no file ${req.url}`);
    return reply.type(f.type).header('cache-control', 'no-cache').send(f.body);
  });

  for (const p of PAGES) {
    app.get(p.path, async (req, reply) => reply.type('text/html; charset=utf-8').send(pageHtml(p, req.session!.user, req.session!.role)));
  }

  app.get('/api/session', async (req) => ({ user: req.session!.user, role: req.session!.role, expiresAtMs: req.session!.expiresAtMs }));

  app.get('/api/events', async (req, reply) => live.serve(req, reply, req.session!));

  app.route({
    method: ['GET', 'POST', 'DELETE'],
    url: '/api/mdm/*',
    handler: async (req: FastifyRequest, reply: FastifyReply) => {
      const [path, query] = splitUrl(req.url.slice('/api/mdm'.length));
      if (!isProxied(req.method, path)) return apiError(reply, 404, 'PFLEX_ERR_NOT_FOUND', `the dashboard does not offer ${req.method} ${path}`);
      if (req.body !== undefined && (typeof req.body !== 'object' || req.body === null || !String(req.headers['content-type']).startsWith('application/json'))) {
        return apiError(reply, 415, 'PFLEX_ERR_UNSUPPORTED_MEDIA_TYPE', 'send a JSON object (content-type: application/json)');
      }
      const a = await mdm.call(req.method, path + query, req.session!.token, req.body);
      if (a.status === 401) {
        reply.header('set-cookie', clearCookie(secure));
        return apiError(reply, 401, 'PFLEX_ERR_UNAUTHENTICATED', 'the session has expired: log in again');
      }
      return reply.code(a.status).send(a.body);
    },
  });

  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/api/')) return apiError(reply, 404, 'PFLEX_ERR_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`);
    return reply.code(404).type('text/html; charset=utf-8').send('<!doctype html><title>Not found</title><p>No such page. <a href="/">Overview</a></p>');
  });

  app.setErrorHandler((err: { statusCode?: number; message: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, 'request failed');
    const code = status === 413 ? 'PFLEX_ERR_PAYLOAD_TOO_LARGE' : status === 415 ? 'PFLEX_ERR_UNSUPPORTED_MEDIA_TYPE' : status < 500 ? 'PFLEX_ERR_BAD_REQUEST' : 'PFLEX_ERR_INTERNAL';
    return apiError(reply, status, code, status < 500 ? err.message : 'internal error');
  });

  app.addHook('onClose', async () => live.close());
  await app.ready();
  return app;
}

function splitUrl(url: string): [string, string] {
  const i = url.indexOf('?');
  return i < 0 ? [url, ''] : [url.slice(0, i), url.slice(i)];
}

function messageOf(body: unknown): string | undefined {
  const m = (body as { error?: { message?: unknown } } | null)?.error?.message;
  return typeof m === 'string' ? m : undefined;
}
