/**
 * The HTTP listeners of SDS and SDC (control and management) come from this
 * one factory, so that each authenticates every route (listener-auth.ts),
 * answers errors as {error: {code, message}} with the status of the error
 * table, serves HTTPS (TLS 1.3) when given a certificate, and records its
 * routes (listenerRoutes) for the test that walks them.
 *
 * A route that authenticates its callers itself (e.g. a scrape token) says so
 * with `config: { ownAuth: true }`; the listener then leaves it alone.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { ERRORS, PflexError, isPflexError } from './errors.js';
import { ListenerAuth, type ListenerAccess } from './listener-auth.js';
import type { Logger } from './logger.js';
import { serverTlsOptions, type TlsMaterial } from './tls.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route authenticates its callers itself; the listener's check is skipped. */
    ownAuth?: boolean;
  }
}

export interface ListenerOptions {
  /** For logs: e.g. "control", "mgmt". */
  name: string;
  access: ListenerAccess;
  clusterKey: Buffer;
  log: Logger;
  bodyLimitBytes?: number;
  /** Serve HTTPS with this certificate. */
  tls?: TlsMaterial | undefined;
}

export interface ListenerRoute { method: string; url: string; ownAuth: boolean }

const routesOf = new WeakMap<FastifyInstance, ListenerRoute[]>();

/** Every route registered on a listener built here (HEAD included), in registration order. */
export function listenerRoutes(app: FastifyInstance): readonly ListenerRoute[] {
  const routes = routesOf.get(app);
  if (!routes) throw new Error('not a listener built by buildListener()');
  return routes;
}

export function buildListener(o: ListenerOptions): FastifyInstance {
  const log = o.log.child({ listener: o.name });
  const app = Fastify({
    loggerInstance: log,
    logController: new Fastify.LogController({ disableRequestLogging: true }),
    ...(o.bodyLimitBytes !== undefined ? { bodyLimit: o.bodyLimitBytes } : {}),
    // With TLS the raw server is an https.Server; routes and hooks do not care, so one app type serves both.
    ...(o.tls ? { https: serverTlsOptions(o.tls) } : {}),
  }) as unknown as FastifyInstance;
  const routes: ListenerRoute[] = [];
  routesOf.set(app, routes);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) routes.push({ method, url: r.url, ownAuth: r.config?.ownAuth === true });
  });

  const auth = new ListenerAuth(o.clusterKey);
  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.config.ownAuth === true) return;
    const caller = auth.authenticate(req.headers.authorization);
    if (!caller) {
      throw new PflexError('PFLEX_ERR_UNAUTHENTICATED', 'this listener needs a PflexComponent proof made with the cluster key or an MDM bearer token');
    }
    if (!ListenerAuth.allows(caller, o.access)) {
      throw new PflexError('PFLEX_ERR_FORBIDDEN', `role ${caller.via === 'token' ? caller.role : 'component'} may not call the ${o.name} listener (admins and the cluster key may)`);
    }
  });

  app.setErrorHandler((e, req, reply) => {
    const err = e as Error & { validation?: unknown; statusCode?: number };
    const pe = isPflexError(err) ? err
      : err.validation || err.statusCode === 400 || err.statusCode === 413 || err.statusCode === 415 ? new PflexError('PFLEX_ERR_BAD_REQUEST', err.message)
      : new PflexError('PFLEX_ERR_INTERNAL', err.message);
    if (ERRORS[pe.code].httpStatus >= 500) log.error({ err: pe.message, url: req.url }, 'request failed');
    void reply.status(ERRORS[pe.code].httpStatus).send({ error: { code: pe.code, message: pe.message } });
  });
  return app;
}
